/** Routing and namespaces (issue 12) through the TypeScript client against a real agl-server. */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";

import { Code } from "@connectrpc/connect";

import {
  AglError,
  AttemptStatus,
  connect,
  DequeueSource,
  RolloutStatus,
  Task,
  WorkStreamSource,
  type AglClient,
  type Rollout,
  type RolloutSpecInit,
  type WorkSource,
} from "../src/index.js";
import { serverForSuite } from "./support/server.js";

const quiet = { warn: () => undefined, error: () => undefined };
const goTask = { lang: "go" };
const tsTask = { lang: "ts" };

function promptResources(template: string) {
  return { prompt: { kind: { case: "promptTemplate" as const, value: { template } } } };
}

/** Claims the next assignment and finishes it, so a capacity-1 source can get the next one. */
async function take(source: WorkSource, signal: AbortSignal): Promise<Rollout> {
  const assignment = await source.next(signal);
  assert.ok(assignment, `worker ${source.workerId} got nothing`);
  const { rollout } = assignment;
  for (const status of [AttemptStatus.RUNNING, AttemptStatus.SUCCEEDED]) {
    await source.report(rollout.rolloutId, rollout.attempt?.attemptId ?? "", status);
  }
  return rollout;
}

async function assertQueuing(client: AglClient, ...ids: string[]): Promise<void> {
  for (const id of ids) {
    const rollout = await client.getRollout(id);
    assert.equal(rollout.status, RolloutStatus.QUEUING, `${id} should still wait in its queue`);
    assert.equal(rollout.attempt, undefined, `${id} should never have been claimed`);
  }
}

function codeOf(error: unknown): Code | undefined {
  return error instanceof AglError ? error.code : undefined;
}

describe("queues, labels and namespaces against a real agl-server", () => {
  const state = serverForSuite();
  const extra: AglClient[] = [];
  const sources: WorkStreamSource[] = [];
  after(async () => {
    for (const source of sources) {
      await source.close(2000).catch(() => undefined);
    }
    for (const client of extra) {
      await client.close(2000);
    }
  });
  function client(namespace?: string): AglClient {
    const made = connect({ address: state.server.address, namespace });
    extra.push(made);
    return made;
  }

  // A worker gets only the work of its queues whose labels its selector accepts, highest
  // priority first, on the Work stream and with long polls alike. Rollouts that do not match stay
  // queued, untouched: each source's last claim is a rollout enqueued after all of them, which a
  // source that ignored queues or selectors would have reached only after them (FIFO).
  it("gives a worker only its queues and labels, by priority", async () => {
    const signal = AbortSignal.timeout(60_000);
    const c = client("routing");
    const specs: RolloutSpecInit[] = [
      { rolloutId: "go-1", input: 1, queue: "agents", labels: goTask },
      { rolloutId: "ts-default-queue", input: 2, labels: tsTask },
      { rolloutId: "unlabelled", input: 3, queue: "agents" },
      { rolloutId: "ts-low", input: 4, queue: "agents", labels: tsTask },
      { rolloutId: "ts-high", input: 5, queue: "agents", labels: tsTask, priority: 10 },
    ];
    await c.enqueueRollouts(specs);
    const stream = new WorkStreamSource(c, { workerId: "ts-stream", queues: ["agents"], labelSelector: "lang=ts", logger: quiet });
    sources.push(stream);
    const first = await take(stream, signal);
    assert.equal(first.rolloutId, "ts-high");
    assert.equal(first.queue, "agents");
    assert.equal(first.priority, 10);
    assert.deepEqual(first.labels, tsTask);
    assert.equal(first.namespace, "routing");
    assert.equal((await take(stream, signal)).rolloutId, "ts-low");
    await c.enqueueRollouts([{ rolloutId: "ts-late", input: 6, queue: "agents", labels: tsTask }]);
    assert.equal((await take(stream, signal)).rolloutId, "ts-late");
    await assertQueuing(c, "go-1", "ts-default-queue", "unlabelled");
    const { worker } = await c.store.getWorker({ workerId: "ts-stream" });
    assert.equal(worker?.labelSelector, "lang=ts");
    assert.deepEqual(worker?.queues, ["agents"]);
    assert.equal(worker?.namespace, "routing");

    // Long polls, in the options-object form: the Go task of the queue, then the late one.
    const poll = new DequeueSource(c, { workerId: "go-poll", waitMs: 5000, queues: ["agents"], labelSelector: "lang in (go)" });
    assert.equal((await take(poll, signal)).rolloutId, "go-1");
    await c.enqueueRollouts([{ rolloutId: "go-late", input: 7, queue: "agents", labels: goTask }]);
    assert.equal((await take(poll, signal)).rolloutId, "go-late");
    await assertQueuing(c, "ts-default-queue", "unlabelled");

    // The default queue holds only a TypeScript task: a poll that wants none finds nothing; a
    // plain poll (the positional form) takes it.
    assert.equal(await c.dequeueRollout("not-ts", 0, { labelSelector: "!lang,lang!=ts" }), undefined);
    assert.equal((await take(new DequeueSource(c, "any", 1000), signal)).rolloutId, "ts-default-queue");
    await assertQueuing(c, "unlabelled");
  });

  // Two experiments on one server, each with its own client namespace: rollouts, workers and
  // "latest" resources never cross over, and each rollout runs with the resources its own
  // namespace had when it was enqueued.
  it("keeps namespaces apart and runs rollouts with the resources pinned at enqueue", async () => {
    const signal = AbortSignal.timeout(60_000);
    const expA = client("exp-a");
    const expB = expA.withNamespace("exp-b"); // a view: same connection, another namespace
    assert.deepEqual([expA.namespace, expB.namespace], ["exp-a", "exp-b"]);
    await expA.addResources("res-a", promptResources("A: {question}"));
    await expB.addResources("res-b", promptResources("B: {question}"));
    // B's rollouts are older than A's: a worker that saw across namespaces would take them first.
    await expB.enqueueRollouts([{ rolloutId: "b-1", input: "b" }, { rolloutId: "b-2", input: "b" }]);
    await expA.enqueueRollouts([{ rolloutId: "a-1", input: "a" }]);
    // A's latest changes after a-1 was queued: the Work stream still hands over res-a with it.
    await expA.addResources("res-a2", promptResources("newer: {question}"));

    const streamA = new WorkStreamSource(expA, { workerId: "worker-a", logger: quiet });
    sources.push(streamA);
    const assignment = await streamA.next(signal);
    assert.ok(assignment);
    const task = new Task(expA, streamA, assignment);
    assert.equal(task.rolloutId, "a-1");
    assert.equal(task.namespace, "exp-a");
    assert.equal(task.resourcesId, "res-a");
    const resources = await task.getResources();
    assert.equal(resources.resourcesId, "res-a");
    assert.equal((await task.promptTemplate()).template, "A: {question}");
    assert.equal(resources.namespace, "exp-a");
    await task.finish(AttemptStatus.SUCCEEDED);
    await streamA.close(); // exp-a has no worker from now on

    // B's latest changes after b-1 and b-2 were queued; they still run with res-b.
    await expB.addResources("res-b2", promptResources("newer: {question}"));
    const pollB = new DequeueSource(expB, "worker-b", 5000);
    for (const want of ["b-1", "b-2"]) {
      const got = await pollB.next(signal);
      assert.ok(got);
      const taskB = new Task(expB, pollB, got);
      assert.equal(taskB.rolloutId, want);
      assert.equal((await taskB.getResources()).resourcesId, "res-b");
      assert.equal((await taskB.promptTemplate()).template, "B: {question}");
      await taskB.finish(AttemptStatus.SUCCEEDED);
    }

    // "Latest" is per namespace, and a set of another namespace is not there.
    assert.equal((await expA.getResources()).resourcesId, "res-a2");
    assert.equal((await expB.getResources()).resourcesId, "res-b2");
    await assert.rejects(expA.getResources("res-b"), (error) => codeOf(error) === Code.NotFound);
    // A worker of the default namespace finds nothing of either experiment.
    await expA.enqueueRollouts([{ rolloutId: "a-2", input: "a" }]);
    assert.equal(await expA.withNamespace("").dequeueRollout("worker-default", 0), undefined);
    await assertQueuing(expA, "a-2");
  });

  // Bad routing input is refused with INVALID_ARGUMENT naming the bad part; a Work stream with a
  // malformed selector fails for good instead of reconnecting forever.
  it("refuses malformed selectors, namespaces and priorities", async () => {
    const c = client("checks");
    await c.enqueueRollouts([{ rolloutId: "kept", input: 1 }]);
    await assert.rejects(c.dequeueRollout("w", 0, { labelSelector: "lang in (go" }), (error) => {
      assert.equal(codeOf(error), Code.InvalidArgument);
      assert.match(String(error), /lang in \(go/);
      return true;
    });
    await assert.rejects(client("Not A Namespace").enqueueRollouts([{ input: 1 }]), (error) => {
      assert.equal(codeOf(error), Code.InvalidArgument);
      assert.match(String(error), /Not A Namespace/);
      return true;
    });
    await assert.rejects(c.enqueueRollouts([{ input: 1, priority: -1 }]), (error) => {
      assert.match(String(error), /priority/);
      return true;
    });
    const stream = new WorkStreamSource(c, { labelSelector: "=go", logger: quiet });
    sources.push(stream);
    await assert.rejects(stream.start(AbortSignal.timeout(20_000)), (error) => {
      assert.equal(codeOf(error), Code.InvalidArgument);
      return true;
    });
    await assertQueuing(c, "kept");
  });
});
