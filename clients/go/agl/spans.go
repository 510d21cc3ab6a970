package agl

import (
	"crypto/rand"
	"fmt"
	"time"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
)

// NewTraceID returns 16 random bytes, never all zero (OpenTelemetry's rule for a valid trace id).
func NewTraceID() []byte { return randomID(16) }

// NewSpanID returns 8 random bytes, never all zero.
func NewSpanID() []byte { return randomID(8) }

func randomID(n int) []byte {
	id := make([]byte, n)
	for {
		_, _ = rand.Read(id) // crypto/rand.Read never fails (Go 1.24+)
		for _, b := range id {
			if b != 0 {
				return id
			}
		}
	}
}

// NewSpan builds an INTERNAL span named name with a fresh span id that starts and ends now. The
// rollout, attempt and trace ids are left for the caller or [Task.Emit] to fill in.
func NewSpan(name string, attrs ...*aglv1.KeyValue) *aglv1.Span {
	now := uint64(time.Now().UnixNano())
	return &aglv1.Span{
		Name:              name,
		SpanId:            NewSpanID(),
		Kind:              aglv1.SpanKind_SPAN_KIND_INTERNAL,
		StartTimeUnixNano: now,
		EndTimeUnixNano:   now,
		Attributes:        attrs,
	}
}

// RewardSpan builds the span that records a reward: an "agl.reward" span whose
// "agl.reward.value" attribute is value.
func RewardSpan(value float64) *aglv1.Span {
	return NewSpan(SpanReward, Attr(AttrRewardValue, value))
}

// NamedRewardSpan records several named rewards, primary being the one training optimises: its
// value goes to "agl.reward.value" and its name to "agl.reward.name", and every reward goes to the
// "agl.reward.values" kvlist. primary MUST be one of the names.
func NamedRewardSpan(primary string, rewards map[string]float64) (*aglv1.Span, error) {
	if _, ok := rewards[primary]; !ok {
		return nil, fmt.Errorf("agl: the primary reward %q is not among the rewards given", primary)
	}
	values := make(map[string]any, len(rewards))
	for name, value := range rewards {
		values[name] = value
	}
	return NewSpan(SpanReward,
		Attr(AttrRewardValue, rewards[primary]),
		Attr(AttrRewardName, primary),
		Attr(AttrRewardValues, values),
	), nil
}
