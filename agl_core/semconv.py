"""Names of the spans and span attributes agl writes and reads (its semantic conventions).

Every producer (the OpenAI instrumentation, the emitters, the LLM proxy, agents in Go or
TypeScript) and every consumer (the adapters, the algorithms) uses these names, so they are
defined once. LLM calls follow the OpenTelemetry GenAI conventions where those exist
(``gen_ai.*``) and add what training needs under ``agl.*`` (token ids, raw request/response).
Attributes whose value is a structure (messages, choices, objects) hold it as a JSON string.
"""

from __future__ import annotations

# --- rollout coordinates (resource or span attributes; how OTLP spans find their rollout) --------
# agl-server's OTLP receiver reads them from the span, else its scope, else its resource; the
# level that names the rollout also supplies the attempt (missing: the rollout's latest attempt).
ROLLOUT_ID = "agl.rollout_id"
ATTEMPT_ID = "agl.attempt_id"
SEQUENCE_ID = "agl.sequence_id"

# --- LLM calls -----------------------------------------------------------------------------------
# Span name: "chat {model}" (OpenTelemetry GenAI); identify LLM call spans by GEN_AI_OPERATION.
GEN_AI_OPERATION = "gen_ai.operation.name"  # "chat" or "text_completion"
GEN_AI_SYSTEM = "gen_ai.system"  # "openai", "vllm", ...
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_FINISH_REASONS = "gen_ai.response.finish_reasons"  # string array
GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"

LLM_REQUEST = "agl.llm.request"  # JSON: the request body (messages or prompt, sampling parameters)
LLM_RESPONSE = "agl.llm.response"  # JSON: the response body (choices, usage), streaming reassembled
LLM_PROMPT_TOKEN_IDS = "agl.llm.prompt_token_ids"  # int array
LLM_RESPONSE_TOKEN_IDS = "agl.llm.response_token_ids"  # int array (first choice)
LLM_STREAM = "agl.llm.stream"  # bool
LLM_ENDPOINT = "agl.llm.endpoint"  # base URL the call went to
LLM_PROXY_BACKEND = "agl.llm.proxy.backend"  # set by the LLM proxy: which backend served it
LLM_RESPONSE_LOGPROBS = "agl.llm.response_logprobs"  # double array: log probability of each response token
# n > 1: every choice's token ids and logprobs, "agl.llm.choice.<index>.response_token_ids" / ".response_logprobs"
# (the first choice's are also in LLM_RESPONSE_TOKEN_IDS / LLM_RESPONSE_LOGPROBS).
LLM_CHOICE_PREFIX = "agl.llm.choice."
LLM_PROXY_API = "agl.llm.proxy.api"  # set by the LLM proxy: the API the caller spoke ("openai", "anthropic")
LLM_ERROR = "agl.llm.error"  # string: why the call failed (the span status is ERROR as well)

# Values of GEN_AI_OPERATION that mark a span as an LLM call.
GEN_AI_OPERATION_CHAT = "chat"
GEN_AI_OPERATION_TEXT_COMPLETION = "text_completion"
LLM_OPERATIONS = frozenset({GEN_AI_OPERATION_CHAT, GEN_AI_OPERATION_TEXT_COMPLETION, "generate_content"})
GEN_AI_AGENT_NAME = "gen_ai.agent.name"  # OpenTelemetry GenAI: the agent a span belongs to
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"

# --- emitted events ------------------------------------------------------------------------------
SPAN_REWARD = "agl.reward"
REWARD_VALUE = "agl.reward.value"  # double: the primary reward
REWARD_NAME = "agl.reward.name"  # name of the primary reward ("reward" unless told)
# Every named reward, the primary included, one double attribute each: "agl.reward.values.<name>".
# (OpenTelemetry SDKs cannot set map-valued attributes; readers also accept one kvlist attribute
# named REWARD_VALUES, which OTLP can carry.)
REWARD_VALUES = "agl.reward.values"
REWARD_VALUES_PREFIX = REWARD_VALUES + "."
# Optional: the gen_ai.response.id of the LLM call the reward is for. Adapters give such a reward
# to that call whatever their matching policy.
REWARD_RESPONSE_ID = "agl.reward.response_id"

SPAN_MESSAGE = "agl.message"
MESSAGE_BODY = "agl.message.body"

SPAN_OBJECT = "agl.object"
OBJECT_JSON = "agl.object.json"  # JSON of the object (dataclasses and pydantic models as their fields)
OBJECT_TYPE = "agl.object.type"  # qualified name of its Python type (or what the emitter says)

SPAN_EXCEPTION = "agl.exception"
EXCEPTION_TYPE = "exception.type"  # OpenTelemetry's exception conventions
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_STACKTRACE = "exception.stacktrace"

# --- structure -----------------------------------------------------------------------------------
SPAN_ROLLOUT = "agl.rollout"  # the root span a runner opens around one attempt
OPERATION = "agl.operation"  # "agent", "tool", "reward" on spans agents open themselves
OPERATION_AGENT = "agent"  # the span covers one agent's turn; its name is AGENT_NAME
OPERATION_TOOL = "tool"
OPERATION_REWARD = "reward"  # the span computes a reward (LLM calls inside it are judges, not actions)
AGENT_NAME = "agl.agent.name"
TOOL_NAME = "agl.tool.name"

# --- HTTP (OpenTelemetry's HTTP conventions; the LLM proxy sets it on its call spans) ------------
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"  # int: the status the caller received
