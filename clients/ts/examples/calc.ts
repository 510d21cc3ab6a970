/**
 * What calc-agent does, apart from where its spans go: read the task, fill the prompt, work the
 * arithmetic out and grade the answer.
 *
 * The agent's "reasoning" is rule-based so the example runs offline: it pulls the arithmetic
 * expression out of the question and evaluates it. What the prompt asks for decides how the
 * answer is worded, so the reward depends on the prompt template, as it would with a model.
 */
import { formatPrompt, type Task } from "../src/index.js";

/** The arithmetic in a question such as "What is (3 + 4) * 5?". */
export function extractExpression(question: string): string {
  const candidates = question.match(/[-+*/().\d\s]*\d[-+*/().\d\s]*/g) ?? [];
  const best = candidates.map((c) => c.trim()).reduce((a, b) => (b.length > a.length ? b : a), "");
  if (!best) {
    throw new Error(`no arithmetic expression in ${JSON.stringify(question)}`);
  }
  return best;
}

/** Computes an expression of numbers, + - * /, unary minus and parentheses. */
export function evaluate(expression: string): number {
  const text = expression.replaceAll(" ", "");
  let pos = 0;
  const fail = (what: string): never => {
    throw new Error(`${what} at offset ${pos} of ${JSON.stringify(expression)}`);
  };
  const sum = (): number => {
    let left = product();
    while (text[pos] === "+" || text[pos] === "-") {
      const op = text[pos++];
      const right = product();
      left = op === "+" ? left + right : left - right;
    }
    return left;
  };
  const product = (): number => {
    let left = unary();
    while (text[pos] === "*" || text[pos] === "/") {
      const op = text[pos++];
      const right = unary();
      left = op === "*" ? left * right : left / right;
    }
    return left;
  };
  const unary = (): number => {
    if (text[pos] === "-") {
      pos++;
      return -unary();
    }
    if (text[pos] === "(") {
      pos++;
      const value = sum();
      if (text[pos] !== ")") {
        fail("missing ')'");
      }
      pos++;
      return value;
    }
    const match = /^[\d.]+/.exec(text.slice(pos));
    if (!match) {
      return fail("expected a number");
    }
    pos += match[0].length;
    const value = Number(match[0]);
    return Number.isNaN(value) ? fail(`bad number ${match[0]}`) : value;
  };
  const value = sum();
  if (pos !== text.length) {
    fail(`unexpected ${JSON.stringify(text.slice(pos))}`);
  }
  if (!Number.isFinite(value)) {
    throw new Error(`${JSON.stringify(expression)} has no finite value (division by zero?)`);
  }
  return value;
}

/** Words the answer the way the prompt asks: just the number for "only the number", else a sentence. */
export function respond(prompt: string, value: number): string {
  return prompt.toLowerCase().includes("only the number") ? String(value) : `The answer is ${value}.`;
}

/** 1 for exactly the expected number, 0.5 when it is there among other words, 0 otherwise. */
export function grade(output: string, expected: number): number {
  const want = String(expected);
  if (output.trim() === want) {
    return 1;
  }
  const escaped = want.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(^|[^\\d.])${escaped}($|[^\\d])`).test(output) ? 0.5 : 0;
}

/** A task's input and prompt, checked and rendered. */
export interface Prepared {
  question: string;
  answer: number;
  prompt: string;
}

/** Reads the task input and fills the prompt template resource with it. */
export async function prepare(task: Task, promptResource = ""): Promise<Prepared> {
  const input = task.input;
  if (
    input === null || typeof input !== "object" || Array.isArray(input) ||
    typeof input.question !== "string" || typeof input.answer !== "number"
  ) {
    throw new Error(`task input needs "question" and "answer", got ${JSON.stringify(input)}`);
  }
  const prompt = formatPrompt(await task.promptTemplate(promptResource), input);
  return { question: input.question, answer: input.answer, prompt };
}
