"""How the filters of a query combine, for every backend.

A query names some filters; each one that is *set* becomes a predicate. ``FILTER_LOGIC_AND`` (the
default) keeps an item when every predicate holds, ``FILTER_LOGIC_OR`` when any holds; with no
filter set every item matches either way. A status filter sent as ``status_filter`` is set even
when empty, and an empty one matches nothing (``status=[]`` means "no status", not "any").
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any, TypeVar

from agl_core.errors import InvalidArgumentError
from agl_core.proto import types_pb2 as t

T = TypeVar("T")
Predicate = Callable[[T], bool]

_LOGIC = frozenset(t.FilterLogic.values())


def is_or(logic: int) -> bool:
    if logic not in _LOGIC:
        raise InvalidArgumentError(f"filter_logic {logic} is not a FilterLogic; use and or or")
    return logic == t.FILTER_LOGIC_OR


def combine(predicates: list[Predicate[T]], logic: int) -> Predicate[T]:
    """One predicate from the predicates of the set filters."""
    if not predicates:
        return lambda _item: True
    if len(predicates) == 1:
        return predicates[0]
    if is_or(logic):
        return lambda item: any(p(item) for p in predicates)
    return lambda item: all(p(item) for p in predicates)


def status_set(request: Any, valid: Collection[int], what: str) -> set[int] | None:
    """The statuses a query filters on, or None when it does not filter on status.

    ``status_filter`` (a message, set even when empty) wins over the older ``status_in`` (a list,
    where empty means "not set").
    """
    if request.HasField("status_filter"):
        statuses = set(request.status_filter.statuses)
        field = "status_filter.statuses"
    elif request.status_in:
        statuses = set(request.status_in)
        field = "status_in"
    else:
        return None
    for status in statuses:
        if status not in valid:
            raise InvalidArgumentError(f"{field} contains {status}, which is not a {what} status")
    return statuses


def id_predicates(ids: Iterable[str], contains: str, get_id: Callable[[T], str]) -> list[Predicate[T]]:
    """Predicates of an ``*_id_in`` list and an ``*_id_contains`` substring, where set."""
    predicates: list[Predicate[T]] = []
    wanted = set(ids)
    if wanted:
        predicates.append(lambda item: get_id(item) in wanted)
    if contains:
        predicates.append(lambda item: contains in get_id(item))
    return predicates
