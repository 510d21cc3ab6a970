import type { AglClient } from "./client.js";
import { AttemptStatus } from "./gen/agl/v1/types_pb.js";
import { NotStartedError } from "./errors.js";
import { exceptionSpan } from "./spans.js";
import { Task } from "./task.js";
import type { Assignment, WorkSource } from "./work.js";

/**
 * Runs one attempt. Resolving finishes the attempt SUCCEEDED; throwing finishes it FAILED (with
 * an "agl.exception" span). A handler may also call `task.finish` itself. `signal` aborts when
 * the runner's drain timeout passes after a stop request.
 *
 * The runner starts the handler as soon as it has sent the attempt's RUNNING report, before the
 * server acknowledged it, or at once when the attempt came RUNNING already (a Work stream's
 * default, `startOnAssignment`: no report is sent then). If the server refuses the report (the
 * attempt timed out or was cancelled meanwhile), `signal` aborts with a {@link NotStartedError}
 * as its reason and whatever the handler does is not reported.
 */
export type Handler = (task: Task, signal: AbortSignal) => Promise<void>;

/** Options of a {@link Runner}. */
export interface RunnerOptions {
  /** Attempts run at once (default 1). */
  concurrency?: number;
  /** How long running attempts may go on after a stop request before their signal aborts (default 30s). */
  drainTimeoutMs?: number;
  /** Where the runner reports problems (default console). */
  logger?: Pick<Console, "info" | "warn">;
}

/** Serves attempts from a {@link WorkSource} with a {@link Handler}. */
export class Runner {
  private readonly concurrency: number;
  private readonly drainTimeoutMs: number;
  private readonly logger: Pick<Console, "info" | "warn">;
  private readonly counts = { succeeded: 0, failed: 0, refused: 0 };

  constructor(
    private readonly client: AglClient,
    private readonly source: WorkSource,
    options: RunnerOptions = {},
  ) {
    this.concurrency = Math.max(1, options.concurrency ?? 1);
    this.drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
    this.logger = options.logger ?? console;
  }

  /**
   * How many attempts the runner finished so far; `refused` counts those whose RUNNING report the
   * server refused (their handlers were stopped and nothing final was reported).
   */
  stats(): { succeeded: number; failed: number; refused: number } {
    return { ...this.counts };
  }

  /**
   * Takes attempts and runs `handler` on each until `signal` aborts; then takes no more work (a
   * source with `drain` is drained and what it still holds is run), lets running attempts finish
   * (their signal aborts after the drain timeout) and resolves. Rejects only when the work source
   * fails for good (e.g. UNAUTHENTICATED).
   */
  async serve(handler: Handler, signal: AbortSignal): Promise<void> {
    const tasks = new AbortController();
    let drainTimer: NodeJS.Timeout | undefined;
    const onStop = () => {
      this.source.drain?.();
      drainTimer = setTimeout(() => tasks.abort(new Error("the runner's drain timeout passed")), this.drainTimeoutMs);
    };
    if (signal.aborted) {
      onStop();
    } else {
      signal.addEventListener("abort", onStop, { once: true });
    }
    // A source that drains hands over what it already holds after the stop (work pushed to this
    // worker just before it); the runner takes that until the source says it is drained.
    const take = this.source.drain ? tasks.signal : signal;
    const slot = async (): Promise<void> => {
      while (!take.aborted) {
        let assignment: Assignment | undefined;
        try {
          assignment = await this.source.next(take);
        } catch (error) {
          if (take.aborted) {
            return;
          }
          throw new Error(`agl: worker "${this.source.workerId}" cannot take work: ${error}`, { cause: error });
        }
        if (assignment === undefined) {
          return;
        }
        await this.run(handler, assignment, tasks.signal);
      }
    };
    try {
      await Promise.all(Array.from({ length: this.concurrency }, slot));
    } finally {
      signal.removeEventListener("abort", onStop);
      clearTimeout(drainTimer);
    }
  }

  private async run(handler: Handler, assignment: Assignment, tasks: AbortSignal): Promise<void> {
    const rolloutId = assignment.rollout.rolloutId;
    const attemptId = assignment.rollout.attempt?.attemptId ?? "";
    const where = `rollout ${rolloutId} attempt ${attemptId}`;
    // An attempt handed over RUNNING already (a Work stream with startOnAssignment: the server
    // claimed it RUNNING) needs no report: its start is a settled success, so what follows (the
    // final report waiting for it) is the same either way. Otherwise RUNNING goes out now and the
    // handler starts at once, without waiting a durable round trip for the ack. If the server
    // refuses it (the attempt timed out or was cancelled meanwhile, or the server is gone), the
    // handler's signal aborts with a NotStartedError.
    let started: Promise<void>;
    if (assignment.rollout.attempt?.status === AttemptStatus.RUNNING) {
      started = Promise.resolve();
    } else {
      try {
        started = this.source.report(rolloutId, attemptId, AttemptStatus.RUNNING);
      } catch (error) {
        started = Promise.reject(error);
      }
    }
    const task = new Task(this.client, this.source, assignment, started);
    const stop = new AbortController();
    const onStop = () => stop.abort(tasks.reason);
    if (tasks.aborted) {
      onStop();
    } else {
      tasks.addEventListener("abort", onStop, { once: true });
    }
    started.catch((error) => stop.abort(new NotStartedError(rolloutId, attemptId, error)));
    let failure: unknown;
    let failed = false;
    try {
      await handler(task, stop.signal);
    } catch (error) {
      failure = error;
      failed = true;
    } finally {
      tasks.removeEventListener("abort", onStop);
    }
    // The final report waits for RUNNING's outcome (task.finish does too), so the two reach the
    // store in order; an attempt whose start was refused gets no final report from the runner.
    try {
      await started;
    } catch (error) {
      // The attempt is not ours to run any more (timed out, cancelled) or the server is gone.
      this.logger.warn(`agl: cannot start ${where}; its handler was stopped: ${error}`);
      this.counts.refused++;
      return;
    }
    try {
      if (!task.isFinished) {
        if (failed) {
          await task.emit(exceptionSpan(failure));
          await task.finish(AttemptStatus.FAILED, failure);
          this.logger.info(`agl: ${where} failed: ${failure}`);
        } else {
          await task.finish(AttemptStatus.SUCCEEDED);
        }
      }
    } catch (error) {
      this.logger.warn(`agl: finishing ${where} failed: ${error}`);
    }
    if (task.outcome === AttemptStatus.SUCCEEDED) {
      this.counts.succeeded++;
    } else {
      this.counts.failed++;
    }
  }
}
