import type { AglClient } from "./client.js";
import { AttemptStatus } from "./gen/agl/v1/types_pb.js";
import { exceptionSpan } from "./spans.js";
import { Task } from "./task.js";
import type { Assignment, WorkSource } from "./work.js";

/**
 * Runs one attempt. Resolving finishes the attempt SUCCEEDED; throwing finishes it FAILED (with
 * an "agl.exception" span). A handler may also call `task.finish` itself. `signal` aborts when
 * the runner's drain timeout passes after a stop request.
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
  private readonly counts = { succeeded: 0, failed: 0 };

  constructor(
    private readonly client: AglClient,
    private readonly source: WorkSource,
    options: RunnerOptions = {},
  ) {
    this.concurrency = Math.max(1, options.concurrency ?? 1);
    this.drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
    this.logger = options.logger ?? console;
  }

  /** How many attempts the runner finished so far. */
  stats(): { succeeded: number; failed: number } {
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

  private async run(handler: Handler, assignment: Assignment, signal: AbortSignal): Promise<void> {
    const task = new Task(this.client, this.source, assignment);
    const where = `rollout ${task.rolloutId} attempt ${task.attemptId}`;
    try {
      await this.source.report(task.rolloutId, task.attemptId, AttemptStatus.RUNNING);
    } catch (error) {
      // The attempt is not ours to run any more (timed out, cancelled) or the server is gone.
      this.logger.warn(`agl: cannot start ${where}; skipping it: ${error}`);
      return;
    }
    let failure: unknown;
    let failed = false;
    try {
      await handler(task, signal);
    } catch (error) {
      failure = error;
      failed = true;
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
