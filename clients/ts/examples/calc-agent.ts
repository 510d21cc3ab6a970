/**
 * calc-agent: an example agl runner in TypeScript. It serves rollouts from an agl-server until it
 * gets SIGINT or SIGTERM.
 *
 * Each task input is {"question": "What is 17 * 23?", "answer": 391}. The agent fills the prompt
 * template resource with the task input, works out the arithmetic (rule-based, offline), words
 * its answer the way the prompt asks, and reports spans (the agent, the rendered prompt, a
 * calculator tool call) and a reward: 1 for exactly the expected number, 0.5 when the number is
 * there among other words, 0 otherwise.
 *
 *     npm run build && node dist/examples/calc-agent.js --server 127.0.0.1:4747
 *
 * The token comes from $AGL_TOKEN, never from the command line.
 */
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

import { attr, connect, DequeueSource, double, formatPrompt, newSpan, Runner, semconv, type Task } from "../src/index.js";

// The agent's "reasoning" is rule-based so the example runs offline: it pulls the arithmetic
// expression out of the question and evaluates it. What the prompt asks for decides how the answer
// is worded, so the reward depends on the prompt template, as it would with a model.

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

/** Runs one task: the handler the runner calls. */
export function calcAgent(promptResource = "") {
  return async (task: Task): Promise<void> => {
    const input = task.input;
    if (
      input === null || typeof input !== "object" || Array.isArray(input) ||
      typeof input.question !== "string" || typeof input.answer !== "number"
    ) {
      throw new Error(`task input needs "question" and "answer", got ${JSON.stringify(input)}`);
    }
    const prompt = formatPrompt(await task.promptTemplate(promptResource), input);

    const root = task.startSpan("calc-agent", [attr(semconv.OPERATION, semconv.OPERATION_AGENT), attr(semconv.AGENT_NAME, "calc-agent")]);
    const message = newSpan(semconv.SPAN_MESSAGE, [attr(semconv.MESSAGE_BODY, prompt)]);
    message.parentSpanId = root.spanId;
    await task.emit(message);

    const tool = task.startSpan("calculator", [attr(semconv.OPERATION, semconv.OPERATION_TOOL), attr(semconv.TOOL_NAME, "calculator")]);
    tool.parentSpanId = root.spanId;
    const expression = extractExpression(input.question);
    const value = evaluate(expression);
    await task.end(tool, [attr("calculator.expression", expression), attr("calculator.result", double(value))]);

    const output = respond(prompt, value);
    await task.end(root, [attr("calc.output", output)]);
    await task.emitReward(grade(output, input.answer));
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      server: { type: "string", default: process.env.AGL_SERVER_ADDRESS ?? "127.0.0.1:4747" },
      "worker-id": { type: "string", default: `calc-agent-ts-${process.pid}` },
      "wait-ms": { type: "string", default: "10000" },
      concurrency: { type: "string", default: "1" },
      "prompt-resource": { type: "string", default: "" },
    },
  });
  const client = connect({ address: values.server });
  const workerId = values["worker-id"];
  const runner = new Runner(client, new DequeueSource(client, workerId, Number(values["wait-ms"])), {
    concurrency: Number(values.concurrency),
  });
  const stop = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => stop.abort());
  }
  console.error(`calc-agent: serving server=${client.address} worker_id=${workerId}`);
  let code = 0;
  try {
    await runner.serve(calcAgent(values["prompt-resource"]), stop.signal);
  } catch (error) {
    console.error(`calc-agent: stopped with an error: ${error}`);
    code = 1;
  }
  try {
    await client.close(10_000);
  } catch (error) {
    console.error(`calc-agent: closing the client: ${error}`);
    code = 1;
  }
  const { succeeded, failed } = runner.stats();
  console.error(`calc-agent: stopped succeeded=${succeeded} failed=${failed}`);
  return code;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main();
}
