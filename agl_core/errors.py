"""Errors raised by every store (embedded or over gRPC), each tied to one gRPC status code.

The embedded store raises them directly; agl-server turns them into the status code and message;
the gRPC client turns the status back into the same exception. Code written against one store
therefore handles errors of any other the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc


class AglError(Exception):
    """Base class of agl errors. ``str(error)`` says what is wrong and what to do."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgumentError(AglError, ValueError):
    """The request is malformed: a missing field, a wrong type, a value out of range."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(AglError, LookupError):
    """An id names nothing the store holds."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(AglError):
    """A client-chosen id is taken by something different."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPreconditionError(AglError):
    """The request is well formed but not allowed in the current state (an illegal transition)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhaustedError(AglError):
    """A message or batch is larger than the server accepts, or the store is full."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnavailableError(AglError, ConnectionError):
    """The server cannot be reached, or is shutting down."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(AglError, TimeoutError):
    """The call did not finish before its deadline."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class UnauthenticatedError(AglError):
    """The call carries no valid token."""

    code = grpc.StatusCode.UNAUTHENTICATED


class CancelledError(AglError):
    """The call was cancelled."""

    code = grpc.StatusCode.CANCELLED


class InternalError(AglError):
    """A bug or an unexpected failure on the server; the message says where to look."""

    code = grpc.StatusCode.INTERNAL


class BatchError(AglError):
    """Some items of a batch failed; the others were applied.

    :ivar results: one entry per request item: the result, or ``None`` for a failed item.
    :ivar errors: ``(index, error)`` for every failed item.
    """

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, results: Sequence[Any], errors: Sequence[tuple[int, AglError]]) -> None:
        shown = "; ".join(f"item {i}: {e}" for i, e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"{len(errors)} of {len(results)} items failed: {shown}{more}")
        self.results = list(results)
        self.errors = list(errors)


_BY_CODE: dict[grpc.StatusCode, type[AglError]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        AlreadyExistsError,
        FailedPreconditionError,
        ResourceExhaustedError,
        UnavailableError,
        DeadlineExceededError,
        UnauthenticatedError,
        CancelledError,
        InternalError,
    )
}
_BY_CODE[grpc.StatusCode.PERMISSION_DENIED] = UnauthenticatedError


def error_for_code(code: grpc.StatusCode | int, message: str) -> AglError:
    """The exception for a gRPC status code (an enum member or its integer value)."""
    if isinstance(code, int):
        code = next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    cls = _BY_CODE.get(code, AglError)
    error = cls(message)
    if cls is AglError:
        error.code = code
    return error


def code_number(error: AglError) -> int:
    """The integer google.rpc.Code of an error, as carried in ``ItemError.code``."""
    return int(error.code.value[0])
