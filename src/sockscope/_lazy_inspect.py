"""Start-up: let ``dataclasses`` import without paying for ``inspect``.

``dataclasses`` imports ``inspect`` (which pulls in ast, dis, tokenize…: about
a third of sockscope's import time) but only calls it to build a docstring for
classes that have none; every sockscope record has one.  Until someone really
uses it, ``inspect`` is a stand-in module that imports the real one on first
attribute access and hands everything over to it.  Nothing changes when
``inspect`` is already imported (as under pytest).
"""

from __future__ import annotations

import sys
import types


class _LazyInspect(types.ModuleType):
    def __getattr__(self, name: str) -> object:
        if sys.modules.get("inspect") is self:
            del sys.modules["inspect"]
        import importlib

        real = importlib.import_module("inspect")
        return getattr(real, name)


if "inspect" not in sys.modules and "dataclasses" not in sys.modules:
    sys.modules["inspect"] = _LazyInspect("inspect")
