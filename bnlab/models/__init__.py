"""The models: the variant table (`variants`, no Keras import) and the builders (`builders`).

This package imports none of its modules: import them by their full names."""
