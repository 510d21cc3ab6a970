/**
 * Names of the spans and attributes agl writes and reads (its semantic conventions), the same as
 * agl_core/semconv.py; a test in tests/interop checks that the two agree.
 */

// Rollout coordinates (resource or span attributes; how OTLP spans find their rollout).
export const ROLLOUT_ID = "agl.rollout_id";
export const ATTEMPT_ID = "agl.attempt_id";
export const SEQUENCE_ID = "agl.sequence_id";

// LLM calls (OpenTelemetry GenAI conventions plus what training needs).
export const GEN_AI_OPERATION = "gen_ai.operation.name";
export const GEN_AI_SYSTEM = "gen_ai.system";
export const GEN_AI_REQUEST_MODEL = "gen_ai.request.model";
export const GEN_AI_RESPONSE_MODEL = "gen_ai.response.model";
export const GEN_AI_RESPONSE_ID = "gen_ai.response.id";
export const GEN_AI_FINISH_REASONS = "gen_ai.response.finish_reasons";
export const GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens";
export const GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens";
export const GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature";
export const GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens";
export const LLM_REQUEST = "agl.llm.request";
export const LLM_RESPONSE = "agl.llm.response";
export const LLM_PROMPT_TOKEN_IDS = "agl.llm.prompt_token_ids";
export const LLM_RESPONSE_TOKEN_IDS = "agl.llm.response_token_ids";
export const LLM_STREAM = "agl.llm.stream";
export const LLM_ENDPOINT = "agl.llm.endpoint";
export const LLM_PROXY_BACKEND = "agl.llm.proxy.backend";

// Emitted events.
export const SPAN_REWARD = "agl.reward";
/** double: the primary reward. */
export const REWARD_VALUE = "agl.reward.value";
/** Name of the primary reward ("reward" unless told). */
export const REWARD_NAME = "agl.reward.name";
/** kvlist: every named reward, the primary included. */
export const REWARD_VALUES = "agl.reward.values";

export const SPAN_MESSAGE = "agl.message";
export const MESSAGE_BODY = "agl.message.body";

export const SPAN_OBJECT = "agl.object";
export const OBJECT_JSON = "agl.object.json";
export const OBJECT_TYPE = "agl.object.type";

export const SPAN_EXCEPTION = "agl.exception";
export const EXCEPTION_TYPE = "exception.type";
export const EXCEPTION_MESSAGE = "exception.message";
export const EXCEPTION_STACKTRACE = "exception.stacktrace";

// Structure.
/** The root span a runner opens around one attempt. */
export const SPAN_ROLLOUT = "agl.rollout";
export const OPERATION = "agl.operation";
export const AGENT_NAME = "agl.agent.name";
export const TOOL_NAME = "agl.tool.name";
