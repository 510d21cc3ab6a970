import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { AttemptStatus, DequeueSource, jsonValue, RolloutStatus, Runner, semconv } from "../src/index.js";
import { serverForSuite, verifyRollout } from "./support/server.js";

// A runner finishes each attempt by what its handler did (resolved, threw), keeps serving after
// failures and resolves once its signal aborts.
describe("Runner against a real agl-server", () => {
  const suite = serverForSuite();

  it("finishes attempts by the handler's outcome", async () => {
    await suite.client.enqueueRollouts(["ro-ok", "ro-error", "ro-finish"].map((id) => ({ rolloutId: id, input: jsonValue(id) })));
    const runner = new Runner(suite.client, new DequeueSource(suite.client, "runner", 1000), {
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

    const { rollouts, pending } = await suite.client.waitForRollouts(["ro-ok", "ro-error", "ro-finish"], 30_000);
    assert.deepEqual(pending, []);
    const statuses = Object.fromEntries(rollouts.map((r) => [r.rolloutId, r.status]));
    assert.deepEqual(statuses, {
      "ro-ok": RolloutStatus.SUCCEEDED,
      "ro-error": RolloutStatus.FAILED,
      "ro-finish": RolloutStatus.FAILED,
    });
    stop.abort();
    await served;
    assert.deepEqual(runner.stats(), { succeeded: 1, failed: 2, refused: 0 });

    const finished = await suite.client.getRollout("ro-finish");
    assert.equal(finished.attempt?.metadata?.error, "gave up politely");
    await verifyRollout(suite.server.address, "ro-error", {
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
