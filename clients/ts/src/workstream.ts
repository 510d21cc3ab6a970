import { hostname } from "node:os";

import { create, type JsonObject } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";

import { type AglClient, statusName } from "./client.js";
import { AglError } from "./errors.js";
import {
  type AttemptAssignment,
  type AttemptReport,
  type AttemptReportAck,
  type WorkRequest,
  WorkRequestSchema,
} from "./gen/agl/v1/runner_pb.js";
import { AttemptStatus } from "./gen/agl/v1/types_pb.js";
import { startHeartbeats } from "./heartbeats.js";
import { failureCode, Outage, STREAM_RETRYABLE } from "./retry.js";
import { Outbox } from "./outbox.js";
import { PendingReports } from "./pending_reports.js";
import { abortion, deferred, sleep } from "./util.js";
import type { Assignment, WorkSource } from "./work.js";
import type { WorkStreamOptions, WorkStreamStats } from "./workstream_options.js";

/**
 * Takes work that agl-server pushes on a RunnerService Work stream: the server assigns an
 * attempt (with its resources resolved) the moment one is queued and the worker has room, and
 * notices the moment the worker goes away (the attempts it held become UNRESPONSIVE at once, and
 * their rollouts are retried per their policy).
 *
 * The stream survives a server restart (the retry policy of docs/retry.md, src/retry.ts): the
 * source reconnects with back-off until the retry deadline, says hello again
 * listing the attempts it still runs (so the new server watches them instead of giving them up)
 * and resends every report the old stream did not acknowledge (reports are idempotent). Spans do
 * not travel on this stream: `Task.finish` waits for the acks of an attempt's spans on the
 * client's span stream before it reports the final status.
 *
 * Call {@link WorkStreamSource.close} when done (a `Runner` does not): it waits for the acks of
 * final reports and leaves cleanly.
 */
export class WorkStreamSource implements WorkSource {
  private id: string;
  private readonly capacity: number;
  private readonly heartbeatIntervalMs: number;
  private readonly retryDeadlineMs: number;
  private readonly info: JsonObject;
  private readonly namespace: string;
  private readonly queues: string[];
  private readonly labelSelector: string;
  private readonly startOnAssignment: boolean;
  private readonly logger: Pick<Console, "warn" | "error">;
  private queue: Assignment[] = [];
  /** attempt id -> rollout id: assigned, not finally reported. */
  private readonly held = new Map<string, string>();
  /** Reports sent (or to send) and not acknowledged. */
  private readonly pending = new PendingReports();
  private streams = 0;
  private outbox: Outbox<WorkRequest> | undefined; // the welcomed stream's requests, while there is one
  private draining = false;
  private closing = false;
  private failure: Error | undefined;
  private changed = deferred<void>();
  private readonly welcomed = deferred<void>();
  private supervisor: Promise<void> | undefined;
  private stopHeartbeats: (() => void) | undefined;
  private readonly stop = new AbortController();

  constructor(
    private readonly client: AglClient,
    options: WorkStreamOptions = {},
  ) {
    this.id = options.workerId ?? "";
    this.capacity = Math.max(1, options.capacity ?? 1);
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 10_000;
    this.retryDeadlineMs = options.retryDeadlineMs ?? client.retryDeadlineMs;
    this.logger = options.logger ?? console;
    this.namespace = options.namespace || client.namespace;
    this.queues = options.queues ?? [];
    this.labelSelector = options.labelSelector ?? "";
    this.startOnAssignment = options.startOnAssignment ?? true;
    this.info = {
      language: "typescript",
      node: process.version,
      pid: process.pid,
      host: hostname(),
      ...options.info,
    };
    this.welcomed.promise.catch(() => undefined);
  }

  /** The worker's id: the configured one, or the one the server picked once welcomed. */
  get workerId(): string {
    return this.id;
  }

  /** The source's counters. */
  stats(): WorkStreamStats {
    return { streams: this.streams, held: this.held.size, queued: this.queue.length };
  }

  /**
   * Opens the stream; resolves once the server welcomed the worker, rejects when the source
   * failed for good (a bad token, a server out of reach for the reconnect timeout) or `signal`
   * aborts. `next` calls it.
   */
  async start(signal?: AbortSignal): Promise<void> {
    if (this.supervisor === undefined) {
      this.supervisor = this.supervise();
      this.stopHeartbeats = startHeartbeats(this.heartbeatIntervalMs, () => this.heartbeat());
    }
    const aborted = signal ? abortion(signal) : undefined;
    try {
      await Promise.race([this.welcomed.promise, this.supervisor, ...(aborted ? [aborted.promise] : [])]);
    } finally {
      aborted?.detach();
    }
    if (this.failure) {
      throw this.failure;
    }
  }

  /**
   * The next attempt the server assigned. After {@link WorkStreamSource.drain}, what the source
   * still holds, then undefined once it holds nothing.
   */
  async next(signal: AbortSignal): Promise<Assignment | undefined> {
    await this.start(signal);
    const aborted = abortion(signal);
    try {
      for (;;) {
        const assignment = this.queue.shift();
        if (assignment !== undefined) {
          return assignment;
        }
        if (this.failure) {
          throw this.failure;
        }
        if (this.closing || (this.draining && this.held.size === 0)) {
          return undefined; // nothing queued and nothing running: no assignment can come any more
        }
        await Promise.race([this.changed.promise, aborted.promise]);
      }
    } finally {
      aborted.detach();
    }
  }

  /**
   * Sends an attempt's status on the stream and resolves once the server acknowledged it; rejects
   * with the store's code when it refused the report. A final status (SUCCEEDED, FAILED) frees
   * one unit of capacity. A report the stream could not deliver goes again on the next stream.
   * The report is queued on the stream (or for the next one) before this returns its promise, and
   * the server applies one attempt's reports in the order they came: a `Runner` sends RUNNING and
   * starts the handler without awaiting the ack, and awaits it only before the final report. With
   * `startOnAssignment` (the default) attempts arrive RUNNING and need no RUNNING report; one sent
   * anyway is acknowledged and changes nothing.
   */
  async report(rolloutId: string, attemptId: string, status: AttemptStatus, metadata?: JsonObject): Promise<void> {
    const op = `report attempt "${attemptId}" of rollout "${rolloutId}" as ${statusName(status)}`;
    if (this.failure) {
      throw this.failure;
    }
    if (this.closing) {
      throw new AglError(op, this.client.address, new ConnectError("the Work stream is closed", Code.Unavailable));
    }
    const { report, ack: acked, added } = this.pending.add(rolloutId, attemptId, status, metadata);
    if (added) {
      this.outbox?.push(reportRequest(report));
    }
    if (status === AttemptStatus.SUCCEEDED || status === AttemptStatus.FAILED) {
      this.held.delete(attemptId);
      this.notify();
    }
    const ack = await acked;
    if (ack.code !== 0) {
      throw new AglError(op, this.client.address, new ConnectError(ack.message, ack.code as Code));
    }
  }

  /** Asks the server for no new work (capacity 0); the attempts held run on. A `Runner` calls it on stop. */
  drain(): void {
    if (this.draining) {
      return;
    }
    this.draining = true;
    this.notify();
    this.outbox?.push(ready(0));
  }

  /**
   * Leaves: drains the source, waits (at most `timeoutMs`) for the acks of the reports sent so
   * far, then ends the stream. Attempts still held then (assigned and never finished) are given
   * up by the server as UNRESPONSIVE and retried per their policy. Close the source before its
   * client.
   */
  async close(timeoutMs = 10_000): Promise<void> {
    const deadline = AbortSignal.timeout(timeoutMs);
    let unacknowledged = 0;
    if (this.supervisor !== undefined) {
      this.drain();
      const aborted = abortion(deadline);
      try {
        while (this.pending.size > 0 && !this.failure) {
          await Promise.race([this.changed.promise, aborted.promise, this.supervisor]);
        }
      } catch {
        unacknowledged = this.pending.size;
      } finally {
        aborted.detach();
      }
      this.closing = true;
      this.notify();
      if (this.outbox) {
        // Half-close: the server ends the stream once it has seen everything sent before.
        this.outbox.end();
        const timedOut = abortion(deadline);
        try {
          await Promise.race([this.supervisor, timedOut.promise]);
        } catch {
          // The server did not end the stream in time: aborting the call below ends it.
        } finally {
          timedOut.detach();
        }
      }
      this.stop.abort();
      await this.supervisor;
      this.stopHeartbeats?.();
    }
    this.closing = true;
    const closed = new AglError(
      "report attempts",
      this.client.address,
      new ConnectError("the Work stream was closed before the report was acknowledged", Code.Unavailable),
    );
    this.pending.rejectAll(closed);
    this.notify();
    if (unacknowledged > 0) {
      throw new Error(`agl: closing the Work stream: ${unacknowledged} reports not acknowledged in ${timeoutMs}ms`);
    }
  }

  // --- the stream ------------------------------------------------------------------------------

  private async supervise(): Promise<void> {
    const outage = new Outage(this.retryDeadlineMs);
    for (;;) {
      const { welcomed, error } = await this.serve();
      if (this.stop.signal.aborted || this.closing) {
        return;
      }
      // Not retried: the server's answer (ABORTED: another stream took the worker id over).
      if (!STREAM_RETRYABLE.has(failureCode(error))) {
        this.fail(new AglError(`serve worker "${this.id}" on the Work stream`, this.client.address, error));
        return;
      }
      if (welcomed) {
        outage.succeeded(); // that stream had worked: a new outage starts now
      }
      const wait = outage.failed();
      if (wait === undefined) {
        const op =
          `reach the Work stream for ${this.retryDeadlineMs}ms ` +
          `(the attempts worker "${this.id}" held are retried elsewhere)`;
        this.fail(new AglError(op, this.client.address, error));
        return;
      }
      this.logger.warn(`agl: the Work stream broke (${error.message}); reconnecting in ${Math.round(wait)}ms`);
      await sleep(wait, this.stop.signal);
    }
  }

  /** Runs one stream: hello, welcome, resends, then assignments and acks until it ends. */
  private async serve(): Promise<{ welcomed: boolean; error: ConnectError }> {
    const outbox = new Outbox<WorkRequest>();
    outbox.push(
      create(WorkRequestSchema, {
        kind: {
          case: "hello",
          value: {
            workerId: this.id,
            capacity: this.draining ? 0 : this.capacity,
            heartbeatInterval: durationFromMs(this.heartbeatIntervalMs),
            activeAttempts: [...this.held].map(([attemptId, rolloutId]) => ({ rolloutId, attemptId })),
            info: this.info,
            namespace: this.namespace,
            queues: this.queues,
            labelSelector: this.labelSelector,
            startOnAssignment: this.startOnAssignment,
          },
        },
      }),
    );
    const call = new AbortController();
    const onStop = () => call.abort();
    this.stop.signal.addEventListener("abort", onStop, { once: true });
    let welcomed = false;
    try {
      // No deadline: the stream lives as long as the worker.
      const responses = this.client.runner.work(outbox.requests(call.signal), { signal: call.signal, timeoutMs: 0 });
      for await (const response of responses) {
        switch (response.kind.case) {
          case "welcome":
            welcomed = true;
            this.welcome(response.kind.value.workerId, outbox);
            break;
          case "assignment":
            this.assigned(response.kind.value);
            break;
          case "reportAck":
            this.acknowledged(response.kind.value);
            break;
        }
      }
      return { welcomed, error: new ConnectError("agl-server ended the Work stream", Code.Unavailable) };
    } catch (error) {
      return { welcomed, error: ConnectError.from(error) };
    } finally {
      this.stop.signal.removeEventListener("abort", onStop);
      if (this.outbox === outbox) {
        this.outbox = undefined;
      }
      outbox.end();
      call.abort();
    }
  }

  private welcome(workerId: string, outbox: Outbox<WorkRequest>): void {
    this.id = workerId;
    this.streams++;
    // Reports the previous stream did not acknowledge go first, in the order they were made;
    // the outbox becomes current only after them, so new reports cannot overtake them.
    for (const report of this.pending.inOrder()) {
      outbox.push(reportRequest(report));
    }
    if (this.draining) {
      outbox.push(ready(0));
    }
    this.outbox = outbox;
    this.welcomed.resolve();
    this.notify();
  }

  private assigned(assignment: AttemptAssignment): void {
    const rollout = assignment.rollout;
    if (rollout === undefined) {
      return;
    }
    this.held.set(rollout.attempt?.attemptId ?? "", rollout.rolloutId);
    this.queue.push({ rollout, resources: assignment.resources });
    this.notify();
  }

  private acknowledged(ack: AttemptReportAck): void {
    if (!this.pending.acknowledge(ack)) {
      return;
    }
    this.notify();
    // The store refused to start an attempt (it timed out, was cancelled): it is not the worker's
    // to run, yet the server counts it against the capacity until a final report frees it.
    if (ack.code !== 0 && ack.status === AttemptStatus.RUNNING && this.held.has(ack.attemptId)) {
      const error = `the store refused to start the attempt: ${ack.message}`;
      this.report(ack.rolloutId, ack.attemptId, AttemptStatus.FAILED, { error }).catch(() => undefined);
    }
  }

  private heartbeat(): void {
    this.outbox?.push(
      create(WorkRequestSchema, {
        kind: { case: "heartbeat", value: { stats: { running_attempts: this.held.size } } },
      }),
    );
  }

  private fail(error: Error): void {
    this.logger.error(`agl: the Work stream failed for good: ${error.message}`);
    this.failure = error;
    this.pending.rejectAll(error);
    this.welcomed.reject(error);
    this.notify();
  }

  private notify(): void {
    this.changed.resolve();
    this.changed = deferred<void>();
  }
}

function reportRequest(report: AttemptReport): WorkRequest {
  return create(WorkRequestSchema, { kind: { case: "report", value: report } });
}

function ready(capacity: number): WorkRequest {
  return create(WorkRequestSchema, { kind: { case: "ready", value: { capacity } } });
}
