"""Three toy models for APO tests, served by :class:`~support.openai_server.OpenAIServer`
(``OpenAIServer(reply=apo_models.reply)``, or ``python -m support.openai_server --reply
support.apo_models:reply`` from ``tests/``), playing the order-extraction world of
``examples/apo_orders``.

None of them knows the answer to a task; each does what a real model of its role would, from
what it is sent:

- the **agent model** (any model name but the two below) reads the order message in its prompt
  and writes the order, following only the instructions the prompt contains: without one asking
  for ``product|quantity|date`` it answers in prose; each field comes out normalised (lowercase
  singular product, quantity in digits, ISO date) only when the prompt asks for it. So a better
  prompt really scores higher.
- the **critique model** (``critique-model``) reads the experiments it is shown (``<experiment>``
  blocks, as the shipped critique prompt renders them), takes the first one whose feedback says it
  lost points, compares its reply with the expected line in the feedback and names the first
  thing that differs, quoting the instruction that would fix it. Shown only successes (or nothing
  it can read), it finds nothing to change.
- the **edit model** (``edit-model``) takes the ``<prompt_template>`` and ``<critique>`` it is sent
  and appends every instruction the critique quotes that the template lacks.

Offered tools (the framework examples: ``examples/langgraph_orders``, ``examples/openai_agents_orders``),
the agent model first calls the first tool once with the product word of the message
(``{"name": "Peaches"}``), then, shown the tool's result, answers as above: two turns per rollout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

CRITIQUE_MODEL = "critique-model"
EDIT_MODEL = "edit-model"
AGENT_MODEL = "agent-model"

# What each kind of mistake needs, as the critique model words it ...
INSTRUCTIONS = {
    "format": "Reply with one line in the form product|quantity|date and nothing else.",
    "product": "Write the product as a lowercase singular noun.",
    "quantity": "Write the quantity in digits.",
    "date": "Write the date as YYYY-MM-DD.",
}
# ... and what the agent model recognises in a prompt.
CUES = {
    "format": "product|quantity|date",
    "product": "lowercase singular",
    "quantity": "in digits",
    "date": "yyyy-mm-dd",
}
FIELDS = ("product", "quantity", "date")

NUMBER_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_QUANTITY = r"(\d+|" + "|".join(NUMBER_WORDS) + r")"
# The produce it knows (a model knows what fruit is; it does not know the shop's format).
_PRODUCE = r"((?:apple|lemon|peach|cherr|potato|melon|tomato|plum)[a-z]*)"
_ORDER = re.compile(r"\b" + _QUANTITY + r"\s+" + _PRODUCE + r"\b", re.IGNORECASE)
_MONTH = "(" + "|".join(MONTHS) + ")"
_DATE_US = re.compile(_MONTH + r" (\d{1,2}), (\d{4})")
_DATE_EU = re.compile(r"(\d{1,2}) " + _MONTH + r" (\d{4})")
_EXPERIMENT = re.compile(r"<experiment\b[^>]*>(.*?)</experiment>", re.DOTALL)
_FEEDBACK = re.compile(r"feedback: scored (\d)/3\b.*?expected exactly: (\S+)")
_TAG = {name: re.compile(rf"<{name}>\n?(.*?)\n?</{name}>", re.DOTALL) for name in ("prompt_template", "critique")}


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return content if isinstance(content, str) else ""


def singular(word: str) -> str:
    word = word.lower()
    for ending, replacement in (("ies", "y"), ("oes", "o"), ("ches", "ch"), ("s", "")):
        if word.endswith(ending):
            return word[: -len(ending)] + replacement
    return word


# --- the agent model ----------------------------------------------------------------------------------


def agent_reply(prompt: str) -> str:
    follows = {rule for rule, cue in CUES.items() if cue in prompt.lower()}
    order = _ORDER.search(prompt)
    date = _DATE_US.search(prompt) or _DATE_EU.search(prompt)
    if order is None or date is None:
        return "I could not find an order in this message."
    quantity, product = order.group(1), order.group(2)
    if date.re is _DATE_US:
        month, day, year = date.group(1), date.group(2), date.group(3)
    else:
        day, month, year = date.group(1), date.group(2), date.group(3)
    written_date = date.group(0)
    if "product" in follows:
        product = singular(product)
    if "quantity" in follows and not quantity.isdigit():
        quantity = str(NUMBER_WORDS.index(quantity.lower()) + 1)
    if "date" in follows:
        written_date = f"{year}-{MONTHS.index(month) + 1:02d}-{int(day):02d}"
    if "format" not in follows:
        return f"The customer would like {quantity} {product}, delivered on {written_date}."
    return f"{product}|{quantity}|{written_date}"


# --- the critique model --------------------------------------------------------------------------------


def _mistake(reply: str, expected: str) -> str | None:
    got = [f.strip() for f in reply.strip().split("|")]
    if len(got) != 3:
        return "format"
    for name, have, want in zip(FIELDS, got, expected.split("|"), strict=True):
        if have != want:
            return name
    return None


def critique_reply(text: str) -> str:
    for block in _EXPERIMENT.findall(text):
        feedback = _FEEDBACK.search(block)
        replies = re.findall(r"^assistant: (.*)$", block, re.MULTILINE)
        if feedback is None or not replies or feedback.group(1) == "3":
            continue
        mistake = _mistake(replies[-1], feedback.group(2))
        if mistake is not None:
            return (
                f"- The reply {replies[-1]!r} does not match the expected {feedback.group(2)!r}: the "
                f'{mistake} is wrong. Add the instruction: "{INSTRUCTIONS[mistake]}"'
            )
    return "- The experiments show no mistake the template could prevent; no change needed."


# --- the edit model ---------------------------------------------------------------------------------


def edit_reply(text: str) -> str:
    template, critique = (_TAG[name].search(text) for name in ("prompt_template", "critique"))
    if template is None or critique is None:
        return "I need a <prompt_template> and a <critique>."
    revised = template.group(1)
    for instruction in re.findall(r"\"([^\"]+)\"", critique.group(1)):
        if instruction not in revised:
            revised += "\n" + instruction
    return revised


def reply(body: Mapping[str, Any], index: int) -> str | dict[str, Any]:
    """The ``reply`` function for OpenAIServer: dispatch on the requested model."""
    messages = body.get("messages") or []
    model = body.get("model")
    if model == CRITIQUE_MODEL:
        return critique_reply("\n".join(_text(m) for m in messages))
    if model == EDIT_MODEL:
        return edit_reply("\n".join(_text(m) for m in messages if m.get("role") == "user"))
    users = [_text(m) for m in messages if m.get("role") == "user"]
    prompt = users[-1] if users else ""
    tools = [t.get("function", {}).get("name") for t in body.get("tools") or () if isinstance(t, Mapping)]
    if tools and tools[0] and not any(m.get("role") == "tool" for m in messages):
        order = _ORDER.search(prompt)
        return {"tool_calls": [{"name": tools[0], "arguments": json.dumps({"name": order.group(2) if order else ""})}]}
    return agent_reply(prompt)
