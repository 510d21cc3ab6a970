"""Conversions between Python values and the protobuf value types (JSON ``Value``/``Struct`` and
OpenTelemetry ``AnyValue``).

Task inputs and metadata travel as JSON: numbers are doubles on the wire, so an integral number
comes back as ``int`` (``{"n": 3}`` round-trips as ``{"n": 3}``, not ``3.0``), and non-finite
numbers are refused because JSON cannot carry them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2

from agl_core.errors import InvalidArgumentError
from agl_core.proto import trace_pb2

# Each JSON level is two protobuf message levels (Value, then Struct/ListValue), and protobuf refuses
# messages nested deeper than 100; 32 JSON levels stay clear of that with room for the envelope.
MAX_DEPTH = 32
# Doubles represent every integer up to 2**53 exactly; beyond that an int would change value.
_MAX_EXACT_INT = 2**53


def _path(where: str, key: object) -> str:
    return f"{where}[{key!r}]" if not isinstance(key, str) or not key.isidentifier() else f"{where}.{key}"


def to_value(obj: Any, where: str = "$", _depth: int = 0) -> struct_pb2.Value:
    """Convert a JSON-like Python object (dict, list, str, number, bool, None) to a ``Value``.

    :raises InvalidArgumentError: for non-finite numbers, integers beyond 2**53, non-string dict
        keys, nesting deeper than 64, or types JSON cannot hold; the message names the place.
    """
    value = struct_pb2.Value()
    _fill_value(value, obj, where, _depth)
    return value


def _fill_value(value: struct_pb2.Value, obj: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidArgumentError(f"{where} is nested deeper than {MAX_DEPTH} levels; flatten the task input")
    if obj is None:
        value.null_value = struct_pb2.NULL_VALUE
    elif isinstance(obj, bool):
        value.bool_value = obj
    elif isinstance(obj, int):
        if abs(obj) > _MAX_EXACT_INT:
            raise InvalidArgumentError(
                f"{where} is the integer {obj}, beyond 2**53 where JSON numbers lose precision; send it as a string"
            )
        value.number_value = obj
    elif isinstance(obj, float):
        if not math.isfinite(obj):
            raise InvalidArgumentError(f"{where} is {obj}; JSON numbers must be finite (send null or a string)")
        value.number_value = obj
    elif isinstance(obj, str):
        value.string_value = obj
    elif isinstance(obj, Mapping):
        value.struct_value.SetInParent()  # an empty object is still an object, not a Value with no kind
        fields = value.struct_value.fields
        for key, item in obj.items():
            if not isinstance(key, str):
                raise InvalidArgumentError(f"{where} has the key {key!r}; JSON object keys must be strings")
            _fill_value(fields[key], item, _path(where, key), depth + 1)
    elif isinstance(obj, (list, tuple)):
        value.list_value.SetInParent()  # likewise for an empty list
        values = value.list_value.values
        for i, item in enumerate(obj):
            _fill_value(values.add(), item, f"{where}[{i}]", depth + 1)
    else:
        raise InvalidArgumentError(
            f"{where} is a {type(obj).__name__}, which JSON cannot hold; convert it to a dict, list, str, "
            "number, bool or None"
        )


def from_value(value: struct_pb2.Value) -> Any:
    """Convert a ``Value`` back to Python. Integral numbers within 2**53 come back as ``int``."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return {k: from_value(v) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [from_value(v) for v in value.list_value.values]
    if kind == "number_value":
        number = value.number_value
        if number.is_integer() and abs(number) <= _MAX_EXACT_INT:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    return None


def _value_ok(value: struct_pb2.Value, depth: int) -> bool:
    """The fast test of :func:`check_value` (no messages built); False means look closer."""
    if depth > MAX_DEPTH:
        return False
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return all(_value_ok(item, depth + 1) for item in value.struct_value.fields.values())
    if kind == "list_value":
        return all(_value_ok(item, depth + 1) for item in value.list_value.values)
    if kind == "number_value":
        return math.isfinite(value.number_value)
    return kind is not None


def check_value(value: struct_pb2.Value, where: str = "$", _depth: int = 0) -> None:
    """Validate a ``Value`` that arrived over the wire (finite numbers, bounded depth, kind set).

    :raises InvalidArgumentError: naming the first offending place.
    """
    if _depth == 0 and _value_ok(value, 0):
        return
    if _depth > MAX_DEPTH:
        raise InvalidArgumentError(f"{where} is nested deeper than {MAX_DEPTH} levels; flatten the task input")
    kind = value.WhichOneof("kind")
    if kind is None:
        raise InvalidArgumentError(f"{where} is a Value with no kind set; send null_value for an empty value")
    if kind == "number_value" and not math.isfinite(value.number_value):
        raise InvalidArgumentError(
            f"{where} is {value.number_value}; JSON numbers must be finite (send null or a string)"
        )
    if kind == "struct_value":
        for key, item in value.struct_value.fields.items():
            check_value(item, _path(where, key), _depth + 1)
    elif kind == "list_value":
        for i, item in enumerate(value.list_value.values):
            check_value(item, f"{where}[{i}]", _depth + 1)


def to_struct(obj: Mapping[str, Any] | None, where: str = "metadata") -> struct_pb2.Struct:
    """Convert a dict with string keys to a ``Struct`` (``None`` gives an empty one)."""
    struct = struct_pb2.Struct()
    if obj:
        if not isinstance(obj, Mapping):
            raise InvalidArgumentError(f"{where} must be a dict, not a {type(obj).__name__}")
        for key, item in obj.items():
            if not isinstance(key, str):
                raise InvalidArgumentError(f"{where} has the key {key!r}; keys must be strings")
            _fill_value(struct.fields[key], item, _path(where, key), 1)
    return struct


def from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    return {k: from_value(v) for k, v in struct.fields.items()}


def check_struct(struct: struct_pb2.Struct, where: str) -> None:
    for key, item in struct.fields.items():
        if not _value_ok(item, 1):
            check_value(item, _path(where, key), 1)


# --- OpenTelemetry attribute values ---------------------------------------------------------------


def to_any_value(obj: Any) -> trace_pb2.AnyValue:
    """Convert an attribute value (str, bool, int, float, bytes, list, dict) to ``AnyValue``."""
    value = trace_pb2.AnyValue()
    _fill_any(value, obj)
    return value


def _fill_any(value: trace_pb2.AnyValue, obj: Any) -> None:
    if isinstance(obj, bool):
        value.bool_value = obj
    elif isinstance(obj, int):
        value.int_value = obj
    elif isinstance(obj, float):
        value.double_value = obj
    elif isinstance(obj, str):
        value.string_value = obj
    elif isinstance(obj, (bytes, bytearray)):
        value.bytes_value = bytes(obj)
    elif isinstance(obj, Mapping):
        kvs = value.kvlist_value.values
        for key, item in obj.items():
            kv = kvs.add()
            kv.key = str(key)
            _fill_any(kv.value, item)
    elif isinstance(obj, (list, tuple)):
        values = value.array_value.values
        for item in obj:
            _fill_any(values.add(), item)
    elif obj is None:
        pass  # an AnyValue with nothing set is OTLP's empty value
    else:
        value.string_value = str(obj)


def from_any_value(value: trace_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [from_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: from_any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def set_attributes(target: Any, attributes: Mapping[str, Any]) -> None:
    """Append ``attributes`` to a repeated ``KeyValue`` field holder (a span, event, resource...)."""
    kvs = target.attributes
    for key, item in attributes.items():
        kv = kvs.add()
        kv.key = key
        _fill_any(kv.value, item)


def attributes_dict(target: Any) -> dict[str, Any]:
    """The attributes of a span, event, link or resource as a dict (later keys win)."""
    return {kv.key: from_any_value(kv.value) for kv in target.attributes}
