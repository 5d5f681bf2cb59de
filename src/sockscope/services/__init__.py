"""The greeting server (``serve``) and its client (``connect``)."""

#: the port both use unless told otherwise
DEFAULT_PORT = 12345
