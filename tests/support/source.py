"""Parsing the project's own source for tests that check its layout."""

from __future__ import annotations

import ast
import gc
from pathlib import Path


def parse_module(path: Path) -> ast.Module:
    """``path`` parsed, with the garbage collector paused meanwhile.

    On CPython 3.11 a finalizer run by a collection in the middle of building the tree (earlier tests leave
    Celery results whose ``__del__`` warns, and 3.11 formats a warning's traceback with ``ast.parse``)
    re-enters the AST constructor and breaks its depth counter: "SystemError: AST constructor recursion
    depth mismatch" (python/cpython gh-106905, seen in a full run). Without a collection there is no
    re-entry."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(path.read_text(), str(path))
    finally:
        if enabled:
            gc.enable()
