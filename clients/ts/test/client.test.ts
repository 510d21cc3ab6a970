import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";

import {
  AglError,
  AttemptStatus,
  attr,
  attributeMap,
  connect,
  DequeueSource,
  formatPrompt,
  int,
  ItemErrors,
  jsonValue,
  newSpan,
  newTraceId,
  PromptTemplateEngine,
  RolloutMode,
  RolloutStatus,
  rolloutStatusName,
  semconv,
  SpanSchema,
  Task,
  type AglClient,
  type ClientOptions,
  type Span,
} from "../src/index.js";
import { TestServer, verifyRollout, waitUntil } from "./support/server.js";

function promptResources(template: string) {
  return {
    prompt: { kind: { case: "promptTemplate" as const, value: { template, engine: PromptTemplateEngine.F_STRING } } },
    llm: { kind: { case: "llm" as const, value: { endpoint: "http://127.0.0.1:9/v1", model: "offline" } } },
  };
}

/** Clients made in a test, closed after it. */
function clients() {
  const made: AglClient[] = [];
  return {
    make(options: ClientOptions): AglClient {
      const client = connect(options);
      made.push(client);
      return client;
    },
    async closeAll(): Promise<void> {
      await Promise.all(made.map((c) => c.close(2000).catch(() => undefined)));
    },
  };
}

describe("AglClient against a real agl-server", () => {
  let server: TestServer;
  const pool = clients();
  before(async () => {
    server = await TestServer.start();
  });
  after(async () => {
    await pool.closeAll();
    await server.dispose();
  });

  // The whole life of a rollout through the TS client: enqueue, take it with a long poll, read
  // the latest resources, stream spans of every attribute type with acks, emit a reward, finish,
  // wait; then Python reads the spans and the reward back.
  it("runs a rollout from enqueue to Python reading its spans", async () => {
    const client = pool.make({ address: server.address });
    await client.addResources("res-old", promptResources("old {question}"));
    await client.addResources("res-1", promptResources("Q: {question} (tags: {meta[tags][1]})"));
    const input = { question: "What is 6 * 7?", meta: { tags: ["math", "easy"], level: 2, ok: true, none: null } };
    // Plain JSON in, statuses by name out.
    const [queued] = await client.enqueueRollouts([
      { rolloutId: "ro-ts-1", input, mode: RolloutMode.TRAIN, config: { maxAttempts: 2 } },
    ]);
    assert.equal(queued?.status, RolloutStatus.QUEUING);
    assert.equal(rolloutStatusName(queued.status), "queuing");

    const source = new DequeueSource(client, "ts-worker", 5000);
    const assignment = await source.next(AbortSignal.timeout(30_000));
    assert.equal(assignment.rollout.rolloutId, "ro-ts-1");
    assert.equal(assignment.rollout.attempt?.sequenceId, 1);
    assert.equal(assignment.rollout.attempt?.workerId, "ts-worker");
    const task = new Task(client, source, assignment);
    assert.deepEqual(task.input, input);

    const prompt = formatPrompt(await task.promptTemplate("prompt"), task.input as never);
    assert.equal(prompt, "Q: What is 6 * 7? (tags: easy)");

    const tool = task.startSpan("calculator", [attr(semconv.TOOL_NAME, "calculator")]);
    await task.end(tool, [
      attr("s", "héllo ✓"),
      attr("b", true),
      attr("i", -(2n ** 62n)),
      attr("i53", -Number.MAX_SAFE_INTEGER),
      attr("d", 0.1),
      attr("raw", new Uint8Array([0, 1, 254, 255])),
      attr("nested", [1, ["x", false], { k: 2.5 }]),
      attr("kv", { z: int(1), a: { deep: new Uint8Array([0x78]) } }),
    ]);
    await task.emitReward(0.75);
    await task.finish(AttemptStatus.SUCCEEDED);
    await assert.rejects(task.emit(newSpan("late")), /finished/);

    const { rollouts, pending } = await client.waitForRollouts(["ro-ts-1"], 10_000);
    assert.deepEqual(pending, []);
    assert.equal(rollouts[0]?.status, RolloutStatus.SUCCEEDED);

    // An int64 beyond 2**53 comes back as a bigint (JSON, and so the Python check, cannot carry it).
    const stored = await client.querySpans("ro-ts-1", task.attemptId);
    const calculator = stored.find((s) => s.name === "calculator");
    assert.equal(attributeMap(calculator?.attributes ?? []).i, -(2n ** 62n));

    await verifyRollout(server.address, "ro-ts-1", {
      status: "succeeded",
      reward: 0.75,
      span_count: 3,
      spans: [
        { name: semconv.SPAN_ROLLOUT, parent: "" },
        {
          name: "calculator",
          parent: semconv.SPAN_ROLLOUT,
          attributes: {
            [semconv.TOOL_NAME]: "calculator",
            s: "héllo ✓",
            b: true,
            i53: -Number.MAX_SAFE_INTEGER,
            d: 0.1,
            raw: { bytes: "0001feff" },
            nested: [1, ["x", false], { k: 2.5 }],
            kv: { z: 1, a: { deep: { bytes: "78" } } },
          },
        },
        { name: semconv.SPAN_REWARD, parent: semconv.SPAN_ROLLOUT, attributes: { [semconv.REWARD_VALUE]: 0.75 } },
      ],
    });
  });

  // A long poll on an empty queue ends empty-handed after its wait; one that is waiting when work
  // arrives gets it.
  it("long-polls for work", async () => {
    const client = pool.make({ address: server.address });
    assert.equal(await client.dequeueRollout("w-poll", 200), undefined);
    const waiting = client.dequeueRollout("w-poll", 20_000);
    await client.enqueueRollouts([{ rolloutId: "ro-wake", input: jsonValue(null) }]);
    assert.equal((await waiting)?.rolloutId, "ro-wake");
  });

  // Bad input gets the server's precise status, wrapped with what the client was doing.
  it("reports errors with their status and advice", async () => {
    const client = pool.make({ address: server.address });
    await assert.rejects(client.updateAttempt("ro-missing", "latest", AttemptStatus.SUCCEEDED), (error) => {
      assert.ok(error instanceof AglError);
      assert.equal(error.code, Code.NotFound);
      assert.match(error.message, /set attempt "latest" of rollout "ro-missing".*ro-missing/);
      return true;
    });

    await assert.rejects(
      client.enqueueRollouts([
        { rolloutId: "ro-ok", input: jsonValue(null) },
        { rolloutId: "ro-bad", input: { kind: { case: "numberValue", value: Number.NaN } } },
      ]),
      (error) => {
        assert.ok(error instanceof ItemErrors);
        assert.equal(error.items.length, 1);
        assert.equal(error.items[0]?.index, 1);
        assert.equal(error.items[0]?.code, Code.InvalidArgument);
        assert.equal((error.results[0] as { rolloutId: string }).rolloutId, "ro-ok");
        assert.equal(error.results[1], undefined);
        return true;
      },
    );

    // A span for an attempt that does not exist is rejected on its own, with a reason.
    const orphan = newSpan("orphan");
    orphan.traceId = newTraceId();
    orphan.rolloutId = "ro-ok";
    orphan.attemptId = "no-such-attempt";
    const ack = await client.spans.send([orphan]);
    assert.equal(ack.accepted, 0);
    assert.equal(ack.rejected.length, 1);
    assert.equal(ack.rejected[0]?.index, 0);

    // A span over the size limit is rejected at once (RESOURCE_EXHAUSTED); the rest of the call goes.
    const small = pool.make({ address: server.address, spanStream: { maxSpanBytes: 2000 } });
    const claimed = await small.dequeueRollout("w-small", 1000);
    assert.equal(claimed?.rolloutId, "ro-ok");
    const [ok, big] = [newSpan("ok"), newSpan("big", [attr("payload", "x".repeat(5000))])];
    for (const span of [ok!, big!]) {
      span.traceId = newTraceId();
      span.rolloutId = "ro-ok";
      span.attemptId = claimed?.attempt?.attemptId ?? "";
    }
    const sized = await small.spans.send([ok!, big!]);
    assert.equal(sized.accepted, 1);
    assert.deepEqual(sized.rejected.map((e) => [e.index, e.code]), [[1, Code.ResourceExhausted]]);
  });

  // One QuerySpans call for the spans of several rollouts, by rollout id in the order asked.
  it("queries the spans of several rollouts in one call", async () => {
    const client = pool.make({ address: server.address });
    await client.enqueueRollouts([
      { rolloutId: "ro-many-1", input: jsonValue(null), queue: "many" },
      { rolloutId: "ro-many-2", input: jsonValue(null), queue: "many" },
      { rolloutId: "ro-many-queued", input: jsonValue(null), queue: "other" },
    ]);
    const counts: Record<string, number> = { "ro-many-1": 3, "ro-many-2": 1 };
    for (let i = 0; i < 2; i++) {
      const rollout = await client.dequeueRollout("w-many", 1000, { queues: ["many"] });
      const id = rollout?.rolloutId ?? "";
      const sent = spansFor(id, rollout?.attempt?.attemptId ?? "", id, counts[id] ?? 0);
      assert.equal((await client.spans.send(sent)).accepted, sent.length);
    }
    const found = await client.querySpansOfRollouts(["ro-many-2", "ro-many-queued", "ro-many-1"], "latest");
    assert.deepEqual([...found.keys()], ["ro-many-2", "ro-many-queued", "ro-many-1"]);
    assert.deepEqual(found.get("ro-many-queued"), []);
    for (const [id, n] of Object.entries(counts)) {
      const spans = found.get(id) ?? [];
      assert.deepEqual(spans.map((s) => [s.rolloutId, s.name, Number(s.sequenceId)]), Array.from({ length: n }, (_, i) => [id, id, i + 1]));
    }
    await assert.rejects(client.querySpansOfRollouts(["ro-many-1", "ro-many-1"]), (error) => {
      assert.ok(error instanceof AglError);
      assert.equal(error.code, Code.InvalidArgument);
      assert.match(error.message, /rollout_ids\[1\] repeats rollout_ids\[0\]/);
      return true;
    });
    await assert.rejects(client.querySpansOfRollouts(["ro-many-1", "ro-many-missing"]), (error) => {
      assert.ok(error instanceof AglError);
      assert.equal(error.code, Code.NotFound);
      assert.match(error.message, /ro-many-missing/);
      return true;
    });
  });
});

function spansFor(rolloutId: string, attemptId: string, prefix: string, n: number): Span[] {
  return Array.from({ length: n }, (_, i) =>
    create(SpanSchema, {
      ...newSpan(prefix, [attr("i", i)]),
      traceId: newTraceId(),
      rolloutId,
      attemptId,
    }),
  );
}

describe("AglClient when the server goes away", () => {
  const pool = clients();
  after(() => pool.closeAll());

  // Spans in flight when the server dies are sent again once it is back, and every span is stored
  // once. The server is frozen (SIGSTOP) so a batch is surely sent and unacknowledged, then killed
  // and restarted on the same port and data directory.
  it("resends unacknowledged spans after a crash, storing each once", async () => {
    const server = await TestServer.start();
    try {
      const client = pool.make({ address: server.address, spanStream: { batchSpans: 4 } });
      await client.enqueueRollouts([{ rolloutId: "ro-crash", input: jsonValue(null) }]);
      const rollout = await client.dequeueRollout("w", 1000);
      const attemptId = rollout?.attempt?.attemptId ?? "";
      const before = spansFor("ro-crash", attemptId, "before", 6);
      assert.equal((await client.spans.send(before)).accepted, 6);

      process.kill(server.pid, "SIGSTOP");
      const during = spansFor("ro-crash", attemptId, "during", 10);
      const pending = await client.spans.enqueue(during);
      await waitUntil(() => client.spans.stats().inflight > 0);
      await server.kill();
      await server.restart();

      const ack = await pending.acked;
      assert.equal(ack.accepted + ack.duplicates.length, 10);
      assert.deepEqual(ack.rejected, []);
      assert.ok(client.spans.stats().reconnects >= 1, `no reconnect: ${JSON.stringify(client.spans.stats())}`);

      // Sending a stored span again is answered as a duplicate, not stored twice.
      const again = await client.spans.send([before[0]!]);
      assert.equal(again.accepted, 0);
      assert.deepEqual(again.duplicates, [0]);

      const stored = await client.querySpans("ro-crash");
      assert.equal(stored.length, 16);
      const ids = new Set(stored.map((s) => Buffer.from(s.spanId).toString("hex")));
      for (const span of [...before, ...during]) {
        assert.ok(ids.has(Buffer.from(span.spanId).toString("hex")), `span ${span.name} lost`);
      }
    } finally {
      await server.dispose();
    }
  });

  // A worker rides out a server restart: its long poll fails while the server is down and is
  // retried until the server is back with work.
  it("keeps polling while the server restarts", async () => {
    const server = await TestServer.start();
    try {
      const client = pool.make({ address: server.address });
      await server.stop();
      const next = new DequeueSource(client, "w", 2000, () => undefined).next(AbortSignal.timeout(30_000));
      await server.restart();
      await client.enqueueRollouts([{ rolloutId: "ro-back", input: jsonValue(null) }]);
      assert.equal((await next).rollout.rolloutId, "ro-back");

      await server.stop();
      const down = pool.make({ address: server.address, retryDeadlineMs: 1000, timeoutMs: 2000 });
      await assert.rejects(down.getResources(), (error) => {
        assert.ok(error instanceof AglError);
        assert.equal(error.code, Code.Unavailable);
        assert.match(error.message, /agl-server --port/);
        return true;
      });
    } finally {
      await server.dispose();
    }
  });
});

describe("AglClient security", () => {
  const pool = clients();
  after(() => pool.closeAll());

  // With --token the server refuses calls without it (UNAUTHENTICATED, with advice) and takes
  // them with it.
  it("sends the bearer token", async () => {
    const server = await TestServer.start("--token", "s3cret");
    try {
      await assert.rejects(pool.make({ address: server.address, token: "" }).getResources(), (error) => {
        assert.ok(error instanceof AglError);
        assert.equal(error.code, Code.Unauthenticated);
        assert.match(error.message, /AGL_TOKEN/);
        return true;
      });
      await assert.rejects(pool.make({ address: server.address, token: "wrong" }).getResources(), {
        code: Code.Unauthenticated,
      });
      const client = pool.make({ address: server.address, token: "s3cret" });
      await client.addResources("r1", promptResources("{x}"));
      assert.equal((await client.getResources()).resourcesId, "r1");
    } finally {
      await server.dispose();
    }
  });

  it("connects over TLS with a private CA", async () => {
    const dir = mkdtempSync(join(tmpdir(), "agl-tls-"));
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ], { stdio: "ignore" });
    const server = await TestServer.start("--tls-cert", cert, "--tls-key", key);
    try {
      const client = pool.make({ address: server.address, tls: { ca: readFileSync(cert) } });
      await client.addResources("r-tls", promptResources("{x}"));
      const got = await client.getResources("r-tls");
      const kind = got.resources.prompt?.kind;
      assert.equal(kind?.case === "promptTemplate" ? kind.value.template : undefined, "{x}");
      await assert.rejects(pool.make({ address: server.address, retryDeadlineMs: 1000, timeoutMs: 2000 }).getResources());
    } finally {
      await server.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
