"""Fixtures of the tracing tests: a tracer per test (the span processor itself is process-wide)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agl_core.tracer import OtelTracer


@pytest.fixture
def tracer() -> Iterator[OtelTracer]:
    tracer = OtelTracer()
    tracer.init()
    try:
        yield tracer
    finally:
        tracer.teardown()
