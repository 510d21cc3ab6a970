/**
 * What encoding a span batch costs the TS client: `toBinary` (protobuf-es, the runtime the client's
 * generated code and Connect use) of one IngestSpansRequest of ten spans, for the batch Go's codec
 * benchmark uses (clients/go/internal/wirecodec: text attributes and two token-id arrays per span)
 * and for its two halves. Prints one JSON object; bench/ts_codec_bench.py runs it.
 */
import { parseArgs } from "node:util";

import { create, toBinary } from "@bufbuild/protobuf";

import { IngestSpansRequestSchema, type IngestSpansRequest } from "../src/gen/agl/v1/store_pb.js";
import { attr, newSpan, type KeyValue } from "../src/index.js";

const { values } = parseArgs({ options: { batches: { type: "string", default: "20000" } } });
const count = Number(values.batches);

const ids = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);
const text = (i: number): KeyValue[] => [
  attr("gen_ai.system", "openai"),
  attr("gen_ai.request.model", "tiny"),
  attr("gen_ai.response.id", `chatcmpl-${i}`),
  attr("agl.llm.request", "ask ".repeat(60)),
  attr("agl.llm.response", "héllo, 你好 🙂"),
];
const tokens = (): KeyValue[] => [
  attr("agl.llm.prompt_token_ids", ids(1000, 42)),
  attr("agl.llm.response_token_ids", ids(2000, 12)),
];
const SHAPES: Record<string, (i: number) => KeyValue[]> = {
  llm: (i) => [...text(i), ...tokens()],
  text,
  token_ids: tokens,
  none: () => [],
};

function batch(attributes: (i: number) => KeyValue[]): IngestSpansRequest {
  const spans = Array.from({ length: 10 }, (_, i) => {
    const span = newSpan("openai.chat.completion", attributes(i));
    span.rolloutId = "ro-000001";
    span.attemptId = "at-000001";
    span.sequenceId = BigInt(i + 1);
    return span;
  });
  return create(IngestSpansRequestSchema, { batchId: 1n, spans });
}

const results: Record<string, { us_per_batch: number; bytes: number }> = {};
for (const [name, attributes] of Object.entries(SHAPES)) {
  const message = batch(attributes);
  const warm = Math.max(1, Math.floor(count / 10));
  for (let i = 0; i < warm; i++) toBinary(IngestSpansRequestSchema, message);
  let bytes = 0;
  const start = performance.now();
  for (let i = 0; i < count; i++) bytes = toBinary(IngestSpansRequestSchema, message).length;
  results[name] = { us_per_batch: ((performance.now() - start) * 1000) / count, bytes };
}
console.log(JSON.stringify({ batches: count, node: process.version, results }));
