import { create, type JsonObject } from "@bufbuild/protobuf";

import { AttemptReportSchema, type AttemptReport, type AttemptReportAck } from "./gen/agl/v1/runner_pb.js";
import type { AttemptStatus } from "./gen/agl/v1/types_pb.js";
import { type Deferred, deferred } from "./util.js";

interface PendingReport {
  seq: number;
  report: AttemptReport;
  ack: Deferred<AttemptReportAck>;
}

/**
 * The reports a Work stream sent (or is to send) that the server has not acknowledged yet, one per
 * attempt and status (reports are idempotent: asking again waits for the same ack), kept in the
 * order they were made so a new stream resends them in that order.
 */
export class PendingReports {
  private readonly byKey = new Map<string, PendingReport>();
  private seq = 0;

  get size(): number {
    return this.byKey.size;
  }

  /**
   * The report of `attemptId` with `status` and its ack to come; `added` is true when it is new
   * (to be sent now), false when the same report is already waiting for its ack.
   */
  add(
    rolloutId: string,
    attemptId: string,
    status: AttemptStatus,
    metadata?: JsonObject,
  ): { report: AttemptReport; ack: Promise<AttemptReportAck>; added: boolean } {
    const key = reportKey(attemptId, status);
    let pending = this.byKey.get(key);
    const added = pending === undefined;
    if (pending === undefined) {
      const report = create(AttemptReportSchema, { rolloutId, attemptId, status, metadata });
      pending = { seq: ++this.seq, report, ack: deferred() };
      pending.ack.promise.catch(() => undefined);
      this.byKey.set(key, pending);
    }
    return { report: pending.report, ack: pending.ack.promise, added };
  }

  /** Settles the report `ack` answers; false when no such report is waiting. */
  acknowledge(ack: AttemptReportAck): boolean {
    const key = reportKey(ack.attemptId, ack.status);
    const pending = this.byKey.get(key);
    if (pending === undefined) {
      return false;
    }
    this.byKey.delete(key);
    pending.ack.resolve(ack);
    return true;
  }

  /** The waiting reports in the order they were made. */
  inOrder(): AttemptReport[] {
    return [...this.byKey.values()].sort((a, b) => a.seq - b.seq).map((pending) => pending.report);
  }

  /** Fails every waiting report with `error` and forgets them. */
  rejectAll(error: Error): void {
    for (const pending of this.byKey.values()) {
      pending.ack.reject(error);
    }
    this.byKey.clear();
  }
}

function reportKey(attemptId: string, status: AttemptStatus): string {
  return `${attemptId}\u0000${status}`;
}
