"""Hypothesis strategies for fuzzing agl-server: a request's bytes, whole or damaged.

Mostly a generated message (``fuzz_messages``), sometimes mutated (truncated, a byte flipped,
invalid UTF-8 spliced in, garbage appended), random bytes, or a Struct nested past protobuf's depth
limit where the message has one (protobuf would refuse to build such a message, so it is written
byte by byte).
"""

from __future__ import annotations

import functools

from google.protobuf import descriptor
from hypothesis import strategies as st

from agl_core.store.wire import varint
from support.fuzz_messages import F, message_strategy, sanitize

_HOW = st.sampled_from(("truncate", "flip", "utf8", "append"))
_POSITION = st.floats(0, 1, exclude_max=True)
_GARBAGE = st.binary(min_size=1, max_size=16)
_XOR = st.integers(1, 255)


def mutate(draw: st.DrawFn, raw: bytes) -> bytes:
    """``raw`` damaged: truncated, a byte changed, invalid UTF-8 spliced in, or garbage appended."""
    how = draw(_HOW)
    if not raw or how == "append":
        return raw + draw(_GARBAGE)
    at = int(draw(_POSITION) * len(raw))
    if how == "truncate":
        return raw[:at]
    if how == "flip":
        return raw[:at] + bytes([raw[at] ^ draw(_XOR)]) + raw[at + 1 :]
    return raw[:at] + b"\xc3\x28" + raw[at + 2 :]


_CHOICE = st.integers(0, 9)
_RANDOM = st.binary(max_size=64)
_LEVELS = st.sampled_from((40, 47, 48, 49, 50, 80))
_WELL_KNOWN = frozenset({"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"})


def length_delimited(number: int, payload: bytes) -> bytes:
    """Field ``number`` holding ``payload`` (bytes, a string or a message), serialized."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


@functools.cache
def _struct_path(message_descriptor: descriptor.Descriptor, depth: int = 0) -> tuple[int, ...] | None:
    """Field numbers leading from ``message_descriptor`` to a Struct field, if one is near."""
    nested = [
        f for f in message_descriptor.fields if f.type == F.TYPE_MESSAGE and not f.message_type.GetOptions().map_entry
    ]
    for field in nested:
        if field.message_type.full_name == "google.protobuf.Struct":
            return (field.number,)
    if depth < 3:
        for field in nested:
            if field.message_type.full_name not in _WELL_KNOWN:
                path = _struct_path(field.message_type, depth + 1)
                if path is not None:
                    return (field.number, *path)
    return None


def deep_struct(levels: int) -> bytes:
    """A serialized Struct nested ``levels`` Struct/Value pairs deep (protobuf would refuse to build it)."""
    struct = b""
    for _ in range(levels):
        value = length_delimited(5, struct)  # Value.struct_value
        # Struct.fields: a map entry {key, value}
        struct = length_delimited(1, length_delimited(1, b"k") + length_delimited(2, value))
    return struct


def _deep(message_descriptor: descriptor.Descriptor, levels: int) -> bytes | None:
    path = _struct_path(message_descriptor)
    if path is None:
        return None
    payload = deep_struct(levels)
    for number in reversed(path):
        payload = length_delimited(number, payload)
    return payload


@st.composite
def payloads(draw: st.DrawFn, message_descriptor: descriptor.Descriptor) -> bytes:
    """Serialized request bytes: mostly generated messages, sometimes damaged or random."""
    choice = draw(_CHOICE)
    if choice == 0:
        return draw(_RANDOM)
    if choice == 2:
        deep = _deep(message_descriptor, draw(_LEVELS))
        if deep is not None:
            return deep
    message = draw(message_strategy(message_descriptor))
    if choice >= 6:
        sanitize(message)  # valid-ish: reaches the store's logic instead of its checks
    raw = message.SerializeToString()
    return mutate(draw, raw) if choice == 1 else raw


# One strategy object per message type: hypothesis validates each new one.
payload_strategy = functools.cache(payloads)
