"""Server-sent events, split incrementally from a byte stream (what OpenAI-compatible servers stream).

Hand-written because it is small and because line-based readers cap a line's length (aiohttp's at
128 KiB), while a vLLM chunk carrying the prompt's token ids can be far longer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Event:
    """One event: its raw bytes (without the blank line that ends it) and its ``data`` field."""

    raw: bytes
    data: str | None

    @property
    def done(self) -> bool:
        """The ``[DONE]`` sentinel that ends an OpenAI stream."""
        return self.data is not None and self.data.strip() == "[DONE]"

    def json(self) -> Any:
        """The data as JSON, or None when there is none or it is not JSON."""
        if self.data is None or self.done:
            return None
        try:
            return json.loads(self.data)
        except json.JSONDecodeError:
            return None

    def encode(self) -> bytes:
        """The event as it goes on the wire, blank line included."""
        return self.raw + b"\n\n"


def _parse(raw: bytes) -> Event:
    data: list[str] = []
    for line in raw.decode("utf-8", "replace").split("\n"):
        if line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    return Event(raw, "\n".join(data) if data else None)


class SSEDecoder:
    """Feed bytes as they arrive; get back the events they complete.

    Linear in the bytes fed, however finely they are split: each byte is scanned once.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # the buffer holds no event end before this offset
        self._carry = b""

    def feed(self, chunk: bytes) -> list[Event]:
        data, self._carry = self._carry + chunk, b""
        if data.endswith(b"\r"):  # maybe a \r\n split across chunks: wait for the \n
            data, self._carry = data[:-1], b"\r"
        self._buffer += data.replace(b"\r\n", b"\n")
        return self._split()

    def _split(self) -> list[Event]:
        events = []
        start = 0
        while True:
            end = self._buffer.find(b"\n\n", max(start, self._scanned - 1))
            if end < 0:
                break
            raw = bytes(self._buffer[start:end])
            if raw.strip():
                events.append(_parse(raw))
            start = self._scanned = end + 2
        if start:
            del self._buffer[:start]
        self._scanned = len(self._buffer)
        return events

    def close(self) -> list[Event]:
        """Whatever is left when the stream ends (an event not followed by a blank line)."""
        raw = bytes(self._buffer).rstrip(b"\r\n")
        self._buffer, self._scanned, self._carry = bytearray(), 0, b""
        return [_parse(raw)] if raw.strip() else []


__all__ = ["Event", "SSEDecoder"]
