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
 * It takes work on agl-server's Work stream (pushed as soon as it is queued; a killed agent's
 * attempts are retried at once), or with DequeueRollout long polls given --poll. With --otel its
 * spans are made with the standard OpenTelemetry Node SDK and exported over OTLP/gRPC to
 * agl-server (see calc-agent-otel.ts). --namespace, --queue (repeatable) and --selector say which
 * work it takes, as `agl runner` does: the rollouts of that namespace (experiment), from those
 * queues, whose labels match the selector.
 *
 *     npm run build && node dist/examples/calc-agent.js --server 127.0.0.1:4747 --concurrency 4 [--otel]
 *     node dist/examples/calc-agent.js --namespace exp-a --queue default --queue math --selector lang=ts
 *
 * The token comes from $AGL_TOKEN, never from the command line.
 */
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

import { attr, connect, DequeueSource, double, newSpan, Runner, semconv, type Task, WorkStreamSource } from "../src/index.js";
import { evaluate, extractExpression, grade, prepare, respond } from "./calc.js";

/** Runs one task: the handler the runner calls. Its spans go through the agl client. */
export function calcAgent(promptResource = "") {
  return async (task: Task): Promise<void> => {
    const { question, answer, prompt } = await prepare(task, promptResource);

    const root = task.startSpan("calc-agent", [attr(semconv.OPERATION, semconv.OPERATION_AGENT), attr(semconv.AGENT_NAME, "calc-agent")]);
    const message = newSpan(semconv.SPAN_MESSAGE, [attr(semconv.MESSAGE_BODY, prompt)]);
    message.parentSpanId = root.spanId;
    await task.emit(message);

    const tool = task.startSpan("calculator", [attr(semconv.OPERATION, semconv.OPERATION_TOOL), attr(semconv.TOOL_NAME, "calculator")]);
    tool.parentSpanId = root.spanId;
    const expression = extractExpression(question);
    const value = evaluate(expression);
    await task.end(tool, [attr("calculator.expression", expression), attr("calculator.result", double(value))]);

    const output = respond(prompt, value);
    await task.end(root, [attr("calc.output", output)]);
    await task.emitReward(grade(output, answer));
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      server: { type: "string", default: process.env.AGL_SERVER_ADDRESS ?? "127.0.0.1:4747" },
      "worker-id": { type: "string", default: `calc-agent-ts-${process.pid}` },
      poll: { type: "boolean", default: false },
      "wait-ms": { type: "string", default: "10000" },
      concurrency: { type: "string", default: "1" },
      "prompt-resource": { type: "string", default: "" },
      otel: { type: "boolean", default: false },
      namespace: { type: "string", default: process.env.AGL_NAMESPACE ?? "" },
      queue: { type: "string", multiple: true, default: [] },
      selector: { type: "string", default: "" },
      "label-selector": { type: "string", default: "" },
    },
  });
  const client = connect({ address: values.server, namespace: values.namespace });
  const workerId = values["worker-id"];
  const concurrency = Number(values.concurrency);
  // Which work this agent takes: its namespace is the client's; queues and selector are the source's.
  const selection = { queues: values.queue, labelSelector: values.selector || values["label-selector"] };
  const stream = values.poll
    ? undefined
    : new WorkStreamSource(client, {
        workerId,
        capacity: concurrency,
        ...selection,
        info: { agent: "calc-agent", otel: values.otel },
      });
  const source = stream ?? new DequeueSource(client, { workerId, waitMs: Number(values["wait-ms"]), ...selection });
  const runner = new Runner(client, source, { concurrency });
  // With --otel the agent's spans go through the OpenTelemetry Node SDK (loaded only then).
  const otel = values.otel ? await import("./calc-agent-otel.js") : undefined;
  const provider = otel?.otelProvider(client.address, process.env.AGL_TOKEN);
  const handler = otel && provider ? otel.otelCalcAgent(provider, values["prompt-resource"]) : calcAgent(values["prompt-resource"]);
  const stop = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => stop.abort());
  }
  console.error(
    `calc-agent: serving server=${client.address} worker_id=${workerId} work_stream=${!values.poll} otel=${values.otel} ` +
      `namespace=${values.namespace || "default"} queues=${values.queue.join(",") || "default"} selector=${selection.labelSelector}`,
  );
  let code = 0;
  try {
    await runner.serve(handler, stop.signal);
  } catch (error) {
    console.error(`calc-agent: stopped with an error: ${error}`);
    code = 1;
  }
  try {
    // The Work stream first: it waits for the acks of the final reports.
    await stream?.close(10_000);
    await provider?.shutdown();
    await client.close(10_000);
  } catch (error) {
    console.error(`calc-agent: closing: ${error}`);
    code = 1;
  }
  const { succeeded, failed } = runner.stats();
  console.error(`calc-agent: stopped succeeded=${succeeded} failed=${failed}`);
  return code;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main();
}
