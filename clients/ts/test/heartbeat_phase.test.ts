import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { WorkStreamSource } from "../src/index.js";
import { serverForSuite, waitUntil } from "./support/server.js";

const quiet = { warn: () => undefined, error: () => undefined, info: () => undefined };

// Workers started together do not heartbeat together: each source sends its first heartbeat at a
// random point of its first interval (every heartbeat is a store write, and 1,000 aligned ones held
// dispatch back for tens of milliseconds in bench/fleet_bench.py).
describe("WorkStreamSource heartbeats", () => {
  const suite = serverForSuite();

  it("spreads the heartbeats of workers started together", async () => {
    const { client } = suite;
    const intervalMs = 1_000;
    const sources = Array.from(
      { length: 16 },
      (_, i) =>
        new WorkStreamSource(client, { workerId: `w-phase-${i}`, heartbeatIntervalMs: intervalMs, logger: quiet }),
    );
    try {
      await Promise.all(sources.map((source) => source.start(AbortSignal.timeout(30_000))));
      // The worker record is written at welcome and at each heartbeat, with the store's clock: the
      // gap between the two writes is the first heartbeat's delay, however often this polls.
      const stamp = async (workerId: string) => {
        const time = (await client.store.getWorker({ workerId })).worker?.lastHeartbeatTime;
        assert.ok(time, `no heartbeat time for ${workerId}`);
        return Number(time.seconds) * 1_000 + time.nanos / 1e6;
      };
      const offsets = await Promise.all(
        sources.map(async (source) => {
          const welcomedAt = await stamp(source.workerId);
          let offset = 0;
          await waitUntil(async () => {
            offset = (await stamp(source.workerId)) - welcomedAt;
            return offset > 0;
          }, 10 * intervalMs);
          return offset;
        }),
      );
      const first = Math.min(...offsets);
      const last = Math.max(...offsets);
      // Aligned, every offset would be one interval; spread uniformly over it, 16 offsets span less
      // than 0.4 of it with a probability of about 1e-5.
      assert.ok(last - first >= 0.4 * intervalMs, `first heartbeats after welcome: ${offsets}`);
      // Within the first interval, or the second when the first fell before the stream was open.
      assert.ok(last <= 2 * intervalMs + 500, `first heartbeats after welcome: ${offsets}`);
    } finally {
      await Promise.all(sources.map((source) => source.close()));
    }
  });
});
