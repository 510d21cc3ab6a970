// The client across a server crash or restart: spans resent, dequeues resumed.

package agl_test

import (
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/agl-dev/agl/clients/go/agl"
	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
	"github.com/agl-dev/agl/clients/go/internal/testserver"
)

// Spans in flight when the server dies are sent again once it is back, and every span is stored
// once. The server is frozen (SIGSTOP) so a batch is surely sent and unacknowledged, then killed
// and restarted on the same port and data directory.
func TestSpanStreamResendsAfterServerCrash(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address, agl.WithSpanStreamOptions(agl.WithBatchLimits(4, 1<<20)))
	if _, err := client.EnqueueRolloutSpecs(ctx, &aglv1.RolloutSpec{RolloutId: "ro-crash", Input: structpb.NewNullValue()}); err != nil {
		t.Fatal(err)
	}
	rollout, err := client.DequeueRollout(ctx, "w", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	spans := func(prefix string, n int) []*aglv1.Span {
		out := make([]*aglv1.Span, n)
		for i := range out {
			out[i] = agl.NewSpan(prefix, agl.Attr("i", i))
			out[i].TraceId, out[i].RolloutId, out[i].AttemptId = agl.NewTraceID(), "ro-crash", rollout.GetAttempt().GetAttemptId()
		}
		return out
	}
	stream := client.Spans()
	before := spans("before", 6)
	ack, err := stream.Send(ctx, before...)
	if err != nil || ack.Accepted != 6 {
		t.Fatalf("first spans: %+v, %v", ack, err)
	}

	if err := syscall.Kill(server.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	during := spans("during", 10)
	pending, err := stream.Enqueue(ctx, during...)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return stream.Stats().Inflight > 0 })
	server.Kill()
	server.Restart()

	ack, err = pending.Wait(ctx)
	if err != nil {
		t.Fatalf("spans sent while the server died were lost: %v", err)
	}
	if ack.Accepted+len(ack.Duplicates) != 10 || len(ack.Rejected) != 0 {
		t.Fatalf("after the restart: %+v", ack)
	}
	if stream.Stats().Reconnects < 1 {
		t.Fatalf("the stream did not reconnect: %+v", stream.Stats())
	}
	// Sending a stored span again is answered as a duplicate, not stored twice.
	again, err := stream.Send(ctx, before[0])
	if err != nil || again.Accepted != 0 || len(again.Duplicates) != 1 {
		t.Fatalf("resent span: %+v, %v", again, err)
	}
	stored, err := client.QuerySpans(ctx, "ro-crash", "")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, s := range stored {
		seen[string(s.GetSpanId())]++
	}
	for _, s := range append(before, during...) {
		if seen[string(s.GetSpanId())] != 1 {
			t.Fatalf("span %q %v stored %d times", s.GetName(), agl.AttributeMap(s.GetAttributes()), seen[string(s.GetSpanId())])
		}
	}
	if len(stored) != 16 {
		t.Fatalf("%d spans stored, want 16", len(stored))
	}
}

// A worker rides out a server restart: its long poll fails while the server is down and is
// retried until the server is back with work.
func TestDequeueSourceSurvivesServerRestart(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)
	server.Stop()

	got := make(chan *agl.Assignment, 1)
	errs := make(chan error, 1)
	go func() {
		a, err := agl.NewDequeueSource(client, "w", 2*time.Second).Next(ctx)
		got <- a
		errs <- err
	}()
	server.Restart()
	if _, err := client.EnqueueRolloutSpecs(ctx, &aglv1.RolloutSpec{RolloutId: "ro-back", Input: structpb.NewNullValue()}); err != nil {
		t.Fatal(err)
	}
	if a := <-got; a == nil || a.Rollout.GetRolloutId() != "ro-back" {
		t.Fatalf("got %v, %v; want ro-back", a, <-errs)
	}
}
