package agl_test

import (
	"errors"
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

// Bad input gets the server's precise status, wrapped with what the client was doing.
func TestErrorsCarryStatusAndAdvice(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)

	_, err := client.UpdateAttempt(ctx, "ro-missing", "latest", aglv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED)
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "ro-missing") {
		t.Fatalf("unknown rollout: %v (code %s)", err, status.Code(err))
	}
	var aglErr *agl.Error
	if !errors.As(err, &aglErr) || !strings.Contains(aglErr.Op, "set attempt") {
		t.Fatalf("error does not say what was being done: %#v", err)
	}

	rollouts, err := client.EnqueueRolloutSpecs(ctx,
		&aglv1.RolloutSpec{RolloutId: "ro-ok", Input: structpb.NewNullValue()},
		&aglv1.RolloutSpec{RolloutId: "ro-bad", Input: structpb.NewNumberValue(nanValue())},
	)
	var items *agl.ItemErrors
	if !errors.As(err, &items) || len(items.Items) != 1 || items.Items[0].GetIndex() != 1 ||
		codes.Code(items.Items[0].GetCode()) != codes.InvalidArgument {
		t.Fatalf("a batch with one bad item: %v", err)
	}
	if rollouts[0].GetRolloutId() != "ro-ok" || rollouts[1] != nil {
		t.Fatalf("the good item should succeed alone: %v", rollouts)
	}

	// A span for an attempt that does not exist is rejected on its own, with a reason.
	span := agl.NewSpan("orphan")
	span.TraceId, span.RolloutId, span.AttemptId = agl.NewTraceID(), "ro-ok", "no-such-attempt"
	ack, err := client.Spans().Send(ctx, span)
	if err != nil || len(ack.Rejected) != 1 || ack.Err() == nil {
		t.Fatalf("orphan span: %+v, %v", ack, err)
	}

	// A span over the size limit is rejected at once (RESOURCE_EXHAUSTED); the rest of the call goes.
	small := newClient(t, server.Address, agl.WithSpanStreamOptions(agl.WithMaxSpanBytes(2000)))
	claimed, err := small.DequeueRollout(ctx, "w", time.Second)
	if err != nil || claimed.GetRolloutId() != "ro-ok" {
		t.Fatalf("dequeue ro-ok: %v, %v", claimed, err)
	}
	okSpan, bigSpan := agl.NewSpan("ok"), agl.NewSpan("big", agl.Attr("payload", strings.Repeat("x", 5000)))
	for _, s := range []*aglv1.Span{okSpan, bigSpan} {
		s.TraceId, s.RolloutId, s.AttemptId = agl.NewTraceID(), "ro-ok", claimed.GetAttempt().GetAttemptId()
	}
	ack, err = small.Spans().Send(ctx, okSpan, bigSpan)
	if err != nil || ack.Accepted != 1 || len(ack.Rejected) != 1 || ack.Rejected[0].GetIndex() != 1 ||
		codes.Code(ack.Rejected[0].GetCode()) != codes.ResourceExhausted {
		t.Fatalf("oversized span: %+v, %v", ack, err)
	}

	// A name that is not UTF-8 goes out as it is (the client's generated marshalling does not check
	// strings, see internal/wirecodec): the server rejects that span alone and stores the other.
	fine, notUTF8 := agl.NewSpan("fine"), agl.NewSpan("bad \xff name")
	for _, s := range []*aglv1.Span{fine, notUTF8} {
		s.TraceId, s.RolloutId, s.AttemptId = agl.NewTraceID(), "ro-ok", claimed.GetAttempt().GetAttemptId()
	}
	ack, err = small.Spans().Send(ctx, fine, notUTF8)
	if err != nil || ack.Accepted != 1 || len(ack.Rejected) != 1 || ack.Rejected[0].GetIndex() != 1 ||
		codes.Code(ack.Rejected[0].GetCode()) != codes.InvalidArgument ||
		!strings.Contains(ack.Rejected[0].GetMessage(), "UTF-8") {
		t.Fatalf("a span named with invalid UTF-8: %+v, %v", ack, err)
	}

	server.Stop()
	down := newClient(t, server.Address, agl.WithRetryDeadline(time.Second), agl.WithTimeout(2*time.Second))
	_, err = down.GetResources(ctx, "")
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "agl-server --port") {
		t.Fatalf("server down: %v", err)
	}
}
