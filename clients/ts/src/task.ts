import { create, type JsonObject, type JsonValue } from "@bufbuild/protobuf";

import type { AglClient } from "./client.js";
import { NotStartedError } from "./errors.js";
import type { PromptTemplate, ResourcesUpdate } from "./gen/agl/v1/resources_pb.js";
import { type KeyValue, type Span, SpanStatusCode, SpanStatusSchema } from "./gen/agl/v1/trace_pb.js";
import { AttemptStatus, type Rollout } from "./gen/agl/v1/types_pb.js";
import { ackError } from "./ingest.js";
import type { PendingAck } from "./span_stream_types.js";
import * as semconv from "./semconv.js";
import { namedRewardSpan, newSpan, newTraceId, nowNanos, rewardSpan } from "./spans.js";
import { valueJson } from "./values.js";
import type { Assignment, WorkSource } from "./work.js";

/**
 * One attempt at a rollout, as a worker runs it: its input and resources, the spans it emits
 * (all in one trace, under an "agl.rollout" root span) and its final status.
 */
export class Task {
  /** The task with its attempt (`rollout.attempt`). */
  readonly rollout: Rollout;
  private resources: ResourcesUpdate | undefined;
  private readonly root: Span;
  private pending: PendingAck[] = [];
  private finishing = false;
  private finished = false;
  private result: AttemptStatus = AttemptStatus.UNSPECIFIED;

  /**
   * @param started the outcome of the attempt's RUNNING report when it was sent without waiting
   *   (a `Runner` does this); `finish` waits for it before the final report.
   */
  constructor(
    private readonly client: AglClient,
    private readonly source: WorkSource,
    assignment: Assignment,
    private readonly started?: Promise<void>,
  ) {
    this.rollout = assignment.rollout;
    this.resources = assignment.resources;
    this.root = newSpan(semconv.SPAN_ROLLOUT);
    this.root.traceId = newTraceId();
    this.root.endTimeUnixNano = 0n;
  }

  get rolloutId(): string {
    return this.rollout.rolloutId;
  }

  get attemptId(): string {
    return this.rollout.attempt?.attemptId ?? "";
  }

  /** The trace all the task's spans belong to. */
  get traceId(): Uint8Array {
    return this.root.traceId;
  }

  /** The id of the task's "agl.rollout" span, the default parent of its spans. */
  get rootSpanId(): Uint8Array {
    return this.root.spanId;
  }

  /** The namespace (experiment) the rollout belongs to. */
  get namespace(): string {
    return this.rollout.namespace;
  }

  /** The queue the rollout came from. */
  get queue(): string {
    return this.rollout.queue;
  }

  /** The rollout's labels. */
  get labels(): { [key: string]: string } {
    return this.rollout.labels;
  }

  /**
   * The resources set the rollout runs with: the one it was enqueued with, or the namespace's
   * latest at enqueue, which the server records on the rollout. Empty when the namespace had none.
   */
  get resourcesId(): string {
    return this.rollout.resourcesId;
  }

  /** The task input as JSON. */
  get input(): JsonValue {
    return valueJson(this.rollout.input);
  }

  /** The final status `finish` reported (UNSPECIFIED until it reported one). */
  get outcome(): AttemptStatus {
    return this.result;
  }

  /** Whether `finish` was called. */
  get isFinished(): boolean {
    return this.finishing;
  }

  /**
   * The resources set the rollout runs with: the one it records ({@link Task.resourcesId}, pinned
   * at enqueue, so resources published later do not change what a queued task runs with), or the
   * namespace's latest when it records none. A Work stream hands it over with the attempt;
   * otherwise it is fetched once.
   */
  async getResources(): Promise<ResourcesUpdate> {
    this.resources ??= await this.client.getResources(this.rollout.resourcesId, { namespace: this.rollout.namespace });
    return this.resources;
  }

  /**
   * The prompt template resource called `name`; an empty name picks the only prompt template of
   * the set (an error if there are several).
   */
  async promptTemplate(name = ""): Promise<PromptTemplate> {
    const resources = await this.getResources();
    const names = Object.keys(resources.resources)
      .filter((key) => resources.resources[key]?.kind.case === "promptTemplate")
      .sort();
    if (!name) {
      if (names.length !== 1) {
        throw new Error(
          `agl: resources "${resources.resourcesId}" have ${names.length} prompt templates [${names}]; name the one to use`,
        );
      }
      name = names[0]!;
    }
    const kind = resources.resources[name]?.kind;
    if (kind?.case !== "promptTemplate") {
      throw new Error(
        `agl: resources "${resources.resourcesId}" (version ${resources.version}) have no prompt template "${name}"; ` +
          `they have [${names}]`,
      );
    }
    return kind.value;
  }

  /**
   * Begins a span of the task (a child of its root span unless `parentSpanId` is set); pass it
   * to {@link Task.end} when the work it covers is done.
   */
  startSpan(name: string, attributes: KeyValue[] = []): Span {
    const span = newSpan(name, attributes);
    span.endTimeUnixNano = 0n;
    return span;
  }

  /** Ends `span` now, adds `attributes` to it and emits it. */
  async end(span: Span, attributes: KeyValue[] = []): Promise<void> {
    span.endTimeUnixNano = nowNanos();
    span.attributes.push(...attributes);
    await this.emit(span);
  }

  /**
   * Sends spans of this task: rollout, attempt and trace ids are filled in, a span without a
   * parent becomes a child of the root span. Resolves once they are queued (the queue is bounded,
   * so it may wait for room); `finish` waits for their acknowledgements.
   */
  async emit(...spans: Span[]): Promise<void> {
    if (this.finished) {
      throw new Error(`agl: attempt "${this.attemptId}" of rollout "${this.rolloutId}" is finished; it takes no more spans`);
    }
    for (const span of spans) {
      span.rolloutId = this.rolloutId;
      span.attemptId = this.attemptId;
      if (span.traceId.length === 0) {
        span.traceId = this.root.traceId;
      }
      if (span.parentSpanId.length === 0 && span !== this.root) {
        span.parentSpanId = this.root.spanId;
      }
      if (span.endTimeUnixNano === 0n) {
        span.endTimeUnixNano = nowNanos();
      }
    }
    this.pending.push(await this.client.spans.enqueue(spans));
  }

  /** Records the task's reward (an "agl.reward" span). */
  async emitReward(value: number): Promise<void> {
    await this.emit(rewardSpan(value));
  }

  /** Records several named rewards; `primary` names the one training optimises. */
  async emitRewards(primary: string, rewards: Readonly<Record<string, number>>): Promise<void> {
    await this.emit(namedRewardSpan(primary, rewards));
  }

  /**
   * Ends the attempt: emits the root span, waits until every span of the task is acknowledged
   * (so whoever sees the final status also sees the spans) and reports `status` (SUCCEEDED or
   * FAILED). If spans were rejected or could not be delivered, the attempt is reported FAILED
   * instead and the returned promise rejects with why. `cause` is recorded as the failure's
   * reason in the attempt's metadata. Under a `Runner`, `finish` first waits for the outcome of
   * the attempt's RUNNING report; if the server refused it (the attempt timed out or was
   * cancelled meanwhile), it reports nothing and rejects with a {@link NotStartedError}.
   */
  async finish(status: AttemptStatus, cause?: unknown): Promise<void> {
    if (this.finishing) {
      throw new Error(`agl: attempt "${this.attemptId}" of rollout "${this.rolloutId}" is already finished`);
    }
    this.finishing = true;
    if (status === AttemptStatus.FAILED && cause !== undefined) {
      this.root.status = create(SpanStatusSchema, { code: SpanStatusCode.ERROR, message: errorMessage(cause) });
    }
    const problems: string[] = [];
    try {
      await this.emit(this.root);
    } catch (error) {
      problems.push(errorMessage(error));
    }
    this.finished = true;
    for (const result of await Promise.allSettled(this.pending.map((p) => p.acked))) {
      if (result.status === "rejected") {
        problems.push(errorMessage(result.reason));
      } else {
        const rejected = ackError(result.value);
        if (rejected) {
          problems.push(rejected.message);
        }
      }
    }
    this.pending = [];
    let metadata: JsonObject | undefined;
    if (problems.length > 0) {
      status = AttemptStatus.FAILED;
      metadata = { error: [...(cause === undefined ? [] : [errorMessage(cause)]), ...problems].join("; ") };
    } else if (cause !== undefined) {
      metadata = { error: errorMessage(cause) };
    }
    if (this.started !== undefined) {
      // RUNNING first, so the store records the two in order; a refused start gets no final report.
      try {
        await this.started;
      } catch (error) {
        throw new NotStartedError(this.rolloutId, this.attemptId, error);
      }
    }
    await this.source.report(this.rolloutId, this.attemptId, status, metadata);
    this.result = status;
    if (problems.length > 0) {
      throw new Error(`agl: attempt "${this.attemptId}" of rollout "${this.rolloutId}": ${problems.join("; ")}`);
    }
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
