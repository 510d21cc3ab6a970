import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";

import { evaluate, extractExpression, grade, respond } from "../examples/calc.js";
import { type AglClient, connect, jsonValue, semconv } from "../src/index.js";
import { type Expect, serverForSuite, TestServer, verifyRollout } from "./support/server.js";

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

const script = join(dirname(fileURLToPath(import.meta.url)), "..", "examples", "calc-agent.js");

/** calc-agent as a child process; `logs` collects its output. */
function startAgent(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const agent = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"], env });
  const state = { agent, logs: "", exited: once(agent, "exit") };
  agent.stdout.on("data", (chunk) => (state.logs += chunk));
  agent.stderr.on("data", (chunk) => (state.logs += chunk));
  return state;
}

// The example agent, run as its own process, serves rollouts from a real agl-server, on the Work
// stream (the default) and with long polls: it follows the latest prompt template, reports its
// spans and rewards (checked from Python) and stops cleanly on SIGTERM.
for (const [mode, args] of [
  ["on the Work stream", []],
  ["with long polls", ["--poll", "--wait-ms", "2000"]],
] as const) {
  describe(`calc-agent against a real agl-server, ${mode}`, () => {
    const suite = serverForSuite();

    it("serves rollouts, follows the prompt and stops on SIGTERM", async () => {
      const state = startAgent(["--server", suite.server.address, "--worker-id", "calc-ts", ...args]);
      const { agent, exited } = state;
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
          assert.deepEqual(pending, [], state.logs);
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

        // Which way the work came: a Work-stream worker's record says so, with what the agent told.
        const { worker } = await suite.client.store.getWorker({ workerId: "calc-ts" });
        const onStream = args.length === 0;
        assert.equal(worker?.heartbeatStats?.work_stream === true, onStream, JSON.stringify(worker?.heartbeatStats));
        if (onStream) {
          assert.equal(worker?.heartbeatStats?.language, "typescript");
          assert.equal(worker?.heartbeatStats?.agent, "calc-agent");
        }

        agent.kill("SIGTERM");
        const [code] = await exited;
        assert.equal(code, 0, state.logs);
        assert.match(state.logs, /calc-agent: stopped succeeded=3 failed=1/);
      } finally {
        agent.kill("SIGKILL");
      }
    });
  });
}

// calc-agent --otel: the agent's spans are made by the OpenTelemetry Node SDK and exported over
// OTLP/gRPC to agl-server (with its token), from one process running several attempts at once;
// Python finds each span in its own rollout and attempt, under the attempt's root span, and reads
// the rewards the SDK wrote.
describe("calc-agent --otel against a real agl-server", () => {
  const token = "otel-secret";
  let server: TestServer;
  let client: AglClient;
  before(async () => {
    server = await TestServer.start("--token", token);
    client = connect({ address: server.address, token });
  });
  after(async () => {
    await client.close();
    await server.dispose();
  });

  it("exports the agent's spans with the OpenTelemetry SDK into their attempts", async () => {
    const state = startAgent(["--server", server.address, "--worker-id", "calc-otel", "--otel", "--concurrency", "3"], {
      ...process.env,
      AGL_TOKEN: token,
    });
    const { agent, exited } = state;
    try {
      const terse = "Reply with only the number. {question}";
      await client.addResources("terse", prompt(terse));
      const tasks: [string, string, number, number, number | { double: number }][] = [
        // rollout id, question, answer, reward, calculator result
        ["ro-1", "What is 6 * 7?", 42, 1, 42],
        ["ro-2", "What is 6 * 7?", 41, 0, 42],
        ["ro-3", "What is 7 / 2?", 3.5, 1, 3.5],
        ["ro-4", "What is 10 - 2 - 3?", 5, 1, 5],
        ["ro-5", "What is 2 + 3 * 4?", 15, 0, 14],
        ["ro-6", "What is (3 + 4) * 5?", 35, 1, 35],
      ];
      await client.enqueueRollouts(tasks.map(([rolloutId, question, answer]) => ({ rolloutId, input: jsonValue({ question, answer }) })));
      const { rollouts, pending } = await client.waitForRollouts(tasks.map(([id]) => id), 30_000);
      assert.deepEqual(pending, [], state.logs);

      for (const [rolloutId, question, , reward, result] of tasks) {
        const attemptId = rollouts.find((r) => r.rolloutId === rolloutId)?.attempt?.attemptId;
        const ids = { [semconv.ROLLOUT_ID]: rolloutId, [semconv.ATTEMPT_ID]: attemptId };
        await verifyRollout(
          server.address,
          rolloutId,
          {
            status: "succeeded",
            read_reward: reward,
            span_count: 5,
            spans: [
              { name: semconv.SPAN_ROLLOUT, parent: "" },
              {
                name: "calc-agent",
                parent: semconv.SPAN_ROLLOUT,
                scope: "calc-agent",
                attributes: { ...ids, [semconv.OPERATION]: "agent", [semconv.AGENT_NAME]: "calc-agent" },
              },
              {
                name: semconv.SPAN_MESSAGE,
                parent: "calc-agent",
                scope: "calc-agent",
                attributes: { ...ids, [semconv.MESSAGE_BODY]: terse.replace("{question}", question) },
              },
              {
                name: "calculator",
                parent: "calc-agent",
                scope: "calc-agent",
                attributes: { ...ids, "calculator.result": result },
              },
              { name: semconv.SPAN_REWARD, parent: semconv.SPAN_ROLLOUT, scope: "calc-agent", attributes: ids },
            ],
          },
          token,
        );
      }
      // The attempts overlapped in the one process: the ids on each span kept them apart.
      const { worker } = await client.store.getWorker({ workerId: "calc-otel" });
      assert.equal(worker?.heartbeatStats?.otel, true);
      assert.equal(worker?.heartbeatStats?.capacity, 3);

      agent.kill("SIGTERM");
      const [code] = await exited;
      assert.equal(code, 0, state.logs);
      assert.match(state.logs, /calc-agent: stopped succeeded=6 failed=0/);
    } finally {
      agent.kill("SIGKILL");
    }
  });
});
