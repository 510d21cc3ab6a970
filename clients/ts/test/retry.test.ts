import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { Code, ConnectError } from "@connectrpc/connect";

import {
  AglError,
  AttemptStatus,
  backoffMs,
  connect,
  failureCode,
  Outage,
  rolloutStatusName,
  STREAM_RETRYABLE,
  UNARY_RETRYABLE,
  WorkStreamSource,
  type AglClient,
  type ClientOptions,
} from "../src/index.js";
import { TestServer } from "./support/server.js";

const quiet = { warn: () => undefined, error: () => undefined };

// The policy table of docs/retry.md; the same table is pinned in
// tests/integration/test_retry_policy.py and clients/go/agl/retry_internal_test.go.
describe("the retry policy", () => {
  it("retries the same codes as the Python and Go clients", () => {
    assert.deepEqual([...UNARY_RETRYABLE], [Code.Unavailable]);
    assert.deepEqual(
      [...STREAM_RETRYABLE].map((c) => Code[c]).sort(),
      ["Canceled", "DeadlineExceeded", "Internal", "Unavailable", "Unknown"],
    );
    assert.equal(STREAM_RETRYABLE.has(Code.Aborted), false);
    // A transport failure Connect reports as ABORTED (with a Node cause) is an outage; the server's is not.
    assert.equal(failureCode(new ConnectError("reset", Code.Aborted, undefined, undefined, new Error("ECONNRESET"))), Code.Unavailable);
    assert.equal(failureCode(new ConnectError("taken over", Code.Aborted)), Code.Aborted);
    const ceilings: [number, number][] = [[1, 100], [2, 200], [3, 400], [5, 1600], [6, 2000], [30, 2000]];
    for (const [failures, ceiling] of ceilings) {
      const wait = backoffMs(failures);
      assert.ok(wait >= ceiling / 2 && wait <= ceiling, `backoff after ${failures}: ${wait}`);
    }
  });

  it("gives up at its deadline; a success starts a new outage", () => {
    const outage = new Outage(300);
    assert.notEqual(outage.failed(), undefined);
    outage.since = Date.now() - 1000; // as if the outage began a second ago
    assert.equal(outage.failed(), undefined);
    outage.succeeded();
    assert.notEqual(outage.failed(), undefined);
    assert.equal(new Outage(0).failed(), undefined);
  });
});

describe("the retry policy against a real agl-server", () => {
  let server: TestServer;
  const made: AglClient[] = [];
  const make = (options: ClientOptions) => {
    const client = connect(options);
    made.push(client);
    return client;
  };
  before(async () => {
    server = await TestServer.start();
  });
  after(async () => {
    await Promise.all(made.map((c) => c.close(2000).catch(() => undefined)));
    await server.dispose();
  });

  it("takes plain JSON inputs and picks rollout ids", async () => {
    const client = make({ address: server.address });
    const rollouts = await client.enqueueRollouts([{ input: { x: 1 } }, { input: [1, "two"] }, { input: null }, {}]);
    assert.equal(rollouts.length, 4);
    for (const rollout of rollouts) {
      assert.match(rollout.rolloutId, /^ro-[0-9a-f]{16}$/);
      assert.equal(rolloutStatusName(rollout.status), "queuing");
    }
    const first = await client.getRollout(rollouts[0]!.rolloutId);
    assert.equal(first.input?.kind.case, "structValue");
  });

  // The retries of unary calls used to stop after 5 tries (about 1.5s); the deadline counts now.
  it("keeps a unary call going through an outage longer than five tries", async () => {
    const client = make({ address: server.address, retryDeadlineMs: 60_000 });
    const [rollout] = await client.enqueueRollouts([{ rolloutId: "ro-outage", input: { x: 1 } }]);
    await server.stop();
    let settled = false;
    const call = client.getRollout(rollout!.rolloutId, { timeoutMs: 60_000 }).finally(() => {
      settled = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 3000)); // longer than five back-offs
    assert.equal(settled, false);
    await server.restart();
    assert.equal((await call).rolloutId, "ro-outage");
  });

  it("gives a unary call up at the retry deadline", async () => {
    const client = make({ address: server.address, retryDeadlineMs: 1000 });
    await client.getResources().catch(() => undefined); // connected once
    await server.stop();
    const started = Date.now();
    await assert.rejects(client.getResources(), (error) => {
      assert.ok(error instanceof AglError);
      assert.equal(error.code, Code.Unavailable);
      return true;
    });
    assert.ok(Date.now() - started >= 1000, `gave up after ${Date.now() - started}ms`);
    await server.restart();
  });

  it("fails a status that is not retried at once", async () => {
    const client = make({ address: server.address, retryDeadlineMs: 60_000 });
    await assert.rejects(
      client.updateAttempt("ro-missing", "latest", AttemptStatus.SUCCEEDED, { timeoutMs: 20_000 }),
      (error) => {
        assert.ok(error instanceof AglError);
        assert.equal(error.code, Code.NotFound);
        return true;
      },
    );
  });

  it("gives the Work stream up at the retry deadline", async () => {
    const empty = await TestServer.start(); // with an empty queue: no assignment can answer next()
    try {
      const client = make({ address: empty.address, retryDeadlineMs: 1000 });
      const source = new WorkStreamSource(client, { workerId: "w-retry", logger: quiet });
      await source.start();
      const started = Date.now(); // the stream breaks while the server shuts down: the outage starts then
      await empty.stop();
      await assert.rejects(source.next(AbortSignal.timeout(30_000)), (error) => {
        assert.ok(error instanceof AglError);
        assert.equal(error.code, Code.Unavailable);
        assert.match(error.message, /reach the Work stream for 1000ms/);
        return true;
      });
      assert.ok(Date.now() - started >= 1000, `gave up after ${Date.now() - started}ms`);
      await source.close().catch(() => undefined);
    } finally {
      await empty.dispose();
    }
  });
});
