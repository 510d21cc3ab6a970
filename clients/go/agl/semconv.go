package agl

// Names of the spans and attributes agl writes and reads (its semantic conventions), as in
// agl_core/semconv.py; a test in tests/interop checks that every name here has the same value
// there.
const (
	// Rollout coordinates (resource or span attributes; how OTLP spans find their rollout).
	AttrRolloutID  = "agl.rollout_id"
	AttrAttemptID  = "agl.attempt_id"
	AttrSequenceID = "agl.sequence_id"

	// LLM calls (OpenTelemetry GenAI conventions plus what training needs).
	AttrGenAIOperation          = "gen_ai.operation.name"
	AttrGenAISystem             = "gen_ai.system"
	AttrGenAIRequestModel       = "gen_ai.request.model"
	AttrGenAIResponseModel      = "gen_ai.response.model"
	AttrGenAIResponseID         = "gen_ai.response.id"
	AttrGenAIFinishReasons      = "gen_ai.response.finish_reasons"
	AttrGenAIInputTokens        = "gen_ai.usage.input_tokens"
	AttrGenAIOutputTokens       = "gen_ai.usage.output_tokens"
	AttrGenAIRequestTemperature = "gen_ai.request.temperature"
	AttrGenAIRequestMaxTokens   = "gen_ai.request.max_tokens"
	AttrLLMRequest              = "agl.llm.request"
	AttrLLMResponse             = "agl.llm.response"
	AttrLLMPromptTokenIDs       = "agl.llm.prompt_token_ids"
	AttrLLMResponseTokenIDs     = "agl.llm.response_token_ids"
	AttrLLMStream               = "agl.llm.stream"
	AttrLLMEndpoint             = "agl.llm.endpoint"
	AttrLLMProxyBackend         = "agl.llm.proxy.backend"
	AttrLLMResponseLogprobs     = "agl.llm.response_logprobs"
	AttrLLMError                = "agl.llm.error"
	// Values of AttrGenAIOperation that mark a span as an LLM call.
	GenAIOperationChat           = "chat"
	GenAIOperationTextCompletion = "text_completion"
	AttrGenAIAgentName           = "gen_ai.agent.name"
	AttrGenAIToolName            = "gen_ai.tool.name"
	AttrGenAIToolCallID          = "gen_ai.tool.call.id"

	// Emitted events.
	SpanReward      = "agl.reward"
	AttrRewardValue = "agl.reward.value" // double: the primary reward
	AttrRewardName  = "agl.reward.name"  // name of the primary reward ("reward" unless told)
	// Every named reward, the primary included, is a double attribute AttrRewardValuesPrefix+name;
	// readers also accept one kvlist attribute AttrRewardValues.
	AttrRewardValues       = "agl.reward.values"
	AttrRewardValuesPrefix = "agl.reward.values."
	// Optional: the gen_ai.response.id of the LLM call the reward is for.
	AttrRewardResponseID = "agl.reward.response_id"

	SpanMessage     = "agl.message"
	AttrMessageBody = "agl.message.body"

	SpanObject     = "agl.object"
	AttrObjectJSON = "agl.object.json"
	AttrObjectType = "agl.object.type"

	SpanException           = "agl.exception"
	AttrExceptionType       = "exception.type"
	AttrExceptionMessage    = "exception.message"
	AttrExceptionStacktrace = "exception.stacktrace"

	// Structure.
	SpanRollout   = "agl.rollout" // the root span a runner opens around one attempt
	AttrOperation = "agl.operation"
	// Values of AttrOperation.
	OperationAgent  = "agent"
	OperationTool   = "tool"
	OperationReward = "reward" // the span computes a reward (LLM calls inside it are judges)
	AttrAgentName   = "agl.agent.name"
	AttrToolName    = "agl.tool.name"
)
