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

// The runner sends RUNNING without awaiting its ack and starts the handler at once (or sends none
// for an attempt the Work stream handed over RUNNING already); these tests check what can be
// observed of that from outside: the store records RUNNING before the final status of every
// attempt, a handler whose attempt the store refused to start is told to stop through its signal,
// and which reports the runner sends.

const quiet = { warn: () => undefined, error: () => undefined, info: () => undefined };

/**
 * Each kind of work source the runner takes, for table tests: the Work stream as it comes (its
 * attempts arrive RUNNING), the Work stream with attempts arriving PREPARING, and long polls
 * (PREPARING too).
 */
const sources: Record<string, (client: AglClient, workerId: string, capacity: number) => WorkSource> = {
  stream: (client, workerId, capacity) => new WorkStreamSource(client, { workerId, capacity, logger: quiet }),
  "stream-preparing": (client, workerId, capacity) =>
    new WorkStreamSource(client, { workerId, capacity, startOnAssignment: false, logger: quiet }),
  dequeue: (client, workerId) => new DequeueSource(client, workerId, 1000, () => undefined),
};

/** The kinds whose attempts arrive PREPARING, so the runner reports RUNNING itself. */
const REPORTS_RUNNING = new Set(["stream-preparing", "dequeue"]);

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

/** The real source, recording each report the runner makes as `rollout id: status name`. */
function recording(source: WorkSource, reports: string[]): WorkSource {
  const wrapper: WorkSource = {
    get workerId() {
      return source.workerId;
    },
    next: (signal) => source.next(signal),
    report(rolloutId, attemptId, status, metadata) {
      reports.push(`${rolloutId}: ${AttemptStatus[status]}`);
      return source.report(rolloutId, attemptId, status, metadata);
    },
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

    // An attempt that arrives RUNNING (the Work stream's default) gets no RUNNING report: the store
    // has it RUNNING while its handler runs, before the runner reported anything for it, and the
    // log never had it PREPARING. One that arrives PREPARING is reported RUNNING, then finished.
    it(`reports RUNNING only for attempts that arrive PREPARING (${kind})`, async () => {
      const client = suite.client;
      const ids = Array.from({ length: 6 }, (_, i) => `ro-report-${kind}-${i}`);
      await client.enqueueRollouts(ids.map((rolloutId) => ({ rolloutId, input: jsonValue(rolloutId) })));
      const reports: string[] = [];
      const real = newSource(client, `report-${kind}`, 2);
      const runner = new Runner(client, recording(real, reports), { concurrency: 2, logger: quiet });
      const reportsRunning = REPORTS_RUNNING.has(kind);
      const arrived = new Map<string, string>();
      // What the store says while each handler runs, with the reports made for it so far.
      const seen = new Map<string, string>();
      const stop = new AbortController();
      const served = runner.serve(async (task) => {
        arrived.set(task.rolloutId, AttemptStatus[task.rollout.attempt?.status ?? AttemptStatus.UNSPECIFIED]);
        const stored = await client.getRollout(task.rolloutId);
        const before = reports.filter((r) => r.startsWith(`${task.rolloutId}:`));
        seen.set(task.rolloutId, `${RolloutStatus[stored.status]}/${AttemptStatus[stored.attempt?.status ?? 0]} [${before}]`);
        await task.emitReward(1);
      }, stop.signal);
      const { rollouts, pending } = await client.waitForRollouts(ids, 30_000);
      assert.deepEqual(pending, []);
      stop.abort();
      await served;
      await closeAny(real);
      assert.deepEqual(runner.stats(), { succeeded: ids.length, failed: 0, refused: 0 });
      const arrival = reportsRunning ? "PREPARING" : "RUNNING";
      assert.deepEqual(Object.fromEntries(arrived), Object.fromEntries(ids.map((id) => [id, arrival])));
      if (!reportsRunning) {
        // RUNNING in the store with no report made: the claim itself started the attempt.
        assert.deepEqual(Object.fromEntries(seen), Object.fromEntries(ids.map((id) => [id, "RUNNING/RUNNING []"])));
      }
      const log = await events(client, ids);
      for (const rollout of rollouts) {
        const id = rollout.rolloutId;
        assert.equal(rollout.status, RolloutStatus.SUCCEEDED, id);
        assert.deepEqual(
          reports.filter((r) => r.startsWith(`${id}:`)),
          reportsRunning ? [`${id}: RUNNING`, `${id}: SUCCEEDED`] : [`${id}: SUCCEEDED`],
        );
        const statuses = (log.get(id) ?? []).map((e) => RolloutStatus[e.newStatus]);
        assert.deepEqual(
          statuses.filter((status) => status !== "QUEUING"),
          reportsRunning ? ["PREPARING", "RUNNING", "SUCCEEDED"] : ["RUNNING", "SUCCEEDED"],
          `${id}'s events`,
        );
      }
    });

    if (!REPORTS_RUNNING.has(kind)) {
      continue; // an attempt handed over RUNNING has no start for the store to refuse
    }

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
