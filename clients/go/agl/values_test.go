package agl_test

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/agl-dev/agl/clients/go/agl"
	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
)

func TestAnyValueRoundTrip(t *testing.T) {
	type named string
	in := map[string]any{
		"s": "x", "b": true, "i": 7, "i8": int8(-3), "u": uint32(9), "f": 1.5, "f32": float32(0.5),
		"bytes": []byte{1, 2}, "list": []string{"a", "b"}, "nested": []any{[]any{1}, map[string]int{"k": 1}},
		"nil": nil, "named": named("n"),
	}
	got := agl.FromAnyValue(agl.AnyValueOf(in))
	want := map[string]any{
		"s": "x", "b": true, "i": int64(7), "i8": int64(-3), "u": int64(9), "f": 1.5, "f32": 0.5,
		"bytes": []byte{1, 2}, "list": []any{"a", "b"}, "nested": []any{[]any{int64(1)}, map[string]any{"k": int64(1)}},
		"nil": nil, "named": "n",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, want)
	}
	// Keys are sorted, so equal maps encode to equal bytes.
	a, _ := proto.MarshalOptions{Deterministic: true}.Marshal(agl.AnyValueOf(map[string]any{"b": 1, "a": 2, "c": 3}))
	for range 20 {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(agl.AnyValueOf(map[string]any{"c": 3, "a": 2, "b": 1}))
		if string(a) != string(b) {
			t.Fatal("equal maps encoded differently")
		}
	}
	if v := agl.AnyValueOf(uint64(math.MaxUint64)); v.GetDoubleValue() != float64(math.MaxUint64) {
		t.Fatalf("uint64 beyond int64: %v", v)
	}
	if kvs := agl.Attrs(map[string]any{"z": 1, "a": 2}); kvs[0].GetKey() != "a" || kvs[1].GetKey() != "z" {
		t.Fatalf("Attrs not in key order: %v", kvs)
	}
}

func TestRewardSpans(t *testing.T) {
	span := agl.RewardSpan(1)
	want := map[string]any{agl.AttrRewardValue: 1.0, agl.AttrRewardName: "reward", agl.AttrRewardValuesPrefix + "reward": 1.0}
	if span.GetName() != agl.SpanReward || !reflect.DeepEqual(agl.AttributeMap(span.GetAttributes()), want) {
		t.Fatalf("reward span: %v", span)
	}
	if _, ok := span.GetAttributes()[0].GetValue().GetValue().(*aglv1.AnyValue_DoubleValue); !ok {
		t.Fatal("the reward of 1 is not a double")
	}
	named, err := agl.NamedRewardSpan("acc", map[string]float64{"acc": 0.5, "len": -1})
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]any{agl.AttrRewardValue: 0.5, agl.AttrRewardName: "acc",
		agl.AttrRewardValuesPrefix + "acc": 0.5, agl.AttrRewardValuesPrefix + "len": -1.0}
	if attrs := agl.AttributeMap(named.GetAttributes()); !reflect.DeepEqual(attrs, want) {
		t.Fatalf("named rewards: %v", attrs)
	}
	if _, err := agl.NamedRewardSpan("missing", map[string]float64{"acc": 1}); err == nil {
		t.Fatal("a primary reward that is not given was accepted")
	}
}

func TestFormatPrompt(t *testing.T) {
	vars := map[string]any{"q": "2+2?", "n": 3.0, "x": 2.5, "ok": false, "none": nil,
		"m": map[string]any{"k": []any{"a", "b"}}}
	template := &aglv1.PromptTemplate{Template: "{{literal}} {q} n={n} x={x} {ok} {none} {m[k][1]} {m}"}
	got, err := agl.FormatPrompt(template, vars)
	if want := `{literal} 2+2? n=3 x=2.5 False None b {"k":["a","b"]}`; err != nil || got != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
	for text, fragment := range map[string]string{
		"{missing}": `no "missing"`, "{q!r}": "conversions", "{}": "positional", "{q": "unclosed",
		"}": "single '}'", "{m[z]}": `no key "z"`, "{m[k][5]}": "no index", "{q[0]}": "cannot index",
	} {
		_, err := agl.FormatPrompt(&aglv1.PromptTemplate{Template: text}, vars)
		if err == nil || !contains(err.Error(), fragment) {
			t.Errorf("%q: error %v, want one about %q", text, err, fragment)
		}
	}
	_, err = agl.FormatPrompt(&aglv1.PromptTemplate{Template: "x", Engine: aglv1.PromptTemplateEngine_PROMPT_TEMPLATE_ENGINE_JINJA}, vars)
	if err == nil || !contains(err.Error(), "JINJA") {
		t.Fatalf("jinja: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
