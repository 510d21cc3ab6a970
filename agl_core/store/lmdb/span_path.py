"""Which span loop the store writer runs: the compiled one (``span_loop``, a Cython extension that
``pip install`` builds) or the Python reference (``span_write.ingest``). Both take the same
arguments and store the same bytes (``tests/unit/test_span_loop_twin.py``); with each go its ways
of filling a span-id filter from the log (:func:`filter_fill`) and of appending to the log
(:func:`log_append`).

The compiled loop is the default wherever it was built. ``AGL_SPAN_LOOP=python`` (or
``LmdbStore(span_loop="python")``) runs the Python one: to compare the two (``bench/``), or to
rule the extension out when diagnosing the store.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from agl_core.store.lmdb import span_id_log, span_ids, span_write

try:  # built by setup.py; optional, so an install without a C compiler still works
    from agl_core.store.lmdb import span_loop as _compiled  # type: ignore[attr-defined]
except ImportError:
    _compiled = None

LOOPS = ("compiled", "python")
ENV = "AGL_SPAN_LOOP"


def compiled_available() -> bool:
    return _compiled is not None


def choose(name: str | None = None) -> tuple[str, Callable[..., Any]]:
    """The loop named (``compiled`` or ``python``; None: ``$AGL_SPAN_LOOP``, else compiled where
    built), as (its name, its ``ingest``). ValueError says what to give instead."""
    given = "span_loop"
    if name is None and os.environ.get(ENV):
        name, given = os.environ[ENV], ENV
    if name is None:
        name = "compiled" if _compiled is not None else "python"
    if name not in LOOPS:
        raise ValueError(f"{given}={name!r}: give 'compiled' or 'python' (the store writer's span loop)")
    if name == "python":
        return name, span_write.ingest
    if _compiled is None:
        raise ValueError(
            f"{given}='compiled': the compiled span loop (agl_core.store.lmdb.span_loop) is not built in this "
            "install; reinstall agl with a C compiler present (pip install -e .), or give 'python'"
        )
    return name, _compiled.ingest


def filter_fill(name: str) -> Callable[..., Any]:
    """How the span-id index sets a filter's bits from log entries, for the loop ``name`` (as
    :func:`choose` gave it): the compiled loop's ``add_all``, or ``span_ids._add_all`` (Python, and
    numpy for large fills) with the Python loop. Both set the same bits."""
    if name == "compiled" and _compiled is not None:
        return _compiled.add_all  # type: ignore[no-any-return]
    return span_ids._add_all


def log_append(name: str) -> span_id_log.Append:
    """How the span-id index appends to an attempt's log, for the loop ``name``: the compiled loop's
    ``append`` or ``span_id_log.append``. Both store the same chunks."""
    if name == "compiled" and _compiled is not None:
        return _compiled.append  # type: ignore[no-any-return]
    return span_id_log.append
