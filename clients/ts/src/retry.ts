/**
 * The retry policy of the agl clients, the same in Python, Go and TypeScript (docs/retry.md):
 *
 * - unary calls are retried on UNAVAILABLE only; any other status is the server's answer;
 * - streams (IngestSpans, Work, the DequeueSource's polls) are reopened on UNAVAILABLE, CANCELLED,
 *   UNKNOWN, INTERNAL and DEADLINE_EXCEEDED, never on ABORTED from the server (on the Work stream:
 *   another process took the worker id over), and never when this client aborted them;
 * - the n-th consecutive failure waits min(100ms * 2^(n-1), 2s) times a random 50-100%; a success
 *   resets the count; a status that is not retried fails at once, with no wait;
 * - one give-up rule: the retry deadline (default 60s, `retryDeadlineMs`) counted from the first
 *   failure since the last success.
 *
 * @module
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** How long calls and streams keep retrying through an outage, in ms. */
export const DEFAULT_RETRY_DEADLINE_MS = 60_000;

const INITIAL_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2_000;

/** Codes after which a unary call may be tried again. */
export const UNARY_RETRYABLE: ReadonlySet<Code> = new Set([Code.Unavailable]);

/** Codes after which a broken stream may be opened again. */
export const STREAM_RETRYABLE: ReadonlySet<Code> = new Set([
  Code.Unavailable,
  Code.Canceled,
  Code.Unknown,
  Code.Internal,
  Code.DeadlineExceeded,
]);

/**
 * The status a failure counts as. Connect for Node reports some transport failures (a connection
 * reset mid-stream) as ABORTED with the Node error as its cause; those are outages (UNAVAILABLE),
 * while an ABORTED the server sent has no cause.
 */
export function failureCode(error: unknown): Code {
  const connectError = ConnectError.from(error);
  if (connectError.code === Code.Aborted && connectError.cause !== undefined) {
    return Code.Unavailable;
  }
  return connectError.code;
}

/** The wait in ms after the `failures`-th consecutive failure (1 for the first). */
export function backoffMs(failures: number): number {
  const ceiling = Math.min(INITIAL_BACKOFF_MS * 2 ** Math.max(failures - 1, 0), MAX_BACKOFF_MS);
  return ceiling * (0.5 + Math.random() / 2);
}

/** The retry state of one call or stream: failures since the last success, against the deadline. */
export class Outage {
  failures = 0;
  since = 0;

  constructor(readonly deadlineMs: number = DEFAULT_RETRY_DEADLINE_MS) {
    if (deadlineMs < 0) {
      throw new RangeError(`agl: retryDeadlineMs=${deadlineMs}: give 0 (no retries) or more`);
    }
  }

  succeeded(): void {
    this.failures = 0;
    this.since = 0;
  }

  /** Counts a retryable failure: the ms to wait before the next try, or undefined to give up. */
  failed(): number | undefined {
    const now = Date.now();
    this.since ||= now;
    this.failures++;
    const remaining = this.since + this.deadlineMs - now;
    if (remaining <= 0) {
      return undefined;
    }
    return Math.min(backoffMs(this.failures), remaining);
  }
}
