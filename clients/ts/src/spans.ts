import { create } from "@bufbuild/protobuf";
import { randomBytes } from "node:crypto";

import { type KeyValue, type Span, SpanKind, SpanSchema, SpanStatusCode, SpanStatusSchema } from "./gen/agl/v1/trace_pb.js";
import * as semconv from "./semconv.js";
import { attr, double } from "./values.js";

function randomId(length: number): Uint8Array {
  for (;;) {
    const id = new Uint8Array(randomBytes(length));
    if (id.some((b) => b !== 0)) {
      return id;
    }
  }
}

/** 16 random bytes, never all zero (OpenTelemetry's rule for a valid trace id). */
export function newTraceId(): Uint8Array {
  return randomId(16);
}

/** 8 random bytes, never all zero. */
export function newSpanId(): Uint8Array {
  return randomId(8);
}

/** The current time in nanoseconds since the Unix epoch. */
export function nowNanos(): bigint {
  // performance.timeOrigin + now() has sub-millisecond resolution; Date.now() does not.
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
}

/**
 * An INTERNAL span named `name` with a fresh span id that starts and ends now. The rollout,
 * attempt and trace ids are left for the caller or `Task.emit` to fill in.
 */
export function newSpan(name: string, attributes: KeyValue[] = []): Span {
  const now = nowNanos();
  return create(SpanSchema, {
    name,
    spanId: newSpanId(),
    kind: SpanKind.INTERNAL,
    startTimeUnixNano: now,
    endTimeUnixNano: now,
    attributes,
  });
}

/**
 * The span that records a reward, as agl_core's emit_reward does: "agl.reward" with the double
 * "agl.reward.value", named "reward".
 */
export function rewardSpan(value: number): Span {
  return namedRewardSpan("reward", { reward: value });
}

/**
 * Several named rewards; `primary` (one of the names) is the one training optimises: its value
 * goes to "agl.reward.value", its name to "agl.reward.name", and every reward to a double
 * attribute "agl.reward.values.<name>".
 */
export function namedRewardSpan(primary: string, rewards: Readonly<Record<string, number>>): Span {
  const value = rewards[primary];
  if (value === undefined) {
    throw new Error(`agl: the primary reward "${primary}" is not among the rewards given`);
  }
  return newSpan(semconv.SPAN_REWARD, [
    attr(semconv.REWARD_VALUE, double(value)),
    attr(semconv.REWARD_NAME, primary),
    ...Object.entries(rewards).map(([name, v]) => attr(semconv.REWARD_VALUES_PREFIX + name, double(v))),
  ]);
}

/** An error as an "agl.exception" span with OpenTelemetry's exception attributes. */
export function exceptionSpan(error: unknown): Span {
  const err = error instanceof Error ? error : new Error(String(error));
  const attributes = [attr(semconv.EXCEPTION_TYPE, err.name), attr(semconv.EXCEPTION_MESSAGE, err.message)];
  if (err.stack) {
    attributes.push(attr(semconv.EXCEPTION_STACKTRACE, err.stack));
  }
  const span = newSpan(semconv.SPAN_EXCEPTION, attributes);
  span.status = create(SpanStatusSchema, { code: SpanStatusCode.ERROR, message: err.message });
  return span;
}
