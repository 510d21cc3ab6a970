"""Checks every request gets at the server's edge, whatever its type, before any backend sees it.

They walk the fields a request sets and refuse values that protobuf accepts but the store cannot
hold or read back:

- a ``Timestamp`` outside what int64 nanoseconds since the Unix epoch hold (the store's and
  OpenTelemetry's form), or with nanos outside 0..999,999,999;
- a ``Duration`` that is not a valid protobuf Duration or does not fit int64 nanoseconds;
- a ``Struct``/``Value`` with a non-finite number, a value without a kind, or nesting deeper
  than :data:`agl_core.types.values.MAX_DEPTH` (the one check StartRollout already applied);
- an id (a string field named ``*_id``) longer than :data:`validation.MAX_ID_BYTES` in UTF-8, and
  an empty or too long id in an id list (``*_id_in``, ``*_ids``);
- a sequence id (``sequence_id`` fields) outside 0 .. :data:`validation.MAX_SEQUENCE_ID`.

Each refusal is an :class:`InvalidArgumentError` naming the field by its path in the request
and the valid range. Semantic checks (a required id, a positive wait) stay with the backend.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor

from agl_core.errors import InvalidArgumentError
from agl_core.store import validation
from agl_core.types.values import check_struct, check_value

_MESSAGE = descriptor.FieldDescriptor.TYPE_MESSAGE
_STRING = descriptor.FieldDescriptor.TYPE_STRING
_INT_TYPES = frozenset(
    {
        descriptor.FieldDescriptor.TYPE_INT64,
        descriptor.FieldDescriptor.TYPE_INT32,
        descriptor.FieldDescriptor.TYPE_SINT64,
        descriptor.FieldDescriptor.TYPE_SFIXED64,
    }
)
_INT64_MAX = 2**63 - 1
_NANOS_PER_SECOND = 1_000_000_000
# The Timestamp range of this store: int64 nanoseconds since the Unix epoch.
_MAX_TIMESTAMP_SECONDS = _INT64_MAX // _NANOS_PER_SECOND  # 2262-04-11T23:47:16Z
TIMESTAMP_RANGE = "1970-01-01T00:00:00Z to 2262-04-11T23:47:16Z"
# Durations: what int64 nanoseconds hold (about 292 years either way).
_MAX_DURATION_SECONDS = _INT64_MAX // _NANOS_PER_SECOND


def _describe_time(message: Any) -> str:
    return f"{{seconds: {message.seconds}, nanos: {message.nanos}}}"


def check_timestamp(ts: Any, where: str) -> None:
    seconds, nanos = ts.seconds, ts.nanos
    if not 0 <= nanos < _NANOS_PER_SECOND or not 0 <= seconds * _NANOS_PER_SECOND + nanos <= _INT64_MAX:
        raise InvalidArgumentError(
            f"{where} is {_describe_time(ts)}; a timestamp must lie between {TIMESTAMP_RANGE} (seconds 0 to "
            f"{_MAX_TIMESTAMP_SECONDS}, nanos 0 to 999999999)"
        )


def check_duration(duration: Any, where: str) -> None:
    seconds, nanos = duration.seconds, duration.nanos
    valid = (
        -_NANOS_PER_SECOND < nanos < _NANOS_PER_SECOND
        and not (seconds > 0 and nanos < 0)
        and not (seconds < 0 and nanos > 0)
        and abs(seconds * _NANOS_PER_SECOND + nanos) <= _INT64_MAX
    )
    if not valid:
        raise InvalidArgumentError(
            f"{where} is {_describe_time(duration)}; a duration must have |seconds| at most {_MAX_DURATION_SECONDS} "
            "(about 292 years) and nanos between -999999999 and 999999999 with the sign of seconds"
        )


def _check_leaf_message(message: Any, full_name: str, where: str) -> bool:
    """Check a well-known message; False when ``message`` is not one (walk into it instead)."""
    if full_name == "google.protobuf.Timestamp":
        check_timestamp(message, where)
    elif full_name == "google.protobuf.Duration":
        check_duration(message, where)
    elif full_name == "google.protobuf.Struct":
        check_struct(message, where)
    elif full_name == "google.protobuf.Value":
        check_value(message, where)
    elif full_name == "google.protobuf.ListValue":
        for i, item in enumerate(message.values):
            check_value(item, f"{where}[{i}]")
    else:
        return False
    return True


def _is_id_list(name: str) -> bool:
    return name.endswith(("_id_in", "_ids"))


def check_request(message: Any, where: str = "", *, skip: frozenset[str] = frozenset()) -> None:
    """Raise :class:`InvalidArgumentError` for the first value in ``message`` the store cannot hold.

    :param where: the path of ``message`` in the request ("" for the request itself).
    :param skip: top-level fields left to the caller (a batch whose items fail alone).
    """
    prefix = f"{where}." if where else ""
    for field, value in message.ListFields():
        name = field.name
        if name in skip:
            continue
        path = prefix + name
        if field.type == _MESSAGE:
            if field.message_type.GetOptions().map_entry:
                value_field = field.message_type.fields_by_name["value"]
                if value_field.type == _MESSAGE:
                    for key, item in value.items():
                        _check_message(item, value_field.message_type.full_name, f"{path}[{key!r}]")
            elif field.is_repeated:
                for i, item in enumerate(value):
                    _check_message(item, field.message_type.full_name, f"{path}[{i}]")
            else:
                _check_message(value, field.message_type.full_name, path)
        elif field.type == _STRING:
            if field.is_repeated:
                if _is_id_list(name):
                    # An empty id in a filter list matches nothing (no record has one), as in the embedded store.
                    for i, item in enumerate(value):
                        validation.check_id_length(item, f"{path}[{i}]")
            elif name.endswith("_id"):
                validation.check_id_length(value, path)
        elif field.type in _INT_TYPES and name.endswith("sequence_id") and not field.is_repeated:
            validation.check_sequence_id(value, path)


def _check_message(message: Any, full_name: str, where: str) -> None:
    if not _check_leaf_message(message, full_name, where):
        check_request(message, where)
