import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { AttemptStatus, connect, DequeueSource, jsonValue, RolloutStatus, Runner, semconv, type AglClient } from "../src/index.js";
import { TestServer, verifyRollout } from "./support/server.js";

// A runner finishes each attempt by what its handler did (resolved, threw), keeps serving after
// failures and resolves once its signal aborts.
describe("Runner against a real agl-server", () => {
  let server: TestServer;
  let client: AglClient;
  before(async () => {
    server = await TestServer.start();
    client = connect({ address: server.address });
  });
  after(async () => {
    await client.close();
    await server.dispose();
  });

  it("finishes attempts by the handler's outcome", async () => {
    await client.enqueueRollouts(["ro-ok", "ro-error", "ro-finish"].map((id) => ({ rolloutId: id, input: jsonValue(id) })));
    const runner = new Runner(client, new DequeueSource(client, "runner", 1000), {
      concurrency: 2,
      logger: { info: () => undefined, warn: () => undefined },
    });
    const stop = new AbortController();
    const served = runner.serve(async (task) => {
      if (task.input === "ro-error") {
        throw new TypeError("the agent gave up");
      }
      if (task.input === "ro-finish") {
        await task.finish(AttemptStatus.FAILED, "gave up politely");
        return;
      }
      await task.emitReward(1);
    }, stop.signal);

    const { rollouts, pending } = await client.waitForRollouts(["ro-ok", "ro-error", "ro-finish"], 30_000);
    assert.deepEqual(pending, []);
    const statuses = Object.fromEntries(rollouts.map((r) => [r.rolloutId, r.status]));
    assert.deepEqual(statuses, {
      "ro-ok": RolloutStatus.SUCCEEDED,
      "ro-error": RolloutStatus.FAILED,
      "ro-finish": RolloutStatus.FAILED,
    });
    stop.abort();
    await served;
    assert.deepEqual(runner.stats(), { succeeded: 1, failed: 2 });

    const finished = await client.getRollout("ro-finish");
    assert.equal(finished.attempt?.metadata?.error, "gave up politely");
    await verifyRollout(server.address, "ro-error", {
      status: "failed",
      span_count: 2,
      spans: [
        {
          name: semconv.SPAN_EXCEPTION,
          parent: semconv.SPAN_ROLLOUT,
          attributes: { [semconv.EXCEPTION_MESSAGE]: "the agent gave up", [semconv.EXCEPTION_TYPE]: "TypeError" },
        },
      ],
    });
  });
});
