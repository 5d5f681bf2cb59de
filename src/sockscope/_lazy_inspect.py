"""Start-up: let ``dataclasses`` import without paying for ``inspect``.

``dataclasses`` imports ``inspect`` (which pulls in ast, dis, tokenize…: about
a third of sockscope's import time) but only calls it to build a docstring for
classes that have none (every sockscope record has one) and, from Python 3.12,
``inspect.get_annotations`` for every dataclass it makes.  Until someone really
uses it, ``inspect`` is a stand-in module: it answers ``get_annotations`` of a
class itself, as ``inspect`` does (:func:`_get_annotations`), and imports the real
one on the first other attribute asked, handing everything over to it.  Nothing
changes when ``inspect`` is already imported (as under pytest).
"""

from __future__ import annotations

import sys
import types


def _real() -> types.ModuleType:
    """The real ``inspect``, imported now if it is not yet (the stand-in leaves ``sys.modules``)."""
    if sys.modules.get("inspect") is _STAND_IN:
        del sys.modules["inspect"]
    import importlib

    return importlib.import_module("inspect")


class _LazyInspect(types.ModuleType):
    def __getattr__(self, name: str) -> object:
        return getattr(_real(), name)


def _get_annotations(obj: object, *, globals: object = None, locals: object = None,  # noqa: A002
                     eval_str: bool = False) -> object:
    """``inspect.get_annotations(obj)`` as ``dataclasses`` asks it (Python 3.12 and later) of each
    class it makes: a copy of the class's own ``__annotations__`` dict, ``{}`` if it has none.  Any
    other case (a module or a function, ``eval_str``, annotations that are not a dict) goes to the
    real function."""
    if isinstance(obj, type) and not eval_str:
        ann = obj.__dict__.get("__annotations__")
        if ann is None:
            return {}
        if type(ann) is dict:
            return dict(ann)
    real: types.FunctionType = _real().get_annotations
    return real(obj, globals=globals, locals=locals, eval_str=eval_str)


_STAND_IN = _LazyInspect("inspect")
_STAND_IN.__dict__["get_annotations"] = _get_annotations
if "inspect" not in sys.modules and "dataclasses" not in sys.modules:
    sys.modules["inspect"] = _STAND_IN
