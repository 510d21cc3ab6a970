import type { Client } from "@connectrpc/connect";

import type { LightningStoreService } from "./gen/agl/v1/store_pb.js";
import type { ItemError } from "./gen/agl/v1/types_pb.js";

/** Tuning of a {@link SpanStream}. */
export interface SpanStreamOptions {
  /** Spans per batch (one IngestSpans message) at most; default 1024. */
  batchSpans?: number;
  /** Bytes per batch at most (one larger span still goes alone); default 1 MiB. */
  batchBytes?: number;
  /** Batches awaiting their ack at once; default 16. */
  inflightBatches?: number;
  /** Spans queued or unacknowledged at most; past it `enqueue` waits for acks. Default 100,000. */
  queueLimit?: number;
  /** A single span larger than this is rejected at once with RESOURCE_EXHAUSTED; default 16 MiB. */
  maxSpanBytes?: number;
}

/** The outcome of one `enqueue`/`send`; indices refer to the spans of that call. */
export interface Ack {
  /** Spans stored by this call. */
  accepted: number;
  /** Spans already stored (a resend after a reconnect, or an id sent twice): the first copy stays. */
  duplicates: number[];
  /** Spans that could not be stored (unknown rollout or attempt, missing ids, too large). */
  rejected: ItemError[];
}

/** Spans handed to the stream; `acked` settles once all of them are acknowledged or failed. */
export interface PendingAck {
  readonly acked: Promise<Ack>;
}

/** Counters of a SpanStream, for monitoring and tests. */
export interface SpanStreamStats {
  batchesAcked: number;
  reconnects: number;
  /** Spans queued or awaiting their ack. */
  queued: number;
  /** Batches sent and awaiting their ack. */
  inflight: number;
}

/** The parts of a client a SpanStream uses. */
export interface SpanStreamClient {
  readonly address: string;
  readonly store: Client<typeof LightningStoreService>;
  /** How long the stream keeps reconnecting without an ack before the spans it holds fail. */
  readonly retryDeadlineMs: number;
}
