"""Hypothesis strategies for fuzzing agl-server: any protobuf message, built from its descriptor.

A message is generated field by field, with values drawn towards the boundaries that broke the
server before: ids around LMDB's key limit and in other scripts, timestamps and durations at and
past their ranges, integers at every width's limits, non-finite doubles in JSON values, JSON nested
near protobuf's depth limit. :func:`sanitize` makes a message pass the edge checks more often, so
that the fuzz reaches the store's logic and not only its checks.

Ids come from :data:`ID_POOL` or start with ``fz-``: never with ``fuzz_live.SEED_PREFIX``, so the fuzz
never targets the data a test seeds before it. Attempt ids are the server's to make: messages
naming a rollout and an attempt also take them from the server's answers (``fuzz_live``).
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import Any

from google.protobuf import descriptor, message_factory, struct_pb2
from google.protobuf.message import DecodeError
from hypothesis import strategies as st

from support.fuzz_live import name_live_attempt

ID_POOL = (
    "fz-r1",
    "fz-r2",
    "fz-r3",
    "fz-w1",
    "fz-res1",
    "latest",
    "",
    "é" * 100,  # 200 bytes: the limit
    "é" * 101,
    "x" * 200,
    "x" * 201,
    "é" * 256,  # 512 bytes: past LMDB's 511-byte keys
    "\x00",
    "fz|/\\%",
    "🙂" * 50,
)

INT32 = (0, 1, -1, 2, 3, 100, 1000, 1001, 2**31 - 1, -(2**31))
INT64 = (0, 1, -1, 2, 2**31 - 1, 2**32, 2**53 - 1, 2**53, 2**62, 2**63 - 1, -(2**63))
UINT32 = (0, 1, 2**31, 2**32 - 1)
UINT64 = (0, 1, 2**53, 2**63, 2**64 - 1)
DOUBLES = (0.0, -0.0, 1.0, -1.0, 0.5, math.nan, math.inf, -math.inf, 1e308, 5e-324, 2.0**53 + 2)
SECONDS = (0, 1, -1, 5, 1_700_000_000, 253402300799, 253402300800, 9223372036, 9223372037, -62135596800)
SECONDS += (315576000000, 315576000001, 2**62, -(2**62), 2**63 - 1, -(2**63))
NANOS = (0, 1, -1, 999_999_999, 1_000_000_000, 2**31 - 1, -(2**31))

# Routing fields (issue 12): valid names and selectors beside each way to get them wrong, so the
# fuzz reaches the dispatch index and not only the first check.
NAMESPACE_POOL = ("", "default", "exp-a", "exp.b_2", "Exp", "-x", "a" * 63, "a" * 64, "no/slash", "é", "\x00")
QUEUE_POOL = (*NAMESPACE_POOL, "gpu", "fz-q")
SELECTOR_POOL = (
    "",
    "lang=go",
    "lang==go,tier!=gpu",
    "lang in (go,ts)",
    "lang notin (go, ts),gpu",
    "!lang",
    "lang in (go",
    "lang in ()",
    "lang=go,,x",
    "(",
    ")",
    "a in ((b))",
    "k=" + "v" * 64,
    "k" * 64,
    "lang=go," * 300,
    "é=ü",
)
LABEL_KEY_POOL = ("lang", "tier", "a/b.c_d-e", "", "bad key", "k" * 63, "k" * 64, "é", "-x")
LABEL_VALUE_POOL = ("go", "ts", "", "spaced value", "v" * 63, "v" * 64, "ü", "a/b")

F = descriptor.FieldDescriptor
_MAX_DEPTH = 3


def ids() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(ID_POOL), st.text(max_size=12).map(lambda s: f"fz-{s}"))


def _text() -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=16), st.sampled_from(("", "x" * 5000, "é" * 300, "\x00\x01")))


def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(), st.booleans(), st.sampled_from(DOUBLES), st.floats(allow_nan=True), st.text(max_size=8)
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
        ),
        max_leaves=max_leaves,
    )


def _fill_value(value: struct_pb2.Value, obj: Any) -> None:
    """Like agl's to_value but without its checks: NaN and infinities go through."""
    if obj is None:
        value.null_value = struct_pb2.NULL_VALUE
    elif isinstance(obj, bool):
        value.bool_value = obj
    elif isinstance(obj, float):
        value.number_value = obj
    elif isinstance(obj, str):
        value.string_value = obj
    elif isinstance(obj, list):
        value.list_value.SetInParent()
        for item in obj:
            _fill_value(value.list_value.values.add(), item)
    else:
        value.struct_value.SetInParent()
        for key, item in obj.items():
            _fill_value(value.struct_value.fields[key], item)


def _nested(levels: int) -> Any:
    obj: Any = "leaf"
    for _ in range(levels):
        obj = [obj]
    return obj


@st.composite
def values(draw: st.DrawFn) -> struct_pb2.Value:
    value = struct_pb2.Value()
    if draw(st.integers(0, 19)) == 0:
        _fill_value(value, _nested(draw(st.sampled_from((30, 33, 48, 49, 60)))))  # around the depth limits
    elif draw(st.integers(0, 9)) == 0:
        pass  # a Value without a kind
    else:
        _fill_value(value, draw(JSON))
    return value


@st.composite
def structs(draw: st.DrawFn) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    for key in draw(st.lists(st.text(max_size=6), max_size=3)):
        struct.fields[key].CopyFrom(draw(VALUES))
    return struct


JSON = json_values()
VALUES = values()
STRUCTS = structs()


@functools.cache
def _scalar(field: descriptor.FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    name = field.name
    if kind == F.TYPE_STRING:
        if name == "namespace":
            return st.one_of(st.sampled_from(NAMESPACE_POOL), _text())
        if name in ("queue", "queues"):
            return st.one_of(st.sampled_from(QUEUE_POOL), _text())
        if name == "label_selector":
            return st.one_of(st.sampled_from(SELECTOR_POOL), _text())
        return ids() if name.endswith(("_id", "_id_in", "_ids")) else _text()
    if kind == F.TYPE_BYTES:
        return st.one_of(st.binary(max_size=20), st.sampled_from((b"", b"\0" * 8, b"s" * 16, b"s" * 17)))
    if kind == F.TYPE_BOOL:
        return st.booleans()
    if kind in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.sampled_from(DOUBLES) if kind == F.TYPE_DOUBLE else st.sampled_from((0.0, 1.0, math.nan, math.inf))
    if kind == F.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), st.sampled_from((-1, 99)))
    if kind in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
        return st.one_of(st.sampled_from(INT32), st.integers(-3, 5))
    if kind in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
        return st.one_of(st.sampled_from(INT64), st.integers(-3, 5))
    if kind in (F.TYPE_UINT32, F.TYPE_FIXED32):
        return st.sampled_from(UINT32)
    return st.sampled_from(UINT64)


_SECONDS = st.one_of(st.sampled_from(SECONDS), st.integers(0, 10))
_NANOS = st.sampled_from(NANOS)


@functools.cache
def _time(cls: type) -> st.SearchStrategy[Any]:
    return st.builds(lambda seconds, nanos: cls(seconds=seconds, nanos=nanos), _SECONDS, _NANOS)


@functools.cache
def message_strategy(message_descriptor: descriptor.Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    """:func:`messages`, one strategy object per (type, depth): hypothesis validates each new one."""
    return messages(message_descriptor, depth)


@st.composite
def messages(draw: st.DrawFn, message_descriptor: descriptor.Descriptor, depth: int = 0) -> Any:
    """A message of ``message_descriptor`` with a random subset of its fields set."""
    cls = message_factory.GetMessageClass(message_descriptor)
    full_name = message_descriptor.full_name
    if full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        return draw(_time(cls))
    if full_name == "google.protobuf.Struct":
        return draw(STRUCTS)
    if full_name == "google.protobuf.Value":
        return draw(VALUES)
    message = cls()
    fields = message_descriptor.fields
    # A few fields per message (one draw for the choice instead of one per field keeps generation fast).
    chosen = draw(st.lists(st.integers(0, len(fields) - 1), max_size=4, unique=True)) if fields else []
    for field in (fields[i] for i in chosen):
        if field.type == F.TYPE_MESSAGE:
            if depth >= _MAX_DEPTH:
                continue
            with contextlib.suppress(DecodeError):  # too deep to copy in: deep_payloads covers that
                _set_message(draw, message, field, depth)
        elif field.is_repeated:
            getattr(message, field.name).extend(draw(st.lists(_scalar(field), max_size=3)))
        else:
            setattr(message, field.name, draw(_scalar(field)))
    if "attempt_id" in message_descriptor.fields_by_name and "rollout_id" in message_descriptor.fields_by_name:
        name_live_attempt(draw, message)
    return message


def _set_message(draw: st.DrawFn, message: Any, field: descriptor.FieldDescriptor, depth: int) -> None:
    inner = field.message_type
    target = getattr(message, field.name)
    if inner.GetOptions().map_entry and field.name == "labels":
        for key in draw(st.lists(st.one_of(st.sampled_from(LABEL_KEY_POOL), _text()), max_size=3)):
            target[key] = draw(st.one_of(st.sampled_from(LABEL_VALUE_POOL), _text()))
    elif inner.GetOptions().map_entry:
        key_field, value_field = inner.fields_by_name["key"], inner.fields_by_name["value"]
        for key in draw(st.lists(_scalar(key_field), max_size=2)):
            if value_field.type == F.TYPE_MESSAGE:
                target[key].CopyFrom(draw(message_strategy(value_field.message_type, depth + 1)))
            else:
                target[key] = draw(_scalar(value_field))
    elif field.is_repeated:
        target.extend(draw(st.lists(message_strategy(inner, depth + 1), max_size=3)))
    else:
        target.CopyFrom(draw(message_strategy(inner, depth + 1)))


def sanitize(message: Any) -> None:
    """Make ``message`` pass the edge checks more often: valid times, enums, small counts, JSON."""
    for field, value in message.ListFields():
        if field.type == F.TYPE_MESSAGE:
            name = field.message_type.full_name
            items = list(value.values()) if field.message_type.GetOptions().map_entry else None
            if items is not None:
                if field.message_type.fields_by_name["value"].type == F.TYPE_MESSAGE:
                    for item in items:
                        sanitize(item)
            elif name == "google.protobuf.Timestamp":
                value.seconds, value.nanos = 1_700_000_000, 0
            elif name == "google.protobuf.Duration":
                value.seconds, value.nanos = 0, 100_000_000
            elif name == "google.protobuf.Struct":
                value.Clear()
                value.fields["fuzz"].string_value = "ok"
            elif name == "google.protobuf.Value":
                value.Clear()
                value.string_value = "ok"
            elif field.is_repeated:
                for item in value:
                    sanitize(item)
            else:
                sanitize(value)
        elif field.type == F.TYPE_ENUM and not field.is_repeated:
            valid = [v.number for v in field.enum_type.values if v.number]
            if value not in valid and valid:
                setattr(message, field.name, valid[0])
        elif field.type in (F.TYPE_INT32, F.TYPE_INT64) and not field.is_repeated:
            setattr(message, field.name, abs(value) % 5)
    if message.DESCRIPTOR.full_name == "agl.v1.RolloutSpec" and not message.HasField("input"):
        message.input.string_value = "fuzz task"
