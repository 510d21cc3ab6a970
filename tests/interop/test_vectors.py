"""The Python side of the cross-language interop vectors (clients/interop/vectors).

Each vector is a message described in proto3 JSON. Every language (Python here, Go in
clients/go/interop, TypeScript in clients/ts/test/interop.test.ts) parses the description,
encodes it deterministically and keeps its encoding in ``encoded/<language>/<name>.binpb``. Each
suite then checks that its own encoding is current, decodes every language's encoding and
compares it with the description value for value, and, for ``byte_exact`` vectors, that all
languages wrote the same bytes. So every message is encoded by each language and decoded by
the others.

``AGL_UPDATE_VECTORS=1`` only rewrites the Python encodings; ``make interop-vectors`` rewrites all
three and then runs the checks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

import agl_core.proto.runner_pb2  # registers the Work stream's messages (WorkRequest, ...)
import agl_core.proto.store_pb2  # noqa: F401 - registers every agl.v1 message in the default pool

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "clients" / "interop" / "vectors"
LANGUAGES = ("python", "go", "ts")
UPDATE = os.environ.get("AGL_UPDATE_VECTORS") == "1"


def _vectors() -> list[Path]:
    return sorted(VECTORS.glob("*.json"))


def _parse(path: Path) -> tuple[dict[str, Any], Message]:
    vector = json.loads(path.read_text())
    cls = message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(vector["type"]))
    return vector, json_format.ParseDict(vector["message"], cls())


@pytest.mark.skipif(UPDATE, reason="rewriting the encodings")
def test_there_are_vectors_for_every_language() -> None:
    names = {p.stem for p in _vectors()}
    assert len(names) >= 10
    for language in LANGUAGES:
        encoded = {p.stem for p in (VECTORS / "encoded" / language).glob("*.binpb")}
        assert encoded == names, f"{language} encodings missing or extra: {encoded ^ names}"


@pytest.mark.parametrize("path", _vectors(), ids=lambda p: p.stem)
def test_vector(path: Path) -> None:
    vector, message = _parse(path)
    ours = message.SerializeToString(deterministic=True)
    mine = VECTORS / "encoded" / "python" / f"{path.stem}.binpb"
    if UPDATE:  # write only; the other languages' encodings may not be rewritten yet
        mine.parent.mkdir(parents=True, exist_ok=True)
        mine.write_bytes(ours)
        return
    assert mine.read_bytes() == ours, f"{mine} is stale; run `make interop-vectors`"

    # The JSON description survives a round trip through Python's JSON writer and parser.
    again = json_format.ParseDict(json_format.MessageToDict(message), type(message)())
    assert again.SerializeToString(deterministic=True) == ours

    for language in LANGUAGES:
        raw = (VECTORS / "encoded" / language / f"{path.stem}.binpb").read_bytes()
        decoded = type(message).FromString(raw)
        # The JSON form compares values (NaN as "NaN"); no unknown fields means nothing was lost.
        assert json_format.MessageToDict(decoded) == json_format.MessageToDict(message), (
            f"{language}'s encoding of {path.stem} decodes to a different value in Python"
        )
        assert len(UnknownFieldSet(decoded)) == 0, f"{language}'s {path.stem} has fields Python does not know"
        if vector["byte_exact"]:
            assert raw == ours, f"{language} encodes {path.stem} with other bytes than Python"
