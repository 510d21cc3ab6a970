import type { JsonObject } from "@bufbuild/protobuf";

/** Options of a {@link WorkStreamSource}. */
export interface WorkStreamOptions {
  /** The worker's id; empty lets the server pick one (then read `workerId` once started). */
  workerId?: string;
  /**
   * Attempts the worker runs at once (default 1). Give a `Runner` the same concurrency: attempts
   * beyond it wait in the source while the server counts them as running.
   */
  capacity?: number;
  /**
   * How often the worker says it is alive, in ms (default 10,000). The server ends a stream that
   * is silent for three intervals and gives up the attempts it held. The first heartbeat comes at a
   * random point of the first interval, so that workers started together do not all beat at once.
   */
  heartbeatIntervalMs?: number;
  /**
   * How long to keep reconnecting after the stream broke, in ms (default: the client's
   * `retryDeadlineMs`); after it, `next` and `report` fail for good.
   */
  retryDeadlineMs?: number;
  /** The namespace (experiment) the worker serves; default: the client's (`ClientOptions.namespace`). */
  namespace?: string;
  /** The queues the worker takes work from; default `["default"]`. */
  queues?: string[];
  /**
   * Only rollouts whose labels match are pushed: comma-separated requirements that must all
   * hold, `k=v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k` (e.g. `"lang=ts"`). Default:
   * any labels. The server refuses a malformed one (INVALID_ARGUMENT, naming the bad part) and
   * the source fails for good. Among the matching rollouts of its queues the worker gets the
   * highest priority first, then the oldest.
   */
  labelSelector?: string;
  /**
   * The worker starts every attempt the moment it gets it (default true, as a `Runner` does):
   * hello says so and the server claims the attempts RUNNING (attempt and rollout) rather than
   * PREPARING, so no RUNNING report is needed (one message, its ack and a store write fewer per
   * attempt). A `Runner` reports RUNNING only for an attempt that arrives PREPARING anyway (a
   * server or store that predates this). Set false for a source driven by hand (`next`, then
   * `report` RUNNING when the work really begins): attempts then arrive PREPARING.
   */
  startOnAssignment?: boolean;
  /** What the worker wants to be known by (agent name, version, ...), on top of host, pid and language. */
  info?: JsonObject;
  /** Where reconnects are logged (default console). */
  logger?: Pick<Console, "warn" | "error">;
}

/** Counters of a WorkStreamSource, for monitoring and tests. */
export interface WorkStreamStats {
  /** Streams the server welcomed: 1, plus one per reconnect. */
  streams: number;
  /** Attempts the worker holds: assigned and not finally reported. */
  held: number;
  /** How many of those `next` has not handed out yet. */
  queued: number;
}
