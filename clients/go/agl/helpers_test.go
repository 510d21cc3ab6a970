// Helpers the client tests share: a deadline, a client closed after the test, values and resources.

package agl_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/agl-dev/agl/clients/go/agl"
	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, address string, opts ...agl.Option) *agl.Client {
	t.Helper()
	client, err := agl.NewClient(address, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Close(ctx)
	})
	return client
}

func mustValue(t *testing.T, v any) *structpb.Value {
	t.Helper()
	value, err := agl.JSONValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return value
}

func promptResources(template string) map[string]*aglv1.Resource {
	return map[string]*aglv1.Resource{
		"prompt": {Kind: &aglv1.Resource_PromptTemplate{PromptTemplate: &aglv1.PromptTemplate{
			Template: template, Engine: aglv1.PromptTemplateEngine_PROMPT_TEMPLATE_ENGINE_F_STRING,
		}}},
		"llm": {Kind: &aglv1.Resource_Llm{Llm: &aglv1.LLM{Endpoint: "http://127.0.0.1:9/v1", Model: "offline"}}},
	}
}

func equalJSON(a, b any) bool {
	x, _ := structpb.NewValue(a)
	y, _ := structpb.NewValue(b)
	return x.String() == y.String()
}

// waitFor polls a condition of the client (no event to wait on) with a deadline.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}
