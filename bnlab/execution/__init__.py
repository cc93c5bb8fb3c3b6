"""Where trials run: in this process, in a backend process per Keras backend, or on Dask workers.

No Keras at import: a backend process and a Dask worker import these modules before they set
KERAS_BACKEND. This package imports none of its modules: import them by their full names."""
