"""Fixtures of the APO tests: the toy agent/critique/edit models on a local OpenAI-compatible
server, and the order-extraction example (agent, tasks, grader) the runs optimise a prompt for."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import apo_models
from support.openai_server import OpenAIServer

# The example's module, importable here and (through sys.path, which spawned runner processes
# inherit) in runner processes.
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "apo_orders"
if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))

import orders  # noqa: E402


@pytest.fixture
def apo_llm() -> Iterator[OpenAIServer]:
    """One server playing the agent, critique and edit models (see support/apo_models.py)."""
    with OpenAIServer(reply=apo_models.reply) as server:
        yield server


@pytest.fixture
def order_tasks() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training, validation) tasks of the example."""
    rng = random.Random(7)
    return orders.make_tasks(12, rng), orders.make_tasks(8, rng)
