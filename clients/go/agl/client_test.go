package agl_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/agl-dev/agl/clients/go/agl"
	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
	"github.com/agl-dev/agl/clients/go/internal/testserver"
)

// The whole life of a rollout through the Go client: enqueue, take it with a long poll, read the
// latest resources, stream spans of every attribute type with acks, emit a reward, finish, wait;
// then Python reads the spans and the reward back.
func TestRolloutLifecycle(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)

	if _, err := client.AddResources(ctx, "res-old", promptResources("old {question}")); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AddResources(ctx, "res-1", promptResources("Q: {question} (tags: {meta[tags][1]})")); err != nil {
		t.Fatal(err)
	}
	input := map[string]any{
		"question": "What is 6 * 7?",
		"meta":     map[string]any{"tags": []any{"math", "easy"}, "level": 2.0, "ok": true, "none": nil},
	}
	// Plain Go values in, statuses by name out.
	rollouts, err := client.EnqueueRollouts(ctx, agl.RolloutSpec{
		RolloutID: "ro-go-1", Input: input, Mode: "train", Config: &aglv1.RolloutConfig{MaxAttempts: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := agl.StatusName(rollouts[0].GetStatus()); got != "queuing" {
		t.Fatalf("enqueued rollout is %s, want queuing", got)
	}

	source := agl.NewDequeueSource(client, "go-worker", 5*time.Second)
	assignment, err := source.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if assignment.Rollout.GetRolloutId() != "ro-go-1" || assignment.Rollout.GetAttempt().GetSequenceId() != 1 {
		t.Fatalf("dequeued %v, want ro-go-1 with its first attempt", assignment.Rollout)
	}
	if worker := assignment.Rollout.GetAttempt().GetWorkerId(); worker != "go-worker" {
		t.Fatalf("attempt is held by %q, want go-worker", worker)
	}
	task := agl.NewTask(client, source, assignment)
	if !equalJSON(task.Input(), input) {
		t.Fatalf("task input %v, want %v", task.Input(), input)
	}

	template, err := task.PromptTemplate(ctx, "prompt")
	if err != nil {
		t.Fatal(err)
	}
	prompt, err := agl.FormatPrompt(template, task.Input().(map[string]any))
	if err != nil {
		t.Fatal(err)
	}
	if prompt != "Q: What is 6 * 7? (tags: easy)" {
		t.Fatalf("prompt from the latest resources is %q", prompt)
	}

	tool := task.StartSpan("calculator", agl.Attr(agl.AttrToolName, "calculator"))
	attrs := []*aglv1.KeyValue{
		agl.Attr("s", "héllo ✓"), agl.Attr("b", true), agl.Attr("i", int64(-1)<<62), agl.Attr("d", 0.1),
		agl.Attr("raw", []byte{0, 1, 254, 255}),
		agl.Attr("nested", []any{1, []any{"x", false}, map[string]any{"k": 2.5}}),
		agl.Attr("kv", map[string]any{"z": int64(1), "a": map[string]any{"deep": []byte("x")}}),
	}
	if err := task.End(ctx, tool, attrs...); err != nil {
		t.Fatal(err)
	}
	if err := task.EmitReward(ctx, 0.75); err != nil {
		t.Fatal(err)
	}
	if err := task.Finish(ctx, aglv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED, nil); err != nil {
		t.Fatal(err)
	}
	if err := task.Emit(ctx, agl.NewSpan("late")); err == nil {
		t.Fatal("a finished task accepted another span")
	}

	done, pending, err := client.WaitForRollouts(ctx, []string{"ro-go-1"}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 0 || done[0].GetStatus() != aglv1.RolloutStatus_ROLLOUT_STATUS_SUCCEEDED {
		t.Fatalf("rollout not succeeded: done=%v pending=%v", done, pending)
	}

	testserver.VerifyRollout(t, server.Address, "", "ro-go-1", testserver.Expect{
		Status: "succeeded", Reward: testserver.Ptr(0.75), SpanCount: 3,
		Spans: []testserver.ExpectedSpan{
			{Name: agl.SpanRollout, Parent: testserver.Ptr("")},
			{Name: "calculator", Parent: testserver.Ptr(agl.SpanRollout), Attributes: map[string]any{
				agl.AttrToolName: "calculator", "s": "héllo ✓", "b": true, "i": -(int64(1) << 62), "d": 0.1,
				"raw":    map[string]any{"bytes": "0001feff"},
				"nested": []any{1, []any{"x", false}, map[string]any{"k": 2.5}},
				"kv":     map[string]any{"z": 1, "a": map[string]any{"deep": map[string]any{"bytes": "78"}}},
			}},
			{Name: agl.SpanReward, Parent: testserver.Ptr(agl.SpanRollout), Attributes: map[string]any{agl.AttrRewardValue: 0.75}},
		},
	})
}

// A long poll on an empty queue ends empty-handed after its wait; one that is waiting when work
// arrives gets it.
func TestDequeueLongPoll(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)

	rollout, err := client.DequeueRollout(ctx, "w", 200*time.Millisecond)
	if err != nil || rollout != nil {
		t.Fatalf("empty queue: got %v, %v; want nil, nil", rollout, err)
	}

	got := make(chan *aglv1.Rollout, 1)
	errs := make(chan error, 1)
	go func() {
		r, err := client.DequeueRollout(ctx, "w", 20*time.Second)
		got <- r
		errs <- err
	}()
	if _, err := client.EnqueueRolloutSpecs(ctx, &aglv1.RolloutSpec{RolloutId: "ro-wake", Input: structpb.NewNullValue()}); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.GetRolloutId() != "ro-wake" {
		t.Fatalf("the waiting poll got %v (err %v), want ro-wake", r, <-errs)
	}
}

// EnqueueRollouts takes plain values: maps, a struct with json tags, a bare number, nil.
func TestEnqueuePlainValues(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)
	type order struct {
		Item  string `json:"item"`
		Count int    `json:"count"`
	}
	rollouts, err := client.EnqueueRollouts(ctx,
		agl.RolloutSpec{Input: map[string]any{"x": 1}},
		agl.RolloutSpec{Input: order{Item: "tea", Count: 2}, Metadata: map[string]any{"source": "test"}},
		agl.RolloutSpec{Input: 7},
		agl.RolloutSpec{},
	)
	if err != nil || len(rollouts) != 4 {
		t.Fatalf("enqueue: %v, %v", rollouts, err)
	}
	want := []any{map[string]any{"x": 1.0}, map[string]any{"item": "tea", "count": 2.0}, 7.0, nil}
	for i, rollout := range rollouts {
		if !strings.HasPrefix(rollout.GetRolloutId(), "ro-") {
			t.Errorf("rollout %d id %q", i, rollout.GetRolloutId())
		}
		got, err := client.GetRollout(ctx, rollout.GetRolloutId())
		if err != nil {
			t.Fatal(err)
		}
		if in := got.GetInput().AsInterface(); fmt.Sprint(in) != fmt.Sprint(want[i]) {
			t.Errorf("rollout %d input %v, want %v", i, in, want[i])
		}
	}
	if _, err := client.EnqueueRollouts(ctx, agl.RolloutSpec{Input: func() {}}); err == nil ||
		!strings.Contains(err.Error(), "not JSON-like") {
		t.Fatalf("a func input: %v", err)
	}
	if _, err := client.EnqueueRollouts(ctx, agl.RolloutSpec{Mode: "training"}); err == nil ||
		!strings.Contains(err.Error(), "use train, val or test") {
		t.Fatalf("a bad mode: %v", err)
	}
}
