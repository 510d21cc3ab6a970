"""Streams of the Messages API: OpenAI chunks told as Anthropic events, and Anthropic events folded
back into the message they make.

:class:`EventWriter` turns the chunks of a streamed chat completion into the Messages API's event
sequence (``message_start``, then per content block ``content_block_start`` / ``_delta`` /
``_stop``, then ``message_delta`` with the stop reason and usage, and ``message_stop``). The last
two are given by :meth:`EventWriter.finish`, which the proxy calls only after the call's span is in
the store: the caller sees the end of the answer only once it is recorded.

:class:`MessageAccumulator` rebuilds the message of a stream a native backend sends (how such a
call is recorded). Both are linear in the stream's length.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agl_llm_proxy import anthropic


def sse(event: str, data: Mapping[str, Any]) -> bytes:
    """One server-sent event as Anthropic writes them (an ``event:`` line naming the data's type)."""
    return f"event: {event}\ndata: ".encode() + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


class EventWriter:
    """Anthropic events of one streamed chat completion (its first choice), chunk by chunk."""

    def __init__(self, request: Mapping[str, Any]) -> None:
        self.request = request
        self._started = False
        self._block: int = -1  # index of the open content block (-1: none open)
        self._block_kind: str | None = None
        self._tool_blocks: dict[int, int] = {}  # OpenAI tool call index -> content block index
        self._finish_reason: Any = None
        self._matched: Any = None
        self._usage: Any = None
        self._input_tokens = 0

    def _start(self, chunk: Mapping[str, Any]) -> bytes:
        self._started = True
        prompt_ids = chunk.get("prompt_token_ids")
        if isinstance(prompt_ids, list):  # vLLM: the prompt's ids come first, its usage only at the end
            self._input_tokens = len(prompt_ids)
        message = {
            "id": anthropic.message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or self.request.get("model"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self._input_tokens, "output_tokens": 0},
        }
        return sse("message_start", {"type": "message_start", "message": message})

    def _close_block(self) -> bytes:
        if self._block < 0 or self._block_kind is None:
            return b""
        self._block_kind = None
        return sse("content_block_stop", {"type": "content_block_stop", "index": self._block})

    def _open_block(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close_block()
        self._block += 1
        self._block_kind = kind
        return out + sse(
            "content_block_start", {"type": "content_block_start", "index": self._block, "content_block": block}
        )

    def add(self, chunk: Mapping[str, Any]) -> bytes:
        """The events (bytes on the wire) one OpenAI chunk makes; may be empty."""
        out = b"" if self._started else self._start(chunk)
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, Mapping) or int(choice.get("index") or 0) != 0:
                continue
            delta = choice.get("delta") if isinstance(choice.get("delta"), Mapping) else {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self._block_kind != "text":
                    out += self._open_block("text", {"type": "text", "text": ""})
                out += sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self._block,
                        "delta": {"type": "text_delta", "text": text},
                    },
                )
            for call in delta.get("tool_calls") or ():
                out += self._tool_delta(call)
            if choice.get("finish_reason") is not None:
                self._finish_reason = choice["finish_reason"]
                self._matched = choice.get("stop_reason")
                out += self._close_block()
        return out

    def _tool_delta(self, call: Mapping[str, Any]) -> bytes:
        out = b""
        index = int(call.get("index") or 0)
        function = call.get("function") if isinstance(call.get("function"), Mapping) else {}
        if index not in self._tool_blocks:
            block = {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_agl_{index}",
                "name": function.get("name") or "",
                "input": {},
            }
            out += self._open_block("tool_use", block)
            self._tool_blocks[index] = self._block
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            # OpenAI backends send one tool call's arguments contiguously: its block is the open one.
            delta = {"type": "input_json_delta", "partial_json": arguments}
            out += sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": self._tool_blocks[index], "delta": delta},
            )
        return out

    def finish(self) -> bytes:
        """The closing events: ``message_delta`` (stop reason, usage) and ``message_stop``."""
        out = b"" if self._started else self._start({})
        out += self._close_block()
        reason, sequence = anthropic.stop_reason(
            self._finish_reason or "stop", self._matched, self.request.get("stop_sequences")
        )
        usage = anthropic.usage(self._usage)
        if not usage["input_tokens"]:
            usage["input_tokens"] = self._input_tokens
        delta = {"stop_reason": reason, "stop_sequence": sequence}
        out += sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        return out + sse("message_stop", {"type": "message_stop"})


class MessageAccumulator:
    """The message a stream of Anthropic events makes (for recording natively served calls)."""

    def __init__(self) -> None:
        self.message: dict[str, Any] = {}
        self._blocks: dict[int, dict[str, Any]] = {}
        self._parts: dict[int, list[str]] = {}  # text or partial JSON, joined once at the end
        self.stopped = False

    def add(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), Mapping):
            self.message = dict(event["message"])
        elif kind == "content_block_start" and isinstance(event.get("content_block"), Mapping):
            index = int(event.get("index") or 0)
            self._blocks[index] = dict(event["content_block"])
            self._parts[index] = []
        elif kind == "content_block_delta" and isinstance(event.get("delta"), Mapping):
            delta = event["delta"]
            piece = delta.get("text", delta.get("partial_json", delta.get("thinking")))
            if isinstance(piece, str):
                self._parts.setdefault(int(event.get("index") or 0), []).append(piece)
        elif kind == "message_delta":
            if isinstance(event.get("delta"), Mapping):
                self.message.update(event["delta"])
            if isinstance(event.get("usage"), Mapping):
                self.message["usage"] = {**(self.message.get("usage") or {}), **event["usage"]}
        elif kind == "message_stop":
            self.stopped = True

    def result(self) -> dict[str, Any]:
        content = []
        for index in sorted(self._blocks):
            block = dict(self._blocks[index])
            joined = "".join(self._parts.get(index, ()))
            if block.get("type") == "text":
                block["text"] = block.get("text", "") + joined
            elif block.get("type") == "tool_use" and joined:
                block["input"] = anthropic.tool_input(joined)
            elif block.get("type") == "thinking":
                block["thinking"] = block.get("thinking", "") + joined
            content.append(block)
        return {**self.message, "content": content}


__all__ = ["EventWriter", "MessageAccumulator", "sse"]
