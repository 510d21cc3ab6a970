import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";

import { evaluate, extractExpression, grade, respond } from "../examples/calc-agent.js";
import { jsonValue, semconv } from "../src/index.js";
import { type Expect, serverForSuite, verifyRollout } from "./support/server.js";

describe("calc-agent logic", () => {
  it("solves and grades", () => {
    const cases: [string, number][] = [
      ["What is 6 * 7?", 42],
      ["Compute (3 + 4) * -2, please.", -14],
      ["What is 7 / 2?", 3.5],
      ["How much is 10 - 2 - 3?", 5],
      ["What is 2 + 3 * 4?", 14],
    ];
    for (const [question, want] of cases) {
      assert.equal(evaluate(extractExpression(question)), want, question);
    }
    for (const bad of ["What is love?", "What is 1 / 0?", "What is (1 + 2?"]) {
      assert.throws(() => evaluate(extractExpression(bad)), Error, bad);
    }
    assert.equal(respond("Reply with only the number.", 42), "42");
    assert.equal(grade("42", 42), 1);
    assert.equal(respond("Answer politely.", 3.5), "The answer is 3.5.");
    assert.equal(grade("The answer is 3.5.", 3.5), 0.5);
    assert.equal(grade("The answer is 420.", 42), 0);
    assert.equal(grade("41", 42), 0);
  });
});

function prompt(template: string) {
  return { prompt: { kind: { case: "promptTemplate" as const, value: { template } } } };
}

// The example agent, run as its own process, serves rollouts from a real agl-server: it follows
// the latest prompt template, reports its spans and rewards (checked from Python) and stops
// cleanly on SIGTERM.
describe("calc-agent against a real agl-server", () => {
  const suite = serverForSuite();

  it("serves rollouts, follows the prompt and stops on SIGTERM", async () => {
    const script = join(dirname(fileURLToPath(import.meta.url)), "..", "examples", "calc-agent.js");
    const agent = spawn(process.execPath, [script, "--server", suite.server.address, "--wait-ms", "2000", "--worker-id", "calc-ts"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let logs = "";
    agent.stdout.on("data", (chunk) => (logs += chunk));
    agent.stderr.on("data", (chunk) => (logs += chunk));
    const exited = once(agent, "exit");
    try {
      const terse = "Reply with only the number. {question}";
      await suite.client.addResources("terse", prompt(terse));
      await suite.client.enqueueRollouts([
        { rolloutId: "ro-right", input: jsonValue({ question: "What is 6 * 7?", answer: 42 }) },
        { rolloutId: "ro-wrong", input: jsonValue({ question: "What is 6 * 7?", answer: 41 }) },
        { rolloutId: "ro-broken", input: jsonValue({ prompt: "no question here" }) },
      ]);
      const wait = async (...ids: string[]) => {
        const { pending } = await suite.client.waitForRollouts(ids, 30_000);
        assert.deepEqual(pending, [], logs);
      };
      await wait("ro-right", "ro-wrong", "ro-broken");

      const agentSpans = (output: string, reward: number, template: string): Expect => ({
        status: "succeeded",
        reward,
        span_count: 5,
        spans: [
          { name: semconv.SPAN_ROLLOUT, parent: "" },
          {
            name: "calc-agent",
            parent: semconv.SPAN_ROLLOUT,
            attributes: { [semconv.OPERATION]: "agent", [semconv.AGENT_NAME]: "calc-agent", "calc.output": output },
          },
          {
            name: semconv.SPAN_MESSAGE,
            parent: "calc-agent",
            attributes: { [semconv.MESSAGE_BODY]: template.replace("{question}", "What is 6 * 7?") },
          },
          {
            name: "calculator",
            parent: "calc-agent",
            attributes: {
              [semconv.TOOL_NAME]: "calculator",
              "calculator.expression": "6 * 7",
              "calculator.result": { double: 42 },
            },
          },
          { name: semconv.SPAN_REWARD, parent: semconv.SPAN_ROLLOUT },
        ],
      });
      await verifyRollout(suite.server.address, "ro-right", agentSpans("42", 1, terse));
      await verifyRollout(suite.server.address, "ro-wrong", agentSpans("42", 0, terse));
      await verifyRollout(suite.server.address, "ro-broken", {
        status: "failed",
        span_count: 2,
        spans: [
          { name: semconv.SPAN_ROLLOUT, parent: "" },
          {
            name: semconv.SPAN_EXCEPTION,
            parent: semconv.SPAN_ROLLOUT,
            attributes: {
              [semconv.EXCEPTION_MESSAGE]: 'task input needs "question" and "answer", got {"prompt":"no question here"}',
            },
          },
        ],
      });

      // A new prompt template becomes the latest resources; the next rollout runs with it.
      const verbose = "Please answer: {question}";
      await suite.client.addResources("verbose", prompt(verbose));
      await suite.client.enqueueRollouts([{ rolloutId: "ro-verbose", input: jsonValue({ question: "What is 6 * 7?", answer: 42 }) }]);
      await wait("ro-verbose");
      await verifyRollout(suite.server.address, "ro-verbose", agentSpans("The answer is 42.", 0.5, verbose));

      agent.kill("SIGTERM");
      const [code] = await exited;
      assert.equal(code, 0, logs);
      assert.match(logs, /calc-agent: stopped succeeded=3 failed=1/);
    } finally {
      agent.kill("SIGKILL");
    }
  });
});
