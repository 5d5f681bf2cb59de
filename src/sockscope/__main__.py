"""``python -m sockscope``."""

from sockscope.cli import entry

entry()
