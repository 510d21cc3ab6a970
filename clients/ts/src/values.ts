import { create, fromJson, isMessage, toJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";

import { AnyValueSchema, type AnyValue, type KeyValue, KeyValueSchema } from "./gen/agl/v1/trace_pb.js";

/** What {@link anyValue} converts to an attribute value. */
export type AttributeValue =
  | string
  | boolean
  | number
  | bigint
  | Uint8Array
  | null
  | undefined
  | AnyValue
  | readonly AttributeValue[]
  | { readonly [key: string]: AttributeValue };

/** An attribute value that is a double even when it is integral (`double(1)` for a reward of 1). */
export function double(value: number): AnyValue {
  return create(AnyValueSchema, { value: { case: "doubleValue", value } });
}

/** An attribute value that is an int64. */
export function int(value: number | bigint): AnyValue {
  return create(AnyValueSchema, { value: { case: "intValue", value: BigInt(value) } });
}

/**
 * Converts a JavaScript value to an attribute value (OTLP AnyValue), as the OpenTelemetry JS SDK
 * does: integral numbers become int64, other numbers doubles (wrap with {@link double} or
 * {@link int} to choose), bigints int64, Uint8Array bytes, arrays arrays, plain objects and Maps
 * kvlists (in their own key order), null and undefined the empty value, AnyValue messages stay
 * as they are; anything else becomes its string.
 */
export function anyValue(value: AttributeValue | unknown): AnyValue {
  if (value === null || value === undefined) {
    return create(AnyValueSchema);
  }
  if (isMessage(value, AnyValueSchema)) {
    return value;
  }
  switch (typeof value) {
    case "string":
      return create(AnyValueSchema, { value: { case: "stringValue", value } });
    case "boolean":
      return create(AnyValueSchema, { value: { case: "boolValue", value } });
    case "bigint":
      return create(AnyValueSchema, { value: { case: "intValue", value } });
    case "number":
      return Number.isSafeInteger(value) ? int(value) : double(value);
  }
  if (value instanceof Uint8Array) {
    return create(AnyValueSchema, { value: { case: "bytesValue", value } });
  }
  if (Array.isArray(value)) {
    return create(AnyValueSchema, {
      value: { case: "arrayValue", value: { values: value.map((item) => anyValue(item)) } },
    });
  }
  if (value instanceof Map) {
    return kvlist([...value.entries()].map(([k, v]) => attr(String(k), v)));
  }
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    return kvlist(Object.entries(value).map(([k, v]) => attr(k, v)));
  }
  return create(AnyValueSchema, { value: { case: "stringValue", value: String(value) } });
}

function kvlist(values: KeyValue[]): AnyValue {
  return create(AnyValueSchema, { value: { case: "kvlistValue", value: { values } } });
}

/** One span attribute; see {@link anyValue} for the values it takes. */
export function attr(key: string, value: AttributeValue | unknown): KeyValue {
  return create(KeyValueSchema, { key, value: anyValue(value) });
}

/** Attributes from an object, in its key order. */
export function attrs(attributes: { readonly [key: string]: AttributeValue | unknown }): KeyValue[] {
  return Object.entries(attributes).map(([k, v]) => attr(k, v));
}

/** What {@link fromAnyValue} returns. */
export type PlainValue =
  | string
  | boolean
  | number
  | bigint
  | Uint8Array
  | null
  | PlainValue[]
  | { [key: string]: PlainValue };

/**
 * Converts an attribute value back: int64 becomes a number when it is a safe integer and a bigint
 * otherwise; kvlists become objects (a later key wins); the empty value becomes null.
 */
export function fromAnyValue(value: AnyValue | undefined): PlainValue {
  const v = value?.value;
  switch (v?.case) {
    case "stringValue":
    case "boolValue":
    case "doubleValue":
    case "bytesValue":
      return v.value;
    case "intValue":
      return v.value >= BigInt(Number.MIN_SAFE_INTEGER) && v.value <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(v.value)
        : v.value;
    case "arrayValue":
      return v.value.values.map((item) => fromAnyValue(item));
    case "kvlistValue":
      return attributeMap(v.value.values);
  }
  return null;
}

/** Attributes as an object (a later key wins over an earlier one). */
export function attributeMap(kvs: readonly KeyValue[]): { [key: string]: PlainValue } {
  const out: { [key: string]: PlainValue } = {};
  for (const kv of kvs) {
    out[kv.key] = fromAnyValue(kv.value);
  }
  return out;
}

/** A task input (google.protobuf.Value) from JSON. Numbers MUST be finite. */
export function jsonValue(json: JsonValue): Value {
  return fromJson(ValueSchema, json);
}

/** A task input (google.protobuf.Value) as JSON; an unset input is null. */
export function valueJson(value: Value | undefined): JsonValue {
  return value === undefined ? null : toJson(ValueSchema, value);
}
