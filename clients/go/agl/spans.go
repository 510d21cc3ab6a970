package agl

import (
	"crypto/rand"
	"fmt"
	"slices"
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

// RewardSpan builds the span that records a reward, as agl_core's emit_reward does: an
// "agl.reward" span whose "agl.reward.value" is value, named "reward".
func RewardSpan(value float64) *aglv1.Span {
	span, _ := NamedRewardSpan("reward", map[string]float64{"reward": value})
	return span
}

// NamedRewardSpan records several named rewards, primary being the one training optimises: its
// value goes to "agl.reward.value" and its name to "agl.reward.name", and every reward to a
// double attribute "agl.reward.values.<name>". primary MUST be one of the names.
func NamedRewardSpan(primary string, rewards map[string]float64) (*aglv1.Span, error) {
	value, ok := rewards[primary]
	if !ok {
		return nil, fmt.Errorf("agl: the primary reward %q is not among the rewards given", primary)
	}
	names := make([]string, 0, len(rewards))
	for name := range rewards {
		names = append(names, name)
	}
	slices.Sort(names)
	attrs := []*aglv1.KeyValue{Attr(AttrRewardValue, value), Attr(AttrRewardName, primary)}
	for _, name := range names {
		attrs = append(attrs, Attr(AttrRewardValuesPrefix+name, rewards[name]))
	}
	return NewSpan(SpanReward, attrs...), nil
}
