import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Code } from "@connectrpc/connect";

import {
  AglError,
  AttemptStatus,
  DequeueSource,
  jsonValue,
  NotStartedError,
  RolloutStatus,
  Runner,
  WorkStreamSource,
  type AglClient,
  type Assignment,
  type RolloutEvent,
  type WorkSource,
} from "../src/index.js";
import { serverForSuite } from "./support/server.js";

// The runner sends RUNNING without awaiting its ack and starts the handler at once; these tests
// check what can be observed of that from outside: the store records RUNNING before the final
// status of every attempt, and a handler whose attempt the store refused to start is told to stop
// through its signal.

const quiet = { warn: () => undefined, error: () => undefined, info: () => undefined };

/** Each kind of work source the runner takes, for table tests. */
const sources: Record<string, (client: AglClient, workerId: string, capacity: number) => WorkSource> = {
  stream: (client, workerId, capacity) => new WorkStreamSource(client, { workerId, capacity, logger: quiet }),
  dequeue: (client, workerId) => new DequeueSource(client, workerId, 1000, () => undefined),
};

async function closeAny(source: WorkSource): Promise<void> {
  if (source instanceof WorkStreamSource) {
    await source.close();
  }
}

const TERMINAL = new Set([RolloutStatus.SUCCEEDED, RolloutStatus.FAILED, RolloutStatus.CANCELLED]);

/** The store's event log (from its start) until every rollout's terminal event, per rollout in log order. */
async function events(client: AglClient, ids: string[]): Promise<Map<string, RolloutEvent[]>> {
  const byRollout = new Map<string, RolloutEvent[]>(ids.map((id) => [id, []]));
  const ended = new Set<string>();
  const call = new AbortController();
  try {
    for await (const response of client.store.watchRollouts(
      { rolloutIds: ids, afterEventId: 0n },
      // No call deadline: its timer would outlive the call and hold the process; the test's bounds it.
      { signal: call.signal, timeoutMs: 0 },
    )) {
      for (const event of response.events) {
        byRollout.get(event.rolloutId)?.push(event);
        if (TERMINAL.has(event.newStatus)) {
          ended.add(event.rolloutId);
        }
      }
      if (ended.size === ids.length) {
        break;
      }
    }
  } finally {
    call.abort();
  }
  assert.equal(ended.size, ids.length, `terminal events seen for ${[...ended]} of ${ids}`);
  return byRollout;
}

/**
 * A source whose `next` fails the attempt of one rollout in the store before handing it over, as
 * the store's timeout watchdog or a cancellation would have: the runner's RUNNING report of it is
 * then refused (FAILED_PRECONDITION). Everything else is the real source.
 */
function refusing(client: AglClient, source: WorkSource, rolloutId: string): WorkSource {
  const wrapper: WorkSource = {
    get workerId() {
      return source.workerId;
    },
    async next(signal: AbortSignal): Promise<Assignment | undefined> {
      const assignment = await source.next(signal);
      if (assignment?.rollout.rolloutId === rolloutId) {
        await client.updateAttempt(rolloutId, assignment.rollout.attempt?.attemptId ?? "", AttemptStatus.FAILED);
      }
      return assignment;
    },
    report: (...args) => source.report(...args),
  };
  if (source.drain) {
    wrapper.drain = () => source.drain?.();
  }
  return wrapper;
}

describe("Runner's RUNNING report against a real agl-server", () => {
  const suite = serverForSuite();

  for (const [kind, newSource] of Object.entries(sources)) {
    // Handlers that return at once make the final report follow RUNNING as closely as it can; the
    // store still records RUNNING first for every attempt (a RUNNING that came after the final
    // status would be refused, and the log would have no RUNNING event for the attempt), whether
    // the handler returns, throws or finishes the task itself.
    it(`records RUNNING before the final status (${kind})`, async () => {
      const client = suite.client;
      const ids = Array.from({ length: 24 }, (_, i) => `ro-${kind}-${String(i).padStart(2, "0")}`);
      await client.enqueueRollouts(ids.map((rolloutId) => ({ rolloutId, input: jsonValue(rolloutId) })));
      const source = newSource(client, `fast-${kind}`, 4);
      const runner = new Runner(client, source, { concurrency: 4, logger: quiet });
      const stop = new AbortController();
      const served = runner.serve(async (task) => {
        switch (task.rolloutId.at(-1)) {
          case "1":
            throw new Error("gave up");
          case "2":
            await task.finish(AttemptStatus.SUCCEEDED);
        }
      }, stop.signal);
      const { rollouts, pending } = await client.waitForRollouts(ids, 30_000);
      assert.deepEqual(pending, []);
      stop.abort();
      await served;
      await closeAny(source);
      assert.deepEqual(runner.stats(), { succeeded: 21, failed: 3, refused: 0 });
      const log = await events(client, ids);
      for (const rollout of rollouts) {
        const attemptId = rollout.attempt?.attemptId;
        const order = (log.get(rollout.rolloutId) ?? []).map((e) => ({
          status: e.newStatus,
          attempt: e.rollout?.attempt?.attemptId,
          attemptStatus: e.rollout?.attempt?.status,
        }));
        const ran = order.findIndex(
          (e) => e.status === RolloutStatus.RUNNING && e.attempt === attemptId && e.attemptStatus === AttemptStatus.RUNNING,
        );
        const ended = order.findIndex((e) => e.status === RolloutStatus.SUCCEEDED || e.status === RolloutStatus.FAILED);
        assert.ok(
          ran >= 0 && ended > ran,
          `${rollout.rolloutId}: RUNNING not recorded before the final status: ${JSON.stringify(order.map((e) => RolloutStatus[e.status]))}`,
        );
      }
    });

    // The runner does not await RUNNING's ack, so the handler of an attempt the store refuses to
    // start is running; its signal aborts (reason NotStartedError, caused by the store's refusal),
    // what it does is not reported, and the worker's slot goes to the next attempt.
    it(`stops the handler of a refused attempt (${kind})`, async () => {
      const client = suite.client;
      const refusedId = `ro-refused-${kind}`;
      const afterId = `ro-after-${kind}`;
      await client.enqueueRollouts([{ rolloutId: refusedId, input: jsonValue(refusedId) }]);
      const real = newSource(client, `refused-${kind}`, 1);
      const runner = new Runner(client, refusing(client, real, refusedId), { concurrency: 1, logger: quiet });
      const stop = new AbortController();
      let reason: (value: unknown) => void = () => undefined;
      const stopped = new Promise<unknown>((resolve) => (reason = resolve));
      const served = runner.serve(async (task, signal) => {
        if (task.rolloutId !== refusedId) {
          await task.emitReward(1);
          return;
        }
        await new Promise((resolve) => {
          signal.addEventListener("abort", resolve, { once: true });
          if (signal.aborted) {
            resolve(undefined);
          }
        });
        reason(signal.reason);
        throw new Error(`stopped: ${signal.reason}`);
      }, stop.signal);
      const cause = await stopped; // the test runner's timeout bounds it: a handler never stopped fails the test
      assert.ok(cause instanceof NotStartedError, `abort reason ${cause}`);
      assert.ok(cause.cause instanceof AglError, `cause ${cause.cause}`);
      assert.equal(cause.cause.code, Code.FailedPrecondition);
      // The slot is free: the next rollout runs on this worker (capacity 1).
      await client.enqueueRollouts([{ rolloutId: afterId, input: jsonValue(afterId) }]);
      const { rollouts, pending } = await client.waitForRollouts([afterId], 30_000);
      assert.deepEqual(pending, []);
      assert.equal(rollouts[0]?.status, RolloutStatus.SUCCEEDED);
      stop.abort();
      await served;
      await closeAny(real);
      assert.deepEqual(runner.stats(), { succeeded: 1, failed: 0, refused: 1 });
      const refused = await client.getRollout(refusedId);
      assert.equal(refused.status, RolloutStatus.FAILED);
      assert.equal(refused.attempt?.status, AttemptStatus.FAILED);
      for (const event of (await events(client, [refusedId])).get(refusedId) ?? []) {
        assert.notEqual(event.newStatus, RolloutStatus.RUNNING, `${refusedId} was recorded RUNNING`);
      }
    });
  }
});
