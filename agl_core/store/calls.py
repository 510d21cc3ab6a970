"""Argument helpers shared by the parts of :class:`~agl_core.store.base.LightningStore`."""

from __future__ import annotations

from typing import Final

from google.protobuf import duration_pb2


class _Unset:
    """Marks an argument that was not given (``None`` may be a meaningful value)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = _Unset()


def _duration(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(seconds * 1e9))
    return duration


def _page_args(limit: int | None, offset: int) -> tuple[int, int]:
    return (limit or 0), offset


def _logic(filter_logic: str) -> int:
    from agl_core.proto import types_pb2

    if filter_logic not in ("and", "or"):
        raise ValueError(f"filter_logic must be 'and' or 'or', not {filter_logic!r}")
    return types_pb2.FILTER_LOGIC_OR if filter_logic == "or" else types_pb2.FILTER_LOGIC_AND


def _order(order: str) -> int:
    from agl_core.proto import types_pb2

    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
    return types_pb2.SORT_ORDER_DESC if order == "desc" else types_pb2.SORT_ORDER_ASC
