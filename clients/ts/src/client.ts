import { randomBytes } from "node:crypto";

import {
  create,
  fromJson,
  isMessage,
  type JsonObject,
  type JsonValue,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { durationFromMs, ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import { AglError, ItemErrors } from "./errors.js";
import type { ResourceSchema, ResourcesUpdate } from "./gen/agl/v1/resources_pb.js";
import { RunnerService } from "./gen/agl/v1/runner_pb.js";
import { LightningStoreService, RolloutSpecSchema } from "./gen/agl/v1/store_pb.js";
import type { Span } from "./gen/agl/v1/trace_pb.js";
import { AttemptStatus, RolloutStatus, type Attempt, type Rollout } from "./gen/agl/v1/types_pb.js";
import { SpanStream } from "./ingest.js";
import type { SpanStreamOptions } from "./span_stream_types.js";
import { bearer, retryUnavailable } from "./interceptors.js";
import { DEFAULT_RETRY_DEADLINE_MS } from "./retry.js";

/** Where agl-server listens unless told otherwise. */
export const DEFAULT_ADDRESS = "127.0.0.1:4747";
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** How to reach agl-server. */
export interface ClientOptions {
  /** `host:port`; default `$AGL_SERVER_ADDRESS` or 127.0.0.1:4747. */
  address?: string;
  /** Sent as `authorization: Bearer <token>`; default `$AGL_TOKEN`. */
  token?: string;
  /** Use TLS: `true` trusts the system roots, `{ ca }` a private CA (PEM). */
  tls?: boolean | { ca: string | Buffer };
  /** Deadline of a call that sets none, in ms (default 30,000). Long polls get theirs on top. */
  timeoutMs?: number;
  /**
   * How long, in ms, calls and streams (span stream, Work stream) keep retrying through an outage
   * before they fail (default 60,000; 0 never retries). What is retried: docs/retry.md.
   */
  retryDeadlineMs?: number;
  /** Further Connect interceptors (logging, metrics, ...). */
  interceptors?: Interceptor[];
  /** Tuning of the client's span stream. */
  spanStream?: SpanStreamOptions;
  /**
   * The namespace (experiment) the client works in: the rollouts it enqueues and dequeues, the
   * resources it adds and reads ("latest" is per namespace) and its Work streams belong to it,
   * and it sees nothing of other namespaces. Default `$AGL_NAMESPACE`, or the server's
   * "default". A name is 1 to 63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit; the
   * server answers INVALID_ARGUMENT to anything else.
   */
  namespace?: string;
}

/** Which work a dequeue may claim (see `AglClient.dequeueRollout`, `DequeueSource`). */
export interface WorkSelection {
  /** The queues to take work from (default `["default"]`); across them the highest priority goes first, then the oldest. */
  queues?: string[];
  /**
   * Only rollouts whose labels match: comma-separated requirements that must all hold, `k=v`,
   * `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k` (e.g. `"lang=ts"`). Default: any labels. A
   * malformed selector fails with INVALID_ARGUMENT naming the bad part.
   */
  labelSelector?: string;
}

/** Per-call options of the wrapped methods. */
export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/**
 * A rollout to enqueue: the generated RolloutSpec's init shape, with the input as plain JSON
 * (`{ input: { question: "2+2", answer: 4 } }`; a `Value` message works too). Without a
 * `rolloutId` the client picks one, so a retried call cannot enqueue the task twice. `queue`
 * (default "default"), `labels` (matched by workers' label selectors, e.g. `{ lang: "ts" }`) and
 * `priority` (0 to 1000, higher first) say who takes it and when; without `resourcesId` the
 * server records the namespace's latest resources on it, and its runner gets exactly that set.
 */
export type RolloutSpecInit = Omit<MessageInitShape<typeof RolloutSpecSchema>, "input" | "$typeName"> & {
  input?: JsonValue | Value;
};

/**
 * A client of one agl-server; make one per process and share it. Connects on first use; calls
 * made while the server is unreachable are retried (see `retryDeadlineMs`) before they fail with
 * UNAVAILABLE. `store` is the generated Connect client, for calls this class does not wrap;
 * `runner` the one of RunnerService (see `WorkStreamSource`).
 */
export class AglClient {
  readonly address: string;
  readonly store: Client<typeof LightningStoreService>;
  readonly runner: Client<typeof RunnerService>;
  private readonly options: ClientOptions;
  private readonly sessions: Http2SessionManager;
  private readonly timeoutMs: number;
  /** How long calls and streams keep retrying through an outage, in ms (docs/retry.md). */
  readonly retryDeadlineMs: number;
  /** The namespace the client works in ("" is the server's "default"); see {@link ClientOptions.namespace}. */
  readonly namespace: string;
  /** The span stream, opened on first use; shared with the namespace views (spans name their rollout). */
  private readonly shared: { spans?: SpanStream } = {};

  constructor(options: ClientOptions = {}) {
    this.options = options;
    this.address = options.address || process.env.AGL_SERVER_ADDRESS || DEFAULT_ADDRESS;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    const token = options.token ?? process.env.AGL_TOKEN ?? "";
    this.retryDeadlineMs = options.retryDeadlineMs ?? DEFAULT_RETRY_DEADLINE_MS;
    this.namespace = options.namespace ?? process.env.AGL_NAMESPACE ?? "";
    if (this.retryDeadlineMs < 0) {
      throw new RangeError(`agl: retryDeadlineMs=${this.retryDeadlineMs}: give 0 (no retries) or more`);
    }
    const baseUrl = `${options.tls ? "https" : "http"}://${this.address}`;
    const nodeOptions = typeof options.tls === "object" ? { ca: options.tls.ca } : {};
    // Pings notice a dead server on an idle stream (a long poll, the span stream).
    this.sessions = new Http2SessionManager(baseUrl, { pingIntervalMs: 30_000, pingTimeoutMs: 10_000 }, nodeOptions);
    const interceptors: Interceptor[] = [...(options.interceptors ?? []), retryUnavailable(this.retryDeadlineMs)];
    if (token) {
      interceptors.push(bearer(token));
    }
    const transport = createGrpcTransport({
      baseUrl,
      sessionManager: this.sessions,
      interceptors,
      defaultTimeoutMs: this.timeoutMs,
      readMaxBytes: MAX_MESSAGE_BYTES,
      writeMaxBytes: MAX_MESSAGE_BYTES,
    });
    this.store = createClient(LightningStoreService, transport);
    this.runner = createClient(RunnerService, transport);
  }

  /** The client's span stream, opened on first use and shared by all its users. */
  get spans(): SpanStream {
    this.shared.spans ??= new SpanStream(this, this.options.spanStream);
    return this.shared.spans;
  }

  /**
   * A view of the client scoped to another namespace ("" is the server's "default"), for one
   * process that works in several: it shares this client's connection and span stream, so it
   * costs nothing to make. Closing the client or any of its views closes them all.
   */
  withNamespace(namespace: string): AglClient {
    const view = Object.create(AglClient.prototype) as AglClient;
    return Object.assign(view, this, { namespace });
  }

  /**
   * Flushes the span stream (at most `timeoutMs`, default 10s) and closes the connection. Spans
   * still unacknowledged then fail for whoever waits on them.
   */
  async close(timeoutMs = 10_000): Promise<void> {
    try {
      await this.shared.spans?.close(timeoutMs);
    } finally {
      this.sessions.abort();
    }
  }

  /** Wraps a failed call's error with what was being done. */
  wrap(error: unknown, op: string): AglError {
    return error instanceof AglError ? error : new AglError(op, this.address, error);
  }

  private async call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw this.wrap(error, op);
    }
  }

  /**
   * Adds rollouts to their queues in the client's namespace:
   * `enqueueRollouts([{ input: task, queue: "tools", labels: { lang: "ts" }, priority: 10 }])`.
   * Items succeed or fail on their own: when some fail, an {@link ItemErrors} is thrown whose
   * `results` hold the rollouts that were created.
   */
  async enqueueRollouts(specs: RolloutSpecInit[], options?: CallOptions): Promise<Rollout[]> {
    const rollouts = specs.map(({ input, ...rest }) =>
      create(RolloutSpecSchema, {
        ...rest,
        rolloutId: rest.rolloutId || newRolloutId(),
        input: isMessage(input, ValueSchema) ? input : fromJson(ValueSchema, input ?? null),
      }),
    );
    const response = await this.call(`enqueue ${specs.length} rollouts`, () =>
      this.store.enqueueRollouts({ rollouts, namespace: this.namespace }, options),
    );
    if (response.errors.length > 0) {
      const results = response.rollouts.map((r) => (r.rolloutId ? r : undefined));
      throw new ItemErrors("enqueue rollouts", response.errors, results);
    }
    return response.rollouts;
  }

  /**
   * Claims the next queued rollout of the client's namespace for `workerId` (highest priority,
   * then oldest; from the "default" queue unless `options.queues` names others, matching
   * `options.labelSelector`), with a new attempt (`rollout.attempt`). When there is none it
   * waits up to `waitMs` for work (a long poll) and returns undefined if none came.
   */
  async dequeueRollout(
    workerId: string,
    waitMs = 0,
    options: CallOptions & WorkSelection = {},
  ): Promise<Rollout | undefined> {
    const response = await this.call(`dequeue a rollout for worker "${workerId}"`, () =>
      this.store.dequeueRollout(
        {
          workerId,
          limit: 1,
          wait: waitMs > 0 ? durationFromMs(waitMs) : undefined,
          namespace: this.namespace,
          queues: options.queues ?? [],
          labelSelector: options.labelSelector ?? "",
        },
        // The server answers just before the deadline, so the poll gets its wait on top.
        { signal: options.signal, timeoutMs: options.timeoutMs ?? waitMs + this.timeoutMs },
      ),
    );
    return response.rollouts[0];
  }

  /** The rollout with its latest attempt. */
  async getRollout(rolloutId: string, options?: CallOptions): Promise<Rollout> {
    const response = await this.call(`get rollout "${rolloutId}"`, () =>
      this.store.getRollout({ rolloutId }, options),
    );
    return required(response.rollout, "GetRollout");
  }

  /**
   * Sets an attempt's status ("latest" names the rollout's latest attempt). Send the attempt's
   * spans first (`Task.finish` does both).
   */
  async updateAttempt(
    rolloutId: string,
    attemptId: string,
    status: AttemptStatus,
    options: CallOptions & { metadata?: JsonObject } = {},
  ): Promise<Attempt> {
    const op = `set attempt "${attemptId}" of rollout "${rolloutId}" to ${statusName(status)}`;
    const response = await this.call(op, () =>
      this.store.updateAttempt(
        { rolloutId, attemptId, status, metadata: options.metadata },
        { signal: options.signal, timeoutMs: options.timeoutMs },
      ),
    );
    return required(response.attempt, "UpdateAttempt");
  }

  /**
   * Stores a new resources set in the client's namespace and makes it the namespace's latest; an
   * empty id lets the server pick one.
   */
  async addResources(
    resourcesId: string,
    resources: { [name: string]: MessageInitShape<typeof ResourceSchema> },
    options?: CallOptions,
  ): Promise<ResourcesUpdate> {
    const response = await this.call(`add resources "${resourcesId}"`, () =>
      this.store.addResources({ resourcesId, resources, namespace: this.namespace }, options),
    );
    return required(response.resources, "AddResources");
  }

  /**
   * A resources set of the client's namespace (or of `options.namespace`); an empty id returns
   * the namespace's latest one.
   */
  async getResources(resourcesId = "", options: CallOptions & { namespace?: string } = {}): Promise<ResourcesUpdate> {
    const { namespace = this.namespace, ...call } = options;
    const op = resourcesId
      ? `get resources "${resourcesId}"`
      : `get the latest resources of namespace "${namespace || "default"}"`;
    const response = await this.call(op, () => this.store.getResources({ resourcesId, namespace }, call));
    return required(response.resources, "GetResources");
  }

  /**
   * Waits until all the rollouts are terminal or `timeoutMs` passes; returns the terminal ones
   * (in request order) and the ids still pending.
   */
  async waitForRollouts(
    rolloutIds: string[],
    timeoutMs: number,
    options: CallOptions = {},
  ): Promise<{ rollouts: Rollout[]; pending: string[] }> {
    const response = await this.call(`wait for ${rolloutIds.length} rollouts`, () =>
      this.store.waitForRollouts(
        { rolloutIds, timeout: durationFromMs(timeoutMs) },
        { signal: options.signal, timeoutMs: options.timeoutMs ?? timeoutMs + this.timeoutMs },
      ),
    );
    return { rollouts: response.rollouts, pending: response.pendingRolloutIds };
  }

  /** The stored spans of a rollout in sequence order; `attemptId` an id, "latest", or "" for all. */
  async querySpans(rolloutId: string, attemptId = "", options?: CallOptions): Promise<Span[]> {
    return this.call(`query the spans of rollout "${rolloutId}"`, async () => {
      const spans: Span[] = [];
      for await (const chunk of this.store.querySpans({ rolloutId, attemptId }, options)) {
        spans.push(...chunk.spans);
      }
      return spans;
    });
  }

  /**
   * The stored spans of several rollouts from one QuerySpans call, by rollout id: every id given
   * is a key, in the order given (an empty list when it has no spans), each rollout's spans in
   * sequence order. `attemptId` applies to each rollout: an id, "latest", or "" for all. At most
   * 1,000 ids, none twice; an id that names no rollout fails the call (NotFound).
   */
  async querySpansOfRollouts(
    rolloutIds: readonly string[],
    attemptId = "",
    options?: CallOptions,
  ): Promise<Map<string, Span[]>> {
    const found = new Map<string, Span[]>(rolloutIds.map((id) => [id, []]));
    if (rolloutIds.length === 0) {
      return found;
    }
    return this.call(`query the spans of ${rolloutIds.length} rollouts`, async () => {
      for await (const chunk of this.store.querySpans({ rolloutIds: [...rolloutIds], attemptId }, options)) {
        for (const span of chunk.spans) {
          const list = found.get(span.rolloutId);
          if (list === undefined) {
            found.set(span.rolloutId, [span]);
          } else {
            list.push(span);
          }
        }
      }
      return found;
    });
  }
}

/** A client for the agl-server at `options.address` (see {@link ClientOptions}). */
export function connect(options: ClientOptions = {}): AglClient {
  return new AglClient(options);
}

function required<T>(value: T | undefined, method: string): T {
  if (value === undefined) {
    throw new ConnectError(`agl-server answered ${method} without a result`, Code.Internal);
  }
  return value;
}

/** "succeeded" for AttemptStatus.SUCCEEDED. */
export function statusName(status: AttemptStatus): string {
  return (AttemptStatus[status] ?? String(status)).toLowerCase();
}

/** "queuing" for RolloutStatus.QUEUING, "succeeded" for RolloutStatus.SUCCEEDED, ... */
export function rolloutStatusName(status: RolloutStatus): string {
  return (RolloutStatus[status] ?? String(status)).toLowerCase();
}

/** An id like the Python client's: "ro-" and 16 hex digits. */
function newRolloutId(): string {
  return `ro-${randomBytes(8).toString("hex")}`;
}
