/**
 * The TypeScript client of agl-server: a thin layer over the generated code (protobuf-es and
 * Connect, under `./gen/agl/v1/*`).
 *
 * ```ts
 * const client = connect({ address: "127.0.0.1:4747" });
 * const source = new WorkStreamSource(client, { workerId: "worker-1" });
 * const runner = new Runner(client, source);
 * await runner.serve(async (task) => {
 *   await task.emit(newSpan("think", [attr("question", task.input)]));
 *   await task.emitReward(1);
 * }, AbortSignal.timeout(60_000));
 * await source.close();
 * ```
 *
 * @module
 */
export { AglClient, connect, DEFAULT_ADDRESS, rolloutStatusName, statusName } from "./client.js";
export type { CallOptions, ClientOptions, RolloutSpecInit, WorkSelection } from "./client.js";
export { AglError, ItemErrors, NotStartedError } from "./errors.js";
export { ackError, SpanStream } from "./ingest.js";
export type { Ack, PendingAck, SpanStreamOptions, SpanStreamStats } from "./span_stream_types.js";
export { formatPrompt } from "./prompt.js";
export { backoffMs, DEFAULT_RETRY_DEADLINE_MS, failureCode, Outage, STREAM_RETRYABLE, UNARY_RETRYABLE } from "./retry.js";
export { Runner } from "./runner.js";
export type { Handler, RunnerOptions } from "./runner.js";
export * as semconv from "./semconv.js";
export { exceptionSpan, namedRewardSpan, newSpan, newSpanId, newTraceId, nowNanos, rewardSpan } from "./spans.js";
export { Task } from "./task.js";
export { anyValue, attr, attributeMap, attrs, double, fromAnyValue, int, jsonValue, valueJson } from "./values.js";
export type { AttributeValue, PlainValue } from "./values.js";
export { DequeueSource } from "./work.js";
export type { Assignment, DequeueSourceOptions, WorkSource } from "./work.js";
export { WorkStreamSource } from "./workstream.js";
export type { WorkStreamOptions, WorkStreamStats } from "./workstream_options.js";

export * from "./gen/agl/v1/resources_pb.js";
export * from "./gen/agl/v1/runner_pb.js";
export * from "./gen/agl/v1/store_pb.js";
export * from "./gen/agl/v1/trace_pb.js";
export * from "./gen/agl/v1/types_pb.js";
