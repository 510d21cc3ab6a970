/**
 * Names of the spans and attributes agl writes and reads (its semantic conventions), as in
 * agl_core/semconv.py; a test in tests/interop checks that every name here has the same value
 * there.
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
export const LLM_RESPONSE_LOGPROBS = "agl.llm.response_logprobs";
export const LLM_ERROR = "agl.llm.error";
/** Values of GEN_AI_OPERATION that mark a span as an LLM call. */
export const GEN_AI_OPERATION_CHAT = "chat";
export const GEN_AI_OPERATION_TEXT_COMPLETION = "text_completion";
export const GEN_AI_AGENT_NAME = "gen_ai.agent.name";
export const GEN_AI_TOOL_NAME = "gen_ai.tool.name";
export const GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id";

// Emitted events.
export const SPAN_REWARD = "agl.reward";
/** double: the primary reward. */
export const REWARD_VALUE = "agl.reward.value";
/** Name of the primary reward ("reward" unless told). */
export const REWARD_NAME = "agl.reward.name";
/**
 * Every named reward, the primary included, is a double attribute REWARD_VALUES_PREFIX + name;
 * readers also accept one kvlist attribute REWARD_VALUES.
 */
export const REWARD_VALUES = "agl.reward.values";
export const REWARD_VALUES_PREFIX = "agl.reward.values.";
/** Optional: the gen_ai.response.id of the LLM call the reward is for. */
export const REWARD_RESPONSE_ID = "agl.reward.response_id";

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
/** Values of OPERATION. */
export const OPERATION_AGENT = "agent";
export const OPERATION_TOOL = "tool";
export const OPERATION_REWARD = "reward";
export const AGENT_NAME = "agl.agent.name";
export const TOOL_NAME = "agl.tool.name";
