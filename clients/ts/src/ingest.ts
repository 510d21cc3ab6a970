import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

import { AglError, ItemErrors } from "./errors.js";
import {
  IngestSpansRequestSchema,
  type IngestSpansRequest,
  type IngestSpansResponse,
} from "./gen/agl/v1/store_pb.js";
import { type Span, SpanSchema } from "./gen/agl/v1/trace_pb.js";
import { ItemErrorSchema } from "./gen/agl/v1/types_pb.js";
import { failureCode, Outage, STREAM_RETRYABLE } from "./retry.js";
import { estimateSize } from "./span_size.js";
import type { Ack, PendingAck, SpanStreamClient, SpanStreamOptions, SpanStreamStats } from "./span_stream_types.js";
import { abortion, deferred, sleep } from "./util.js";

interface Pending {
  ack: Ack;
  outstanding: number;
  finished: boolean;
  resolve(ack: Ack): void;
  reject(error: Error): void;
}

interface QueuedSpan {
  pending: Pending;
  index: number;
  span: Span;
  size: number;
}

interface Batch {
  id: bigint;
  items: QueuedSpan[];
}


/**
 * Sends spans to agl-server on one long-lived IngestSpans stream: spans from all callers are
 * packed into batches, several batches are in flight at once, and the server acknowledges each
 * once its spans are durable. When the stream breaks, the unacknowledged batches go again on a new
 * stream (the server ignores span ids it already has) until the client's retry deadline passes
 * without progress (docs/retry.md). Memory is bounded by the queue limit.
 *
 * A span handed to the stream belongs to it: do not change it afterwards.
 */
export class SpanStream {
  private readonly o: Required<SpanStreamOptions>;
  private queue: QueuedSpan[] = [];
  private resend: Batch[] = [];
  private readonly inflight = new Map<bigint, Batch>();
  private queued = 0;
  private nextId = 0n;
  private closed = false;
  private running: Promise<void> | undefined;
  private readonly stop = new AbortController();
  private changed = deferred<void>();
  private readonly counters = { batchesAcked: 0, reconnects: 0 };

  constructor(
    private readonly client: SpanStreamClient,
    options: SpanStreamOptions = {},
  ) {
    this.o = {
      batchSpans: Math.max(1, options.batchSpans ?? 1024),
      batchBytes: options.batchBytes ?? 1 << 20,
      inflightBatches: Math.max(1, options.inflightBatches ?? 16),
      queueLimit: Math.max(1, options.queueLimit ?? 100_000),
      maxSpanBytes: options.maxSpanBytes ?? 16 << 20,
    };
  }

  /** Sends spans and resolves once they are acknowledged. */
  async send(spans: Span[], options: { signal?: AbortSignal } = {}): Promise<Ack> {
    return (await this.enqueue(spans, options)).acked;
  }

  /**
   * Hands spans to the stream; resolves once they are queued (at once, or when the queue is full,
   * once there is room). `acked` says when they are acknowledged.
   */
  async enqueue(spans: Span[], options: { signal?: AbortSignal } = {}): Promise<PendingAck> {
    const { promise, resolve, reject } = deferred<Ack>();
    promise.catch(() => undefined); // a failure is for whoever awaits `acked`, not a crash
    const pending: Pending = {
      ack: { accepted: 0, duplicates: [], rejected: [] },
      outstanding: 0,
      finished: false,
      resolve,
      reject,
    };
    const items: QueuedSpan[] = [];
    spans.forEach((span, index) => {
      // Serialising every span just to size it would double the cost of sending it (protobuf-es
      // serialises in JavaScript): an estimate sizes batches, and only spans that may be too
      // large are measured exactly.
      let size = estimateSize(span);
      if (size > this.o.maxSpanBytes / 2) {
        size = toBinary(SpanSchema, span).length;
      }
      if (size > this.o.maxSpanBytes) {
        pending.ack.rejected.push(
          create(ItemErrorSchema, {
            index,
            code: Code.ResourceExhausted,
            message:
              `spans[${index}] ("${span.name}") is ${size} bytes, over the ${this.o.maxSpanBytes}-byte ` +
              "limit of one message; trim its attributes",
          }),
        );
      } else {
        items.push({ pending, index, span, size });
      }
    });
    if (items.length === 0) {
      pending.finished = true;
      resolve(pending.ack);
      return { acked: promise };
    }
    pending.outstanding = items.length;
    await this.waitFor(
      () => this.closed || this.queued === 0 || this.queued + items.length <= this.o.queueLimit,
      options.signal,
    );
    if (this.closed) {
      throw new AglError("send spans", this.client.address, new ConnectError("the span stream is closed", Code.Unavailable));
    }
    this.queue.push(...items);
    this.queued += items.length;
    this.running ??= this.run().finally(() => {
      this.running = undefined;
      this.notify();
    });
    this.notify();
    return { acked: promise };
  }

  /** Resolves once every span enqueued so far is acknowledged or has failed. */
  async flush(options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.waitFor(() => !this.hasWork(), options.signal);
  }

  /**
   * Flushes (for at most `timeoutMs`), ends the stream and fails whatever is still
   * unacknowledged. Later calls fail with UNAVAILABLE.
   */
  async close(timeoutMs = 10_000): Promise<void> {
    const signal = AbortSignal.timeout(timeoutMs);
    let flushError: unknown;
    try {
      await this.flush({ signal });
    } catch (error) {
      flushError = error;
    }
    this.closed = true;
    this.notify();
    if (this.running) {
      const onAbort = () => this.stop.abort();
      signal.addEventListener("abort", onAbort, { once: true });
      if (signal.aborted) {
        onAbort();
      }
      await this.running;
      signal.removeEventListener("abort", onAbort);
    }
    this.failAll(new ConnectError("the span stream was closed before these spans were acknowledged", Code.Unavailable));
    if (flushError !== undefined) {
      throw new Error(`agl: closing the span stream: ${this.queued} spans were not acknowledged in ${timeoutMs}ms`, {
        cause: flushError,
      });
    }
  }

  /** The stream's counters. */
  stats(): SpanStreamStats {
    return { ...this.counters, queued: this.queued, inflight: this.inflight.size };
  }

  // --- the stream ------------------------------------------------------------------------------

  private async run(): Promise<void> {
    const outage = new Outage(this.client.retryDeadlineMs);
    for (;;) {
      try {
        await this.waitFor(() => this.closed || this.hasWork(), this.stop.signal);
      } catch {
        return; // stopped
      }
      if (this.closed && !this.hasWork()) {
        return;
      }
      const ackedBefore = this.counters.batchesAcked;
      const error = await this.session();
      if (error === undefined || this.stop.signal.aborted) {
        return;
      }
      if (this.counters.batchesAcked > ackedBefore) {
        outage.succeeded(); // that stream delivered: a new outage starts now
      }
      const retryable = STREAM_RETRYABLE.has(failureCode(error));
      const wait = retryable ? outage.failed() : undefined;
      const broken = [...this.inflight.values()];
      this.inflight.clear();
      if (wait !== undefined) {
        // Oldest first, so acks keep coming in roughly the order spans were handed over.
        this.resend = [...broken, ...this.resend].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        this.counters.reconnects++;
      } else if (retryable) {
        // Out of time: everything held fails, and whatever comes next starts a new outage.
        const failure = new AglError(`deliver spans for ${this.client.retryDeadlineMs}ms`, this.client.address, error);
        for (const batch of [...broken, ...this.resend]) {
          this.failBatch(batch, failure);
        }
        this.resend = [];
        this.failQueue(failure);
        outage.succeeded();
      } else {
        // The server's answer: these batches fail at once, and nothing waits.
        const failure = new AglError("send spans", this.client.address, error);
        for (const batch of broken) {
          this.failBatch(batch, failure);
        }
        outage.succeeded();
      }
      this.notify();
      if (wait !== undefined) {
        await sleep(wait, this.stop.signal);
      }
    }
  }

  /**
   * Runs one IngestSpans stream until it breaks (returning the error) or, once the stream is
   * closed and everything acknowledged, ends it cleanly (returning undefined).
   */
  private async session(): Promise<ConnectError | undefined> {
    const call = new AbortController();
    const onStop = () => call.abort();
    this.stop.signal.addEventListener("abort", onStop, { once: true });
    try {
      // No deadline: the stream lives as long as the client.
      const responses = this.client.store.ingestSpans(this.requests(call.signal), { signal: call.signal, timeoutMs: 0 });
      for await (const response of responses) {
        this.acknowledge(response);
      }
      if (this.closed && !this.hasWork()) {
        return undefined;
      }
      return new ConnectError("agl-server ended the span stream", Code.Unavailable);
    } catch (error) {
      return ConnectError.from(error);
    } finally {
      this.stop.signal.removeEventListener("abort", onStop);
      call.abort();
    }
  }

  /** The requests of one stream: batches while there is room in flight; ends once closed and idle. */
  private async *requests(signal: AbortSignal): AsyncGenerator<IngestSpansRequest> {
    for (;;) {
      try {
        await this.waitFor(
          () => (this.hasSendable() && this.inflight.size < this.o.inflightBatches) || (this.closed && !this.hasWork()),
          signal,
        );
      } catch {
        return;
      }
      if (!this.hasSendable()) {
        return; // closed and idle: end our side; the server then ends its side
      }
      const batch = this.nextBatch();
      this.inflight.set(batch.id, batch);
      yield create(IngestSpansRequestSchema, { batchId: batch.id, spans: batch.items.map((item) => item.span) });
    }
  }

  private acknowledge(response: IngestSpansResponse): void {
    const batch = this.inflight.get(response.batchId);
    if (batch === undefined) {
      return; // an ack of a batch given up on
    }
    this.inflight.delete(response.batchId);
    const duplicates = new Set(response.duplicateIndices);
    const rejected = new Map(response.rejected.map((e) => [e.index, e]));
    batch.items.forEach((item, position) => {
      const p = item.pending;
      const error = rejected.get(position);
      if (duplicates.has(position)) {
        p.ack.duplicates.push(item.index);
      } else if (error !== undefined) {
        p.ack.rejected.push(create(ItemErrorSchema, { index: item.index, code: error.code, message: error.message }));
      } else {
        p.ack.accepted++;
      }
      if (--p.outstanding === 0 && !p.finished) {
        p.finished = true;
        p.ack.duplicates.sort((a, b) => a - b);
        p.ack.rejected.sort((a, b) => a.index - b.index);
        p.resolve(p.ack);
      }
    });
    this.queued -= batch.items.length;
    this.counters.batchesAcked++;
    this.notify();
  }

  // --- bookkeeping ------------------------------------------------------------------------------

  private notify(): void {
    this.changed.resolve();
    this.changed = deferred<void>();
  }

  /** Resolves once `cond` holds; rejects when `signal` aborts first. */
  private async waitFor(cond: () => boolean, signal?: AbortSignal): Promise<void> {
    if (cond()) {
      return;
    }
    if (signal === undefined) {
      while (!cond()) {
        await this.changed.promise;
      }
      return;
    }
    const aborted = abortion(signal);
    try {
      while (!cond()) {
        await Promise.race([this.changed.promise, aborted.promise]);
      }
    } finally {
      aborted.detach();
    }
  }

  private hasSendable(): boolean {
    return this.resend.length > 0 || this.queue.length > 0;
  }

  private hasWork(): boolean {
    return this.hasSendable() || this.inflight.size > 0;
  }

  private nextBatch(): Batch {
    const resent = this.resend.shift();
    if (resent !== undefined) {
      return resent;
    }
    this.nextId++;
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && n < this.o.batchSpans) {
      const item = this.queue[n]!;
      if (n > 0 && bytes + item.size > this.o.batchBytes) {
        break;
      }
      bytes += item.size;
      n++;
    }
    return { id: this.nextId, items: this.queue.splice(0, n) };
  }

  private failBatch(batch: Batch, error: Error): void {
    for (const item of batch.items) {
      fail(item.pending, error);
    }
    this.queued -= batch.items.length;
  }

  private failQueue(error: Error): void {
    for (const item of this.queue) {
      fail(item.pending, error);
    }
    this.queued -= this.queue.length;
    this.queue = [];
  }

  private failAll(error: ConnectError): void {
    const failure = new AglError("send spans", this.client.address, error);
    for (const batch of [...this.inflight.values(), ...this.resend]) {
      this.failBatch(batch, failure);
    }
    this.inflight.clear();
    this.resend = [];
    this.failQueue(failure);
    this.notify();
  }
}

function fail(pending: Pending, error: Error): void {
  if (!pending.finished) {
    pending.finished = true;
    pending.reject(error);
  }
}

/** The ack's rejected spans as an error, or undefined when none was rejected. */
export function ackError(ack: Ack): ItemErrors | undefined {
  return ack.rejected.length > 0 ? new ItemErrors("ingest spans", ack.rejected) : undefined;
}
