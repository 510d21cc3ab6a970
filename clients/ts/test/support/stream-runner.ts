/**
 * A runner process for the tests that kill one: it serves attempts from the Work stream of the
 * agl-server at argv[2] as worker argv[3], prints "started <rollout id> <attempt id>" once an
 * attempt's first span is acknowledged, and never finishes an attempt.
 *
 *     node dist/test/support/stream-runner.js 127.0.0.1:4747 doomed
 */
import { connect, Runner, WorkStreamSource } from "../../src/index.js";

const [address, workerId] = process.argv.slice(2);
const client = connect({ address });
const runner = new Runner(client, new WorkStreamSource(client, { workerId }));
await runner.serve(async (task, signal) => {
  await task.emitReward(0);
  await client.spans.flush();
  process.stdout.write(`started ${task.rolloutId} ${task.attemptId}\n`);
  await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
}, new AbortController().signal);
