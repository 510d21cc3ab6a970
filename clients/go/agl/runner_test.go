package agl_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agl-dev/agl/clients/go/agl"
	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
	"github.com/agl-dev/agl/clients/go/internal/testserver"
)

// A runner finishes each attempt by what its handler did (nil, an error, a panic), keeps serving
// after failures and returns nil once its context ends.
func TestRunnerOutcomes(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)
	var specs []agl.RolloutSpec
	for _, id := range []string{"ro-ok", "ro-error", "ro-panic"} {
		specs = append(specs, agl.RolloutSpec{RolloutID: id, Input: id})
	}
	if _, err := client.EnqueueRollouts(ctx, specs...); err != nil {
		t.Fatal(err)
	}

	serveCtx, stop := context.WithCancel(ctx)
	runner := agl.NewRunner(client, agl.NewDequeueSource(client, "runner", time.Second), agl.WithConcurrency(2))
	served := make(chan error, 1)
	go func() {
		served <- runner.Serve(serveCtx, func(ctx context.Context, task *agl.Task) error {
			switch task.Input() {
			case "ro-error":
				return errors.New("the agent gave up")
			case "ro-panic":
				var m map[string]int
				m["boom"]++ // a bug in the agent
			}
			return task.EmitReward(ctx, 1)
		})
	}()
	done, pending, err := client.WaitForRollouts(ctx, []string{"ro-ok", "ro-error", "ro-panic"}, 30*time.Second)
	if err != nil || len(pending) > 0 {
		t.Fatalf("pending %v, %v", pending, err)
	}
	statuses := map[string]aglv1.RolloutStatus{}
	for _, r := range done {
		statuses[r.GetRolloutId()] = r.GetStatus()
	}
	if statuses["ro-ok"] != aglv1.RolloutStatus_ROLLOUT_STATUS_SUCCEEDED ||
		statuses["ro-error"] != aglv1.RolloutStatus_ROLLOUT_STATUS_FAILED ||
		statuses["ro-panic"] != aglv1.RolloutStatus_ROLLOUT_STATUS_FAILED {
		t.Fatalf("statuses %v", statuses)
	}
	stop()
	if err := <-served; err != nil {
		t.Fatalf("Serve after stop: %v", err)
	}
	if stats := runner.Stats(); stats.Succeeded != 1 || stats.Failed != 2 {
		t.Fatalf("stats %+v", stats)
	}
	panicked, err := client.GetRollout(ctx, "ro-panic")
	if err != nil {
		t.Fatal(err)
	}
	if msg := panicked.GetAttempt().GetMetadata().GetFields()["error"].GetStringValue(); !strings.Contains(msg, "panic: assignment to entry in nil map") {
		t.Fatalf("the attempt's metadata does not say why it failed: %q", msg)
	}
	testserver.VerifyRollout(t, server.Address, "", "ro-error", testserver.Expect{
		Status: "failed", SpanCount: 2,
		Spans: []testserver.ExpectedSpan{{Name: agl.SpanException, Parent: testserver.Ptr(agl.SpanRollout),
			Attributes: map[string]any{agl.AttrExceptionMessage: "the agent gave up", agl.AttrExceptionType: "*errors.errorString"}}},
	})
}
