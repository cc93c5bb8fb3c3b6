"""Where trials run: in this process, in a worker process per backend, or on Dask. No Keras at import.

This package imports none of its modules: import them by their full names."""
