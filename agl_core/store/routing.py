"""Routing vocabulary shared by every backend, the runner and the clients: namespaces, queue
names, labels, priorities and label selectors, with the checks that turn bad values into
``INVALID_ARGUMENT`` errors a person can act on.

A label selector is a comma-separated list of requirements, all of which must hold (the
Kubernetes equality- and set-based syntax, which most operators already know):

==================  =========================================================
``k=v``, ``k==v``   the label ``k`` is ``v``
``k!=v``            the label ``k`` is not ``v`` (also true when ``k`` is absent)
``k in (a,b)``      the label ``k`` is ``a`` or ``b``
``k notin (a,b)``   the label ``k`` is neither (also true when ``k`` is absent)
``k``               the rollout has a label ``k``
``!k``              the rollout has no label ``k``
==================  =========================================================

The empty selector matches everything.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agl_core.errors import InvalidArgumentError

DEFAULT_NAMESPACE = "default"
DEFAULT_QUEUE = "default"
MIN_PRIORITY = 0
MAX_PRIORITY = 1000
MAX_LABELS = 32
MAX_QUEUES = 64
MAX_SELECTOR_CHARS = 2048

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_KEY_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._/-]{0,62}"
_VALUE_PATTERN = r"[A-Za-z0-9._/-]{0,63}"
_KEY = re.compile(_KEY_PATTERN)
_VALUE = re.compile(_VALUE_PATTERN)
_NAME_RULE = "1 to 63 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit"


def _name(value: str, field: str, what: str) -> str:
    if not value:
        return DEFAULT_NAMESPACE if what == "namespace" else DEFAULT_QUEUE
    if not _NAME.fullmatch(value):
        raise InvalidArgumentError(f"{field} {value[:80]!r} is not a valid {what} name; use {_NAME_RULE}")
    return value


def namespace(value: str, field: str = "namespace") -> str:
    """The namespace ``value`` names (``"default"`` when empty); raises on a malformed name."""
    return DEFAULT_NAMESPACE if not value else _name(value, field, "namespace")


def queue(value: str, field: str = "queue") -> str:
    """The queue ``value`` names (``"default"`` when empty); raises on a malformed name."""
    return DEFAULT_QUEUE if not value else _name(value, field, "queue")


def queues(values: Iterable[str], field: str = "queues") -> tuple[str, ...]:
    """The queues a worker serves, without repeats, in the order given (``("default",)`` when none)."""
    names = tuple(dict.fromkeys(queue(v, f"{field}[{i}]") for i, v in enumerate(values)))
    if len(names) > MAX_QUEUES:
        raise InvalidArgumentError(f"{field} names {len(names)} queues; a worker serves at most {MAX_QUEUES}")
    return names or (DEFAULT_QUEUE,)


def check_priority(value: int, field: str = "priority") -> int:
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise InvalidArgumentError(
            f"{field} is {value}; a priority is {MIN_PRIORITY} (the default) to {MAX_PRIORITY}, and higher is "
            "dispatched first"
        )
    return value


def check_labels(labels: Mapping[str, str], field: str = "labels") -> None:
    if len(labels) > MAX_LABELS:
        raise InvalidArgumentError(f"{field} has {len(labels)} labels; a rollout carries at most {MAX_LABELS}")
    for key, value in labels.items():
        if not _KEY.fullmatch(key):
            raise InvalidArgumentError(
                f"{field} key {key[:80]!r} is not a valid label key; use 1 to 63 characters of A-Z, a-z, 0-9, "
                "'.', '_', '-', '/', starting with a letter or digit"
            )
        if not _VALUE.fullmatch(value):
            raise InvalidArgumentError(
                f"{field}[{key!r}] value {value[:80]!r} is not a valid label value; use at most 63 characters of "
                "A-Z, a-z, 0-9, '.', '_', '-', '/'"
            )


# --- selectors -------------------------------------------------------------------------------------

_EXISTS = re.compile(rf"\s*(!?)\s*({_KEY_PATTERN})\s*")
_EQUALS = re.compile(rf"\s*({_KEY_PATTERN})\s*(==|=|!=)\s*({_VALUE_PATTERN})\s*")
_SET = re.compile(rf"\s*({_KEY_PATTERN})\s+(in|notin)\s*\((.*)\)\s*")
_SELECTOR_HELP = (
    "a label selector is comma-separated requirements: k=v, k!=v, k in (a,b), k notin (a,b), k, !k "
    "(keys and values of A-Z, a-z, 0-9, '.', '_', '-', '/')"
)


@dataclass(frozen=True)
class Requirement:
    key: str
    # "=", "!=", "in", "notin", "exists", "!exists"
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "exists":
            return value is not None
        if self.op == "!exists":
            return value is None
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        return value is None or value not in self.values  # != and notin


@dataclass(frozen=True)
class Selector:
    """A parsed label selector; :meth:`matches` tells whether a rollout's labels satisfy it."""

    text: str
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(req.matches(labels) for req in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _split(text: str, field: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
            if depth > 1:
                raise InvalidArgumentError(f"{field} {text!r}: nested '(' at character {i + 1}; {_SELECTOR_HELP}")
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise InvalidArgumentError(f"{field} {text!r}: unmatched ')' at character {i + 1}; {_SELECTOR_HELP}")
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise InvalidArgumentError(f"{field} {text!r}: a '(' is never closed; {_SELECTOR_HELP}")
    parts.append(text[start:])
    return parts


def _requirement(part: str, field: str, text: str) -> Requirement:
    if match := _EQUALS.fullmatch(part):
        key, op, value = match.groups()
        return Requirement(key, "!=" if op == "!=" else "=", frozenset({value}))
    if match := _SET.fullmatch(part):
        key, op, inner = match.groups()
        values = [v.strip() for v in inner.split(",")]
        bad = [v for v in values if not _VALUE.fullmatch(v)]
        if not inner.strip() or bad:
            raise InvalidArgumentError(
                f"{field} {text!r}: {part.strip()!r} needs a list of valid values in its parentheses, "
                f"like {key} {op} (a,b); {_SELECTOR_HELP}"
            )
        return Requirement(key, op, frozenset(values))
    if match := _EXISTS.fullmatch(part):
        bang, key = match.groups()
        return Requirement(key, "!exists" if bang else "exists")
    raise InvalidArgumentError(f"{field} {text!r}: cannot read {part.strip()!r}; {_SELECTOR_HELP}")


@functools.lru_cache(maxsize=1024)
def _parse(text: str, field: str) -> Selector:
    if not text.strip():
        return Selector(text, ())
    parts = _split(text, field)
    if any(not p.strip() for p in parts):
        raise InvalidArgumentError(
            f"{field} {text!r} has an empty requirement (two commas in a row?); {_SELECTOR_HELP}"
        )
    return Selector(text, tuple(_requirement(p, field, text) for p in parts))


def parse_selector(text: str, field: str = "label_selector") -> Selector:
    """Parse a label selector; raises :class:`InvalidArgumentError` naming the part it cannot read."""
    if len(text) > MAX_SELECTOR_CHARS:
        raise InvalidArgumentError(
            f"{field} is {len(text)} characters long; a selector is at most {MAX_SELECTOR_CHARS}"
        )
    return _parse(text, field)


def selector_text(selector: str | Mapping[str, str] | None) -> str:
    """A selector given as text or as an equality map (``{"lang": "go"}``) as text."""
    if selector is None:
        return ""
    if isinstance(selector, str):
        return selector
    return ",".join(f"{k}={v}" for k, v in selector.items())


@dataclass(frozen=True)
class Route:
    """What a worker serves: one namespace, some queues, a label selector."""

    namespace: str = DEFAULT_NAMESPACE
    queues: tuple[str, ...] = (DEFAULT_QUEUE,)
    selector: Selector = Selector("", ())

    @classmethod
    def parse(cls, namespace_name: str, queue_names: Iterable[str], selector: str, where: str = "") -> Route:
        """The route of a request's fields; raises :class:`InvalidArgumentError` naming the bad one."""
        return cls(
            namespace(namespace_name, f"{where}namespace"),
            queues(queue_names, f"{where}queues"),
            parse_selector(selector, f"{where}label_selector"),
        )
