"""The toy tokenizer of the OpenAI-compatible test server (support.openai_server): a token is a
word with its trailing spaces, its id a CRC32 of the text (so ids are stable across runs and
machines); specials: 1 = BOS, 2 = EOS, 3 = end of message, 10.. = role markers. A chat prompt is
BOS, then per message its role marker, content and END, then the assistant marker."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

BOS, EOS, END = 1, 2, 3
ROLES = {"system": 10, "user": 11, "assistant": 12, "tool": 13, "developer": 14}
_TOKEN = re.compile(r"\S+\s*|\s+")


def token_ids(text: str) -> list[int]:
    """The toy tokenizer: one id per word (with its trailing whitespace)."""
    return [1000 + zlib.crc32(piece.encode()) % 50_000 for piece in _TOKEN.findall(text)]


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return ""


def prompt_token_ids(messages: Sequence[Mapping[str, Any]]) -> list[int]:
    """The prompt ids of a chat: BOS, then per message its role marker, content and END, then the
    assistant marker (the generation prompt)."""
    ids = [BOS]
    for message in messages:
        ids.append(ROLES.get(str(message.get("role")), 15))
        ids.extend(token_ids(content_text(message.get("content"))))
        for call in message.get("tool_calls") or ():
            ids.extend(token_ids(json.dumps(call.get("function", call), sort_keys=True)))
        ids.append(END)
    ids.append(ROLES["assistant"])
    return ids


def logprob(position: int) -> float:
    return -((position % 7) + 1) / 10
