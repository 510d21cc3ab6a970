package agl_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/agl-dev/agl/clients/go/agl"
	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
	"github.com/agl-dev/agl/clients/go/internal/testserver"
)

func TestQuerySpansOfRollouts(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)
	if _, err := client.EnqueueRolloutSpecs(ctx,
		&aglv1.RolloutSpec{RolloutId: "ro-q1", Input: structpb.NewNullValue()},
		&aglv1.RolloutSpec{RolloutId: "ro-q2", Input: structpb.NewNullValue()},
		&aglv1.RolloutSpec{RolloutId: "ro-queued", Input: structpb.NewNullValue()},
	); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"ro-q1": 3, "ro-q2": 1}
	for range want {
		rollout, err := client.DequeueRollout(ctx, "w", time.Second)
		if err != nil || rollout == nil {
			t.Fatalf("dequeue: %v, %v", rollout, err)
		}
		id := rollout.GetRolloutId()
		spans := make([]*aglv1.Span, want[id])
		for i := range spans {
			spans[i] = agl.NewSpan(id, agl.Attr("i", i))
			spans[i].TraceId, spans[i].RolloutId, spans[i].AttemptId = agl.NewTraceID(), id, rollout.GetAttempt().GetAttemptId()
		}
		if ack, err := client.Spans().Send(ctx, spans...); err != nil || ack.Accepted != len(spans) {
			t.Fatalf("spans of %s: %+v, %v", id, ack, err)
		}
	}

	found, err := client.QuerySpansOfRollouts(ctx, []string{"ro-q2", "ro-queued", "ro-q1"}, "latest")
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 3 || len(found["ro-queued"]) != 0 {
		t.Fatalf("every id given is a key, ro-queued without spans: %v", found)
	}
	for id, n := range want {
		if len(found[id]) != n {
			t.Fatalf("%s: %d spans, want %d", id, len(found[id]), n)
		}
		for i, span := range found[id] {
			if span.GetRolloutId() != id || span.GetName() != id || span.GetSequenceId() != int64(i+1) {
				t.Fatalf("%s: span %d is %s of %s (sequence %d)", id, i, span.GetName(), span.GetRolloutId(), span.GetSequenceId())
			}
		}
	}

	_, err = client.QuerySpansOfRollouts(ctx, []string{"ro-q1", "ro-q1"}, "")
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "rollout_ids[1] repeats rollout_ids[0]") {
		t.Fatalf("an id twice: %v (code %s)", err, status.Code(err))
	}
	_, err = client.QuerySpansOfRollouts(ctx, []string{"ro-q1", "ro-missing"}, "")
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "ro-missing") {
		t.Fatalf("an unknown id: %v (code %s)", err, status.Code(err))
	}
}
