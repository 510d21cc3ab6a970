import type { AnyValue, KeyValue, Span } from "./gen/agl/v1/trace_pb.js";

/** Roughly the encoded size of a span (within a few bytes per field), without encoding it. */
export function estimateSize(span: Span): number {
  let size = 64 + utf8(span.name) + span.traceId.length + span.spanId.length + span.parentSpanId.length;
  size += utf8(span.rolloutId) + utf8(span.attemptId) + utf8(span.traceState);
  size += attributesSize(span.attributes);
  for (const event of span.events) {
    size += 16 + utf8(event.name) + attributesSize(event.attributes);
  }
  for (const link of span.links) {
    size += 16 + link.traceId.length + link.spanId.length + utf8(link.traceState) + attributesSize(link.attributes);
  }
  size += attributesSize(span.resource?.attributes ?? []) + attributesSize(span.scope?.attributes ?? []);
  return size + utf8(span.status?.message ?? "") + utf8(span.scope?.name ?? "") + utf8(span.scope?.version ?? "");
}

function attributesSize(kvs: readonly KeyValue[]): number {
  let size = 0;
  for (const kv of kvs) {
    size += 6 + utf8(kv.key) + anyValueSize(kv.value);
  }
  return size;
}

function anyValueSize(value: AnyValue | undefined): number {
  const v = value?.value;
  switch (v?.case) {
    case "stringValue":
      return 4 + utf8(v.value);
    case "bytesValue":
      return 4 + v.value.length;
    case "arrayValue":
      return 4 + v.value.values.reduce((sum, item) => sum + 2 + anyValueSize(item), 0);
    case "kvlistValue":
      return 4 + attributesSize(v.value.values);
    default:
      return 11; // a varint, double or bool with its tags
  }
}

function utf8(text: string): number {
  return Buffer.byteLength(text, "utf8");
}
