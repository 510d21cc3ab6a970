"""calc-agent in Python, for the mixed-language training test: the same task, prompt and grading
as the Go (clients/go/examples/calc-agent) and TypeScript (clients/ts/examples/calc.ts) agents, so
a rollout earns the same reward whichever language's runner takes it.

A module of its own so ``agl runner --agent calc_agent:calc`` can import it."""

from __future__ import annotations

import ast
import operator
import re
from typing import Any

from agl_core.litagent import prompt_rollout
from agl_core.types import PromptTemplate

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def extract_expression(question: str) -> str:
    """The longest run of arithmetic in the question."""
    candidates = [c.strip() for c in re.findall(r"[-+*/().\d\s]*\d[-+*/().\d\s]*", question)]
    if not candidates:
        raise ValueError(f"no arithmetic expression in {question!r}")
    return max(candidates, key=len)


def evaluate(expression: str) -> float:
    """Numbers, + - * /, unary minus and parentheses; nothing else is evaluated."""

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError(f"{expression!r} is not plain arithmetic")

    return walk(ast.parse(expression, mode="eval").body)


def respond(prompt: str, value: float) -> str:
    """Just the number when the prompt asks for only the number, else a sentence."""
    number = f"{value:g}"
    return number if "only the number" in prompt.lower() else f"The answer is {number}."


def grade(output: str, expected: float) -> float:
    """1 for exactly the expected number, 0.5 when it is there among other words, 0 otherwise."""
    want = f"{expected:g}"
    if output.strip() == want:
        return 1.0
    return 0.5 if re.search(rf"(^|[^\d.]){re.escape(want)}($|[^\d])", output) else 0.0


@prompt_rollout
def calc(task: dict[str, Any], prompt_template: PromptTemplate) -> float:
    prompt = prompt_template.format(**task)
    return grade(respond(prompt, evaluate(extract_expression(task["question"]))), task["answer"])
