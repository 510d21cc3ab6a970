/**
 * calc-agent with its spans made by the standard OpenTelemetry Node SDK (`calc-agent --otel`).
 *
 * The SDK exports over OTLP/gRPC straight to agl-server, whose OTLP receiver places each span in
 * its rollout and attempt by the `agl.rollout_id` and `agl.attempt_id` attributes. One process
 * runs many attempts, at once too, so the ids are set on every span (not on the resource, which
 * is the process's). Each span's parent is the attempt's `agl.rollout` root span, which the agl
 * runner sends when the attempt finishes, so the SDK's spans and agl's share one trace.
 *
 * An attempt's final status must not overtake its spans: the handler force-flushes the SDK before
 * it returns, and the flush resolves once agl-server answered the export, which it does only when
 * the spans are durable. (The SDK's exporter treats a partial success, spans the server could not
 * place, as a success and only logs it through the OpenTelemetry diagnostics logger.)
 */
import { type Context, context as otelContext, type Span, SpanStatusCode, trace, TraceFlags } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";

import { semconv, type Task } from "../src/index.js";
import { evaluate, extractExpression, grade, prepare, respond } from "./calc.js";

/**
 * A tracer provider exporting to the agl-server at `address` (plaintext gRPC). A token goes in
 * the exporter's standard header variable, OTEL_EXPORTER_OTLP_TRACES_HEADERS, unless one is set.
 */
export function otelProvider(address: string, token?: string): NodeTracerProvider {
  if (token && !process.env.OTEL_EXPORTER_OTLP_TRACES_HEADERS && !process.env.OTEL_EXPORTER_OTLP_HEADERS) {
    process.env.OTEL_EXPORTER_OTLP_TRACES_HEADERS = `authorization=${encodeURIComponent(`Bearer ${token}`)}`;
  }
  return new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": "calc-agent" }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `http://${address}` }))],
  });
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

/** Ends `span`, marking it failed when `error` is set. */
function finish(span: Span, error?: unknown): void {
  if (error !== undefined) {
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
  }
  span.end();
}

/** Runs `body` inside a new span, which ends (failed, if `body` throws) when `body` is done. */
async function inSpan<T>(
  provider: NodeTracerProvider,
  name: string,
  attributes: Record<string, string | number>,
  parent: Context,
  body: (span: Span, context: Context) => Promise<T> | T,
): Promise<T> {
  const span = provider.getTracer("calc-agent", "0.1.0").startSpan(name, { attributes }, parent);
  try {
    const result = await body(span, trace.setSpan(parent, span));
    finish(span);
    return result;
  } catch (error) {
    finish(span, error);
    throw error;
  }
}

/** calc-agent's handler, its spans made with the OpenTelemetry SDK of `provider`. */
export function otelCalcAgent(provider: NodeTracerProvider, promptResource = "") {
  return async (task: Task): Promise<void> => {
    const { question, answer, prompt } = await prepare(task, promptResource);
    const ids = { [semconv.ROLLOUT_ID]: task.rolloutId, [semconv.ATTEMPT_ID]: task.attemptId };
    const attempt = trace.setSpanContext(otelContext.active(), {
      traceId: hex(task.traceId),
      spanId: hex(task.rootSpanId),
      traceFlags: TraceFlags.SAMPLED,
      isRemote: true,
    });
    try {
      const agentAttributes = { ...ids, [semconv.OPERATION]: semconv.OPERATION_AGENT, [semconv.AGENT_NAME]: "calc-agent" };
      const output = await inSpan(provider, "calc-agent", agentAttributes, attempt, async (root, inAgent) => {
        await inSpan(provider, semconv.SPAN_MESSAGE, { ...ids, [semconv.MESSAGE_BODY]: prompt }, inAgent, () => undefined);
        const toolAttributes = { ...ids, [semconv.OPERATION]: semconv.OPERATION_TOOL, [semconv.TOOL_NAME]: "calculator" };
        const value = await inSpan(provider, "calculator", toolAttributes, inAgent, (tool) => {
          const expression = extractExpression(question);
          const result = evaluate(expression);
          tool.setAttributes({ "calculator.expression": expression, "calculator.result": result });
          return result;
        });
        const reply = respond(prompt, value);
        root.setAttribute("calc.output", reply);
        return reply;
      });
      const rewardAttributes = { ...ids, [semconv.REWARD_VALUE]: grade(output, answer) };
      await inSpan(provider, semconv.SPAN_REWARD, rewardAttributes, attempt, () => undefined);
    } finally {
      await provider.forceFlush();
    }
  };
}
