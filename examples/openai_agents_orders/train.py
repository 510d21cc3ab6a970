"""Optimise the OpenAI Agents SDK order agent's prompt with APO, against any OpenAI-compatible endpoint.

Same environment and options as ``examples/apo_orders/train.py`` (``--rounds``, ``--strategy``,
``--data-dir``, ...); the runners turn on OpenInference's OpenAI Agents instrumentation, so the
calls APO's critique reads come from the SDK's own spans as well as from agl's.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apo_orders"))

from agent import agents_order
from train import main

if __name__ == "__main__":
    main(agents_order, {"type": "otel", "instrument": ["openai-agents"]}, __doc__.split("\n")[0])
