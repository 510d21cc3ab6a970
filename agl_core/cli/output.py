"""What the ``agl`` commands print: JSON for scripts, rich tables for people, and the formats of
times, durations and statuses they share.

JSON objects are the store's own Python types (:mod:`agl_core.types`) as dicts: statuses are their
lower-case names, times are Unix seconds (floats), absent values are ``null``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table


def to_jsonable(value: Any) -> Any:
    """Dataclasses, enums, bytes and containers as JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return value


def dumps(value: Any, *, indent: int | None = None) -> str:
    return json.dumps(to_jsonable(value), indent=indent, ensure_ascii=False, sort_keys=False)


def print_json(value: Any, file: TextIO | None = None) -> None:
    """One JSON document, indented (a listing is one object with an ``items`` array)."""
    print(dumps(value, indent=2), file=file or sys.stdout)


def print_json_line(value: Any, file: TextIO | None = None) -> None:
    """One compact JSON object on its own line, flushed (for streams: watch, export)."""
    out = file or sys.stdout
    out.write(dumps(value) + "\n")
    out.flush()


def console() -> Console:
    # soft_wrap off and a wide default: ids must not be cut or folded when output goes to a pipe
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> Table:
    result = Table(*columns, title=title, title_justify="left", box=None, header_style="bold", pad_edge=False)
    for row in rows:
        result.add_row(*("" if cell is None else str(cell) for cell in row))
    return result


def print_rendered(renderable: Any) -> None:
    """Print a rich renderable without the trailing blanks rich pads lines with (they make copied
    output and line-based tests awkward)."""
    out = console()
    with out.capture() as captured:
        out.print(renderable)
    text = "\n".join(line.rstrip() for line in captured.get().splitlines())
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> None:
    print_rendered(table(columns, rows, title=title))


def print_fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """``name  value`` lines, names aligned."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for name, value in pairs:
        grid.add_row(name, "" if value is None else str(value))
    print_rendered(grid)


def when(seconds: float | None) -> str:
    """A Unix time as UTC ``YYYY-MM-DD HH:MM:SS.mmm``; empty when unset."""
    if not seconds:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def duration(start: float | None, end: float | None) -> str:
    """``end - start`` as ``12.3ms``, ``4.56s`` or ``7m05s``; empty when either is unset."""
    if not start or not end:
        return ""
    return seconds_text(end - start)


def seconds_text(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def short(value: Any, width: int = 60) -> str:
    """A value as compact JSON, cut to ``width`` characters."""
    text = value if isinstance(value, str) else dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"
