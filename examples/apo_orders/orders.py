"""The agent and the tasks of the APO example: turn a customer's order message into one line.

The shop's order system takes ``product|quantity|date`` lines: the product as a lowercase singular
noun, the quantity in digits, the date as YYYY-MM-DD (``apple|3|2026-03-05``). The seed prompt
only says "extract the order", so a model answers in its own words and earns nothing; the grader
gives a third of the reward per field and records what it expected, which is what APO's critique
model reads to find the missing instructions.
"""

from __future__ import annotations

import datetime
import os
import random
from typing import Any

import openai

from agl_core.emitter import emit_message
from agl_core.litagent import prompt_rollout
from agl_core.types import LLM, PromptTemplate

SEED_PROMPT = "Extract the order from this customer message.\n\nMessage: {message}"

# (singular, plural)
PRODUCTS = [
    ("apple", "apples"),
    ("lemon", "lemons"),
    ("peach", "peaches"),
    ("cherry", "cherries"),
    ("potato", "potatoes"),
    ("melon", "melons"),
    ("tomato", "tomatoes"),
    ("plum", "plums"),
]
NUMBER_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
PHRASINGS = [
    "Hi! Please send {quantity} {product} on {date}.",
    "I'd like to order {quantity} {product} for delivery on {date}, thanks.",
    "{quantity} {product}, delivered {date} please.",
    "Could you deliver {quantity} {product} on {date}?",
]


def make_tasks(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` order messages with the line the order system expects for each."""
    tasks = []
    for _ in range(count):
        singular, plural = rng.choice(PRODUCTS)
        n = rng.randint(1, 12)
        day = datetime.date(2026, 1, 1) + datetime.timedelta(days=rng.randrange(365))
        product = singular if n == 1 else plural
        if rng.random() < 0.3:
            product = product.capitalize()
        quantity = NUMBER_WORDS[n - 1] if rng.random() < 0.5 else str(n)
        date = f"{day:%B} {day.day}, {day.year}" if rng.random() < 0.5 else f"{day.day} {day:%B} {day.year}"
        message = rng.choice(PHRASINGS).format(quantity=quantity, product=product, date=date)
        tasks.append({"message": message[0].upper() + message[1:], "expected": f"{singular}|{n}|{day.isoformat()}"})
    return tasks


def lookup_product(name: str) -> str:
    """The shop's catalog entry for a product as a customer wrote it (any case, singular or plural):
    the tool of the framework examples (``examples/langgraph_orders``, ``examples/openai_agents_orders``)."""
    word = name.strip().lower()
    for singular, plural in PRODUCTS:
        if word in (singular, plural):
            return f"{singular}: in stock"
    return f"{name}: not in the catalog"


def grade(reply: str, expected: str) -> tuple[float, str]:
    """A third of the reward per correct field; the feedback says what was expected."""
    fields = [f.strip() for f in reply.strip().split("|")]
    wanted = expected.split("|")
    if "\n" in reply.strip() or len(fields) != 3:
        return 0.0, f"scored 0/3: the reply is not one line of three |-separated fields; expected exactly: {expected}"
    right = sum(1 for got, want in zip(fields, wanted, strict=True) if got == want)
    return right / 3, f"scored {right}/3; expected exactly: {expected}"


@prompt_rollout
async def extract_order(task: dict[str, Any], prompt_template: PromptTemplate, llm: LLM) -> float:
    """Ask the model for the order line with the prompt being optimised; grade the reply."""
    api_key = llm.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
    async with openai.AsyncOpenAI(base_url=llm.endpoint, api_key=api_key) as client:
        response = await client.chat.completions.create(
            model=llm.model,
            messages=[{"role": "user", "content": prompt_template.format(message=task["message"])}],
            temperature=0.0,
        )
    reply = response.choices[0].message.content or ""
    score, feedback = grade(reply, task["expected"])
    emit_message(feedback)
    return score
