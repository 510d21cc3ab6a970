package agl_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/agl-dev/agl/clients/go/agl"
	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
	"github.com/agl-dev/agl/clients/go/internal/testserver"
)

// gRPC's own retry policy stopped after 5 tries (about 1.5s); now the retry deadline counts.
func TestUnaryCallOutlastsMoreThanFiveTries(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address, agl.WithRetryDeadline(time.Minute))
	rollouts, err := client.EnqueueRollouts(ctx, agl.RolloutSpec{RolloutID: "ro-outage", Input: map[string]any{"x": 1}})
	if err != nil || len(rollouts) != 1 {
		t.Fatal(rollouts, err)
	}
	server.Stop()
	type result struct {
		rollout *aglv1.Rollout
		err     error
	}
	done := make(chan result, 1)
	go func() {
		rollout, err := client.GetRollout(ctx, "ro-outage")
		done <- result{rollout, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("the call ended while the server was down: %v, %v", r.rollout, r.err)
	case <-time.After(3 * time.Second): // longer than five back-offs
	}
	server.Restart()
	r := <-done
	if r.err != nil || r.rollout.GetRolloutId() != "ro-outage" {
		t.Fatalf("after the restart: %v, %v", r.rollout, r.err)
	}
}

func TestUnaryCallGivesUpAtTheRetryDeadline(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address, agl.WithRetryDeadline(time.Second))
	server.Stop()
	started := time.Now()
	_, err := client.GetResources(ctx, "")
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("server down: %v", err)
	}
	if elapsed := time.Since(started); elapsed < time.Second {
		t.Fatalf("gave up after %s, before the 1s retry deadline", elapsed)
	}
}

func TestStatusThatIsNotRetriedFailsAtOnce(t *testing.T) {
	server := testserver.Start(t)
	client := newClient(t, server.Address, agl.WithRetryDeadline(time.Minute))
	// A deadline well under the retry deadline: a retried NOT_FOUND would run into it.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := client.UpdateAttempt(ctx, "ro-missing", "latest", aglv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED)
	if status.Code(err) != codes.NotFound {
		t.Fatalf("missing rollout: %v", err)
	}
}

func TestWorkStreamGivesUpAtTheRetryDeadline(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address, agl.WithRetryDeadline(time.Second))
	source := agl.NewWorkStreamSource(client, agl.WorkStreamConfig{WorkerID: "w-retry"})
	if err := source.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer source.Close(ctx)
	started := time.Now() // the stream breaks while the server shuts down: the outage starts then
	server.Stop()
	_, err := source.Next(ctx)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Next with the server gone: %v", err)
	}
	if elapsed := time.Since(started); elapsed < time.Second {
		t.Fatalf("gave up after %s, before the 1s retry deadline", elapsed)
	}
}
