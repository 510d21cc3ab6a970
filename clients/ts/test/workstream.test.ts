import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";

import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";

import {
  AglError,
  AttemptStatus,
  attr,
  connect,
  jsonValue,
  RolloutStatus,
  Runner,
  Task,
  WorkerStatus,
  WorkStreamSource,
  type AglClient,
  type RolloutConfigSchema,
} from "../src/index.js";
import { TestServer, verifyRollout, waitUntil } from "./support/server.js";

const quiet = { warn: () => undefined, error: () => undefined, info: () => undefined };

function promptResources(template: string) {
  return { prompt: { kind: { case: "promptTemplate" as const, value: { template } } } };
}

async function enqueue(client: AglClient, ids: string[], config?: MessageInitShape<typeof RolloutConfigSchema>): Promise<void> {
  await client.enqueueRollouts(ids.map((rolloutId) => ({ rolloutId, input: jsonValue(rolloutId), config })));
}

async function workerRecord(client: AglClient, workerId: string) {
  const { worker } = await client.store.getWorker({ workerId });
  assert.ok(worker, `no worker ${workerId}`);
  return worker;
}

async function attemptsOf(client: AglClient, rolloutId: string) {
  return (await client.store.queryAttempts({ rolloutId })).attempts;
}

/** A fresh agl-server and client per test, gone after it. */
function fixtures() {
  const made: { server: TestServer; client: AglClient }[] = [];
  after(async () => {
    for (const { server, client } of made) {
      await client.close(2000).catch(() => undefined);
      await server.dispose();
    }
  });
  return async () => {
    const server = await TestServer.start();
    const client = connect({ address: server.address });
    made.push({ server, client });
    return { server, client };
  };
}

describe("WorkStreamSource against a real agl-server", () => {
  const setup = fixtures();

  // The protocol through the source itself: an assignment carries its resources, the server never
  // gives more than the capacity, reports are acknowledged (errors carry the store's code), the
  // worker record says who the worker is, and closing leaves cleanly.
  it("speaks the Work protocol", async () => {
    const { client } = await setup();
    await client.addResources("res-1", promptResources("Q: {question}"));
    await enqueue(client, ["ro-1", "ro-2"]);
    const source = new WorkStreamSource(client, { capacity: 1, info: { agent: "protocol-test" }, logger: quiet });
    const signal = AbortSignal.timeout(30_000);

    const first = await source.next(signal);
    assert.ok(first);
    assert.match(source.workerId, /^wk-/, "the server picks the worker id");
    assert.equal(first.rollout.rolloutId, "ro-1");
    assert.equal(first.rollout.attempt?.workerId, source.workerId);
    assert.equal(first.resources?.resourcesId, "res-1");
    assert.equal(first.resources?.resources.prompt?.kind.case, "promptTemplate");
    const stats = (await workerRecord(client, source.workerId)).heartbeatStats;
    assert.equal(stats?.language, "typescript");
    assert.equal(stats?.agent, "protocol-test");
    assert.equal(stats?.capacity, 1);
    assert.equal(stats?.connected, true);

    // Capacity 1: the second rollout waits in the queue while the first is held.
    const firstAttempt = first.rollout.attempt?.attemptId ?? "";
    const second = source.next(signal);
    await source.report("ro-1", firstAttempt, AttemptStatus.RUNNING);
    assert.equal((await client.getRollout("ro-2")).status, RolloutStatus.QUEUING);
    assert.equal(source.stats().held, 1);
    await source.report("ro-1", firstAttempt, AttemptStatus.SUCCEEDED, { note: "done" });
    const secondAssignment = await second;
    assert.equal(secondAssignment?.rollout.rolloutId, "ro-2");
    const done = await client.getRollout("ro-1");
    assert.equal(done.status, RolloutStatus.SUCCEEDED);
    assert.equal(done.attempt?.metadata?.note, "done");

    // A report of an attempt that is not this worker's is refused with the store's code.
    await assert.rejects(source.report("ro-1", "at-missing", AttemptStatus.SUCCEEDED), (error) => {
      assert.ok(error instanceof AglError);
      assert.equal(error.code, Code.NotFound);
      assert.match(error.message, /at-missing/);
      return true;
    });

    await source.report("ro-2", secondAssignment?.rollout.attempt?.attemptId ?? "", AttemptStatus.SUCCEEDED);

    // An attempt the store refuses to start (here it already failed, as a timed-out one would
    // have) is not run, and the source frees its slot: the next rollout comes.
    await enqueue(client, ["ro-gone", "ro-3"]);
    const gone = await source.next(signal);
    assert.equal(gone?.rollout.rolloutId, "ro-gone");
    const goneAttempt = gone.rollout.attempt?.attemptId ?? "";
    await client.updateAttempt("ro-gone", goneAttempt, AttemptStatus.FAILED);
    await assert.rejects(source.report("ro-gone", goneAttempt, AttemptStatus.RUNNING), (error) => {
      assert.ok(error instanceof AglError);
      assert.equal(error.code, Code.FailedPrecondition);
      return true;
    });
    assert.equal((await source.next(signal))?.rollout.rolloutId, "ro-3");
    await source.close();
    assert.equal(await source.next(signal), undefined, "a closed source hands out nothing");
    const record = await workerRecord(client, source.workerId);
    assert.equal(record.status, WorkerStatus.UNKNOWN);
    assert.equal(record.heartbeatStats?.connected, false);
  });

  // startOnAssignment (the default) says in hello that the worker starts what it gets at once: the
  // server claims the attempt RUNNING, so the assignment and the store say RUNNING before the worker
  // reported anything, and a RUNNING report sent anyway is acknowledged and changes nothing.
  // Without it the attempt arrives PREPARING and only the worker's RUNNING report moves it on.
  it("hands attempts over RUNNING unless told not to", async () => {
    const { client } = await setup();
    const signal = AbortSignal.timeout(30_000);

    await enqueue(client, ["ro-started"]);
    const eager = new WorkStreamSource(client, { workerId: "eager", logger: quiet });
    const started = await eager.next(signal);
    assert.equal(started?.rollout.rolloutId, "ro-started");
    assert.equal(started.rollout.status, RolloutStatus.RUNNING, "the assignment's rollout");
    assert.equal(started.rollout.attempt?.status, AttemptStatus.RUNNING, "the assignment's attempt");
    const startedAttempt = started.rollout.attempt?.attemptId ?? "";
    let stored = await client.getRollout("ro-started"); // no report sent yet
    assert.equal(stored.status, RolloutStatus.RUNNING);
    assert.equal(stored.attempt?.attemptId, startedAttempt);
    assert.equal(stored.attempt?.status, AttemptStatus.RUNNING);
    await eager.report("ro-started", startedAttempt, AttemptStatus.RUNNING); // acknowledged with code 0
    assert.deepEqual(
      (await attemptsOf(client, "ro-started")).map((a) => [a.attemptId, a.status, a.workerId]),
      [[startedAttempt, AttemptStatus.RUNNING, "eager"]],
    );
    await eager.report("ro-started", startedAttempt, AttemptStatus.SUCCEEDED);
    await eager.close();
    assert.equal((await client.getRollout("ro-started")).status, RolloutStatus.SUCCEEDED);

    await enqueue(client, ["ro-prepared"]);
    const careful = new WorkStreamSource(client, { workerId: "careful", startOnAssignment: false, logger: quiet });
    const prepared = await careful.next(signal);
    assert.equal(prepared?.rollout.rolloutId, "ro-prepared");
    assert.equal(prepared.rollout.status, RolloutStatus.PREPARING, "the assignment's rollout");
    assert.equal(prepared.rollout.attempt?.status, AttemptStatus.PREPARING, "the assignment's attempt");
    const preparedAttempt = prepared.rollout.attempt?.attemptId ?? "";
    stored = await client.getRollout("ro-prepared");
    assert.equal(stored.status, RolloutStatus.PREPARING);
    assert.equal(stored.attempt?.status, AttemptStatus.PREPARING);
    await careful.report("ro-prepared", preparedAttempt, AttemptStatus.RUNNING);
    stored = await client.getRollout("ro-prepared");
    assert.equal(stored.status, RolloutStatus.RUNNING);
    assert.equal(stored.attempt?.attemptId, preparedAttempt);
    assert.equal(stored.attempt?.status, AttemptStatus.RUNNING);
    await careful.report("ro-prepared", preparedAttempt, AttemptStatus.SUCCEEDED);
    await careful.close();
    assert.equal((await client.getRollout("ro-prepared")).status, RolloutStatus.SUCCEEDED);
  });

  // A Runner serves attempts from the Work stream: spans and rewards land (checked from Python),
  // and stopping drains the stream: nothing is left assigned to the worker.
  it("feeds a Runner and drains when it stops", async () => {
    const { server, client } = await setup();
    const ids = ["ro-a", "ro-b", "ro-c", "ro-d", "ro-e", "ro-f"];
    await enqueue(client, ids);
    const source = new WorkStreamSource(client, { workerId: "ts-stream", capacity: 2, logger: quiet });
    const runner = new Runner(client, source, { concurrency: 2, logger: quiet });
    const stop = new AbortController();
    const served = runner.serve(async (task) => {
      const span = task.startSpan("work", [attr("input", String(task.input))]);
      await task.end(span);
      await task.emitReward(0.75);
    }, stop.signal);

    const { rollouts, pending } = await client.waitForRollouts(ids, 20_000);
    assert.deepEqual(pending, []);
    for (const rollout of rollouts) {
      assert.equal(rollout.status, RolloutStatus.SUCCEEDED, rollout.rolloutId);
      assert.equal(rollout.attempt?.workerId, "ts-stream");
    }
    await verifyRollout(server.address, "ro-c", {
      status: "succeeded",
      reward: 0.75,
      span_count: 3,
      spans: [{ name: "work", parent: "agl.rollout", attributes: { input: "ro-c" } }],
    });
    stop.abort();
    await served;
    assert.deepEqual(runner.stats(), { succeeded: 6, failed: 0, refused: 0 });
    // Drained: queued work stays queued for other workers.
    await enqueue(client, ["ro-later"]);
    assert.equal(source.stats().held, 0);
    await source.close();
    assert.equal((await client.getRollout("ro-later")).status, RolloutStatus.QUEUING);
  });

  // Work the server pushed just before a stop is run, not dropped: the runner drains the source
  // and takes what it still holds. Capacity 2 with one slot keeps a second attempt waiting in the
  // source while the first runs.
  it("runs what the drained source still holds", async () => {
    const { client } = await setup();
    await enqueue(client, ["ro-first", "ro-second"]);
    const source = new WorkStreamSource(client, { workerId: "drainer", capacity: 2, logger: quiet });
    const runner = new Runner(client, source, { concurrency: 1, logger: quiet });
    const stop = new AbortController();
    const started: string[] = [];
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const served = runner.serve(async (task) => {
      started.push(task.rolloutId);
      await released;
      await task.emitReward(1);
    }, stop.signal);
    await waitUntil(() => started.length === 1 && source.stats().queued === 1);
    stop.abort();
    release();
    await served;
    assert.deepEqual(started, ["ro-first", "ro-second"], "the runner stopped without running what its source held");
    assert.deepEqual(runner.stats(), { succeeded: 2, failed: 0, refused: 0 });
    await source.close();
    for (const id of ["ro-first", "ro-second"]) {
      assert.equal((await client.getRollout(id)).status, RolloutStatus.SUCCEEDED, id);
      assert.equal((await attemptsOf(client, id)).length, 1, id);
    }
    await assert.rejects(source.report("ro-first", "at-x", AttemptStatus.SUCCEEDED), (error) => {
      assert.ok(error instanceof AglError);
      assert.equal(error.code, Code.Unavailable);
      return true;
    });
  });

  // A runner process killed (SIGKILL) in the middle of an attempt: the server sees its Work stream
  // break and gives the attempt up as UNRESPONSIVE at once (not after a heartbeat timeout: that is
  // 30s here, and the test's deadline is shorter), so the rollout's retry policy runs it again on
  // another worker.
  it("retries the attempt of a runner killed mid-attempt", async () => {
    const { client } = await setup();
    await enqueue(client, ["ro-orphan"], { maxAttempts: 2, retryCondition: [AttemptStatus.UNRESPONSIVE] });
    const script = join(dirname(fileURLToPath(import.meta.url)), "support", "stream-runner.js");
    const child = spawn(process.execPath, [script, client.address, "doomed"], { stdio: ["ignore", "pipe", "inherit"] });
    const exited = once(child, "exit");
    let first = "";
    try {
      for await (const line of createInterface({ input: child.stdout })) {
        if (line.startsWith("started ")) {
          first = line.slice("started ".length);
          break;
        }
      }
      assert.match(first, /^ro-orphan /);
    } finally {
      child.kill("SIGKILL");
      await exited;
    }

    // Another worker takes the retry.
    const source = new WorkStreamSource(client, { workerId: "rescuer", logger: quiet });
    const stop = new AbortController();
    const served = new Runner(client, source, { logger: quiet }).serve((task) => task.emitReward(1), stop.signal);
    try {
      const { rollouts, pending } = await client.waitForRollouts(["ro-orphan"], 10_000);
      assert.deepEqual(pending, [], "the orphaned rollout was not retried within 10s");
      assert.equal(rollouts[0]?.status, RolloutStatus.SUCCEEDED);
    } finally {
      stop.abort();
      await served;
      await source.close();
    }
    const attempts = await attemptsOf(client, "ro-orphan");
    assert.deepEqual(
      attempts.map((a) => [a.status, a.workerId]),
      [
        [AttemptStatus.UNRESPONSIVE, "doomed"],
        [AttemptStatus.SUCCEEDED, "rescuer"],
      ],
    );
    assert.equal(`ro-orphan ${attempts[0]?.attemptId}`, first);
    assert.equal((await workerRecord(client, "doomed")).status, WorkerStatus.UNKNOWN);
  });

  // The Work stream rides out agl-server restarts, a clean one (SIGTERM) and a crash (SIGKILL):
  // the worker reconnects, says which attempts it still runs, and they finish as the same
  // attempts (not given up and retried). A report the dead server never acknowledged is sent
  // again, and the new server watches the attempts the worker listed: they are given up if it
  // leaves.
  it("survives server restarts", async () => {
    const { server, client } = await setup();
    const source = new WorkStreamSource(client, { workerId: "survivor", retryDeadlineMs: 30_000, logger: quiet });
    const signal = AbortSignal.timeout(60_000);
    for (const [name, restart] of [
      ["stop", () => server.stop()],
      ["crash", () => server.kill()],
    ] as const) {
      const id = `ro-${name}`;
      await enqueue(client, [id]);
      const assignment = await source.next(signal);
      assert.equal(assignment?.rollout.rolloutId, id);
      const attemptId = assignment.rollout.attempt?.attemptId ?? "";
      await source.report(id, attemptId, AttemptStatus.RUNNING);
      await restart();
      await server.restart();
      const task = new Task(client, source, assignment);
      await task.emitReward(1);
      await task.finish(AttemptStatus.SUCCEEDED);
      const attempts = await attemptsOf(client, id);
      assert.deepEqual(
        attempts.map((a) => [a.attemptId, a.status]),
        [[attemptId, AttemptStatus.SUCCEEDED]],
        name,
      );
    }

    // A report sent to a server that froze and then died is delivered by the next stream.
    await enqueue(client, ["ro-frozen"]);
    const frozen = await source.next(signal);
    const frozenAttempt = frozen?.rollout.attempt?.attemptId ?? "";
    process.kill(server.pid, "SIGSTOP");
    const running = source.report("ro-frozen", frozenAttempt, AttemptStatus.RUNNING).then(
      () => "delivered",
      (error: unknown) => `failed: ${error}`,
    );
    await server.kill();
    await server.restart();
    assert.equal(await running, "delivered");
    assert.equal((await client.getRollout("ro-frozen")).attempt?.status, AttemptStatus.RUNNING);
    await source.report("ro-frozen", frozenAttempt, AttemptStatus.SUCCEEDED);
    assert.equal((await client.getRollout("ro-frozen")).status, RolloutStatus.SUCCEEDED);

    // The new stream holds the attempts the hello listed: leaving gives them up.
    await enqueue(client, ["ro-adopted"]);
    const adopted = await source.next(signal);
    await source.report("ro-adopted", adopted?.rollout.attempt?.attemptId ?? "", AttemptStatus.RUNNING);
    const streams = source.stats().streams;
    await server.kill();
    await server.restart();
    await waitUntil(() => source.stats().streams > streams);
    await source.close();
    assert.equal((await client.getRollout("ro-adopted")).attempt?.status, AttemptStatus.UNRESPONSIVE);
  });
});
