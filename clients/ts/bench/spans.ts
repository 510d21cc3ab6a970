/**
 * Streams spans to agl-server through the TS client's SpanStream and prints what it measured as
 * JSON; bench/clients_bench.py runs it next to the Python and Go clients.
 */
import { parseArgs } from "node:util";

import { attr, connect, newSpan, newTraceId, type PendingAck, type Span } from "../src/index.js";

const { values } = parseArgs({
  options: {
    server: { type: "string", default: "127.0.0.1:4747" },
    rollout: { type: "string", default: "" },
    attempt: { type: "string", default: "" },
    spans: { type: "string", default: "20000" },
    size: { type: "string", default: "1000" },
    "per-call": { type: "string", default: "100" },
  },
});
const count = Number(values.spans);
const perCall = Number(values["per-call"]);
const client = connect({ address: values.server });
const payload = "x".repeat(Number(values.size));
const traceId = newTraceId();
const own = (span: Span): Span => {
  span.traceId = traceId;
  span.rolloutId = values.rollout;
  span.attemptId = values.attempt;
  return span;
};
const spans = Array.from({ length: count }, (_, i) => own(newSpan("bench", [attr("payload", payload), attr("i", i)])));
// Warm up the connection and the stream so the timing covers steady streaming only.
await client.spans.send([own(newSpan("warm"))]);

const start = performance.now();
const pendings: PendingAck[] = [];
for (let i = 0; i < spans.length; i += perCall) {
  pendings.push(await client.spans.enqueue(spans.slice(i, i + perCall)));
}
let accepted = 0;
for (const pending of pendings) {
  accepted += (await pending.acked).accepted;
}
const seconds = (performance.now() - start) / 1000;
if (accepted !== count) {
  throw new Error(`${accepted} of ${count} spans accepted`);
}
console.log(
  JSON.stringify({
    client: "ts",
    spans: count,
    seconds,
    spans_per_s: count / seconds,
    batches: client.spans.stats().batchesAcked - 1,
  }),
);
await client.close();
