import type { JsonObject } from "@bufbuild/protobuf";

import type { AglClient, WorkSelection } from "./client.js";
import type { ResourcesUpdate } from "./gen/agl/v1/resources_pb.js";
import type { AttemptStatus, Rollout } from "./gen/agl/v1/types_pb.js";
import { failureCode, Outage, STREAM_RETRYABLE } from "./retry.js";
import { sleep } from "./util.js";

/** An attempt handed to this worker. */
export interface Assignment {
  /** The task, with the new attempt in `rollout.attempt`. */
  rollout: Rollout;
  /** The resources to run with when the source resolved them; else the task fetches them. */
  resources?: ResourcesUpdate;
}

/**
 * Hands attempts to a worker and takes their status reports. {@link DequeueSource} long-polls
 * DequeueRollout; `WorkStreamSource` takes the work agl-server pushes on its runner Work stream.
 * A `Runner` works with either.
 */
export interface WorkSource {
  /** The worker's id as the server knows it. */
  readonly workerId: string;
  /**
   * Resolves with the next attempt, or undefined once a drained source has nothing more to hand
   * out; rejects with the signal's reason once `signal` aborts.
   */
  next(signal: AbortSignal): Promise<Assignment | undefined>;
  /**
   * Records the status of an attempt this source assigned: RUNNING when it starts, SUCCEEDED or
   * FAILED when it ends. `metadata`, when given, replaces the attempt's metadata. `report` sends
   * at once; the promise settles with the server's answer. A `Runner`
   * sends RUNNING this way and starts the handler without awaiting it (no durable round trip
   * before an attempt starts), then awaits it before the final report, so the store records the
   * two in order. It sends none for an attempt that was handed over RUNNING already.
   */
  report(rolloutId: string, attemptId: string, status: AttemptStatus, metadata?: JsonObject): Promise<void>;
  /**
   * Optional: take no new work while the attempts already handed over run on; `next` then
   * resolves with what the source still holds, then undefined. When its signal aborts, a
   * `Runner` drains a source that has this and keeps taking from it, so attempts pushed to the
   * worker just before the stop are run, not dropped.
   */
  drain?(): void;
}


/** Options of a {@link DequeueSource}, for the form that takes one object. */
export interface DequeueSourceOptions extends WorkSelection {
  /** The worker's id. */
  workerId: string;
  /** The long-poll wait of one poll, in ms (default 10,000). */
  waitMs?: number;
  /** Called with each failed poll that is retried (default: a console warning). */
  onRetry?: (error: unknown) => void;
}

/**
 * Takes work of the client's namespace with DequeueRollout long polls, riding out a server that
 * goes away (restarts, upgrades) as a stream does (docs/retry.md): failed polls are retried with
 * back-off until the client's retry deadline or the signal aborts. Which work it takes:
 * `new DequeueSource(client, { workerId, queues: ["tools"], labelSelector: "lang=ts" })`.
 */
export class DequeueSource implements WorkSource {
  readonly workerId: string;
  private readonly waitMs: number;
  private readonly onRetry: (error: unknown) => void;
  private readonly selection: WorkSelection;

  /**
   * @param client the client to poll with.
   * @param worker the worker's id, or all the options ({@link DequeueSourceOptions}).
   * @param waitMs the long-poll wait of one poll (10s is a good value: the poll returns the
   *   moment work arrives, so the wait only bounds how long a dead connection goes unnoticed).
   * @param onRetry called with each failed poll that is retried.
   */
  constructor(
    private readonly client: AglClient,
    worker: string | DequeueSourceOptions,
    waitMs?: number,
    onRetry?: (error: unknown) => void,
  ) {
    const options = typeof worker === "string" ? { workerId: worker, waitMs, onRetry } : worker;
    this.workerId = options.workerId;
    this.waitMs = options.waitMs ?? 10_000;
    this.onRetry = options.onRetry ?? ((error) => console.warn(`${error}; retrying`));
    this.selection = { queues: options.queues, labelSelector: options.labelSelector };
  }

  async next(signal: AbortSignal): Promise<Assignment> {
    const outage = new Outage(this.client.retryDeadlineMs);
    for (;;) {
      signal.throwIfAborted();
      let rollout: Rollout | undefined;
      try {
        rollout = await this.client.dequeueRollout(this.workerId, this.waitMs, { signal, ...this.selection });
      } catch (error) {
        signal.throwIfAborted();
        const wait = STREAM_RETRYABLE.has(failureCode(error)) ? outage.failed() : undefined;
        if (wait === undefined) {
          throw error;
        }
        this.onRetry(error);
        await sleep(wait, signal);
        continue;
      }
      outage.succeeded();
      if (rollout !== undefined) {
        return { rollout };
      }
    }
  }

  async report(rolloutId: string, attemptId: string, status: AttemptStatus, metadata?: JsonObject): Promise<void> {
    await this.client.updateAttempt(rolloutId, attemptId, status, { metadata });
  }
}
