// Command spanbench streams spans to agl-server through the Go client's SpanStream and prints
// what it measured as JSON; bench/clients_bench.py runs it next to the Python and TS clients.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/agl-dev/agl/clients/go/agl"
	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
)

func main() {
	server := flag.String("server", agl.DefaultAddress, "agl-server address")
	rollout := flag.String("rollout", "", "rollout id the spans belong to")
	attempt := flag.String("attempt", "", "attempt id the spans belong to")
	count := flag.Int("spans", 20000, "spans to send")
	size := flag.Int("size", 1000, "bytes of payload attribute per span")
	perCall := flag.Int("per-call", 100, "spans per Enqueue call")
	flag.Parse()

	client, err := agl.NewClient(*server)
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	defer client.Close(ctx)
	payload := strings.Repeat("x", *size)
	trace := agl.NewTraceID()
	spans := make([]*aglv1.Span, *count)
	for i := range spans {
		span := agl.NewSpan("bench", agl.Attr("payload", payload), agl.Attr("i", i))
		span.TraceId, span.RolloutId, span.AttemptId = trace, *rollout, *attempt
		spans[i] = span
	}
	stream := client.Spans()
	// Warm up the connection and the stream so the timing covers steady streaming only.
	warm := agl.NewSpan("warm")
	warm.TraceId, warm.RolloutId, warm.AttemptId = trace, *rollout, *attempt
	if _, err := stream.Send(ctx, warm); err != nil {
		fail(err)
	}

	start := time.Now()
	pendings := make([]*agl.Pending, 0, *count / *perCall + 1)
	for i := 0; i < len(spans); i += *perCall {
		p, err := stream.Enqueue(ctx, spans[i:min(i+*perCall, len(spans))]...)
		if err != nil {
			fail(err)
		}
		pendings = append(pendings, p)
	}
	accepted := 0
	for _, p := range pendings {
		ack, err := p.Wait(ctx)
		if err != nil {
			fail(err)
		}
		accepted += ack.Accepted
	}
	seconds := time.Since(start).Seconds()
	if accepted != *count {
		fail(fmt.Errorf("%d of %d spans accepted", accepted, *count))
	}
	stats := stream.Stats()
	out, _ := json.Marshal(map[string]any{
		"client": "go", "spans": *count, "seconds": seconds, "spans_per_s": float64(*count) / seconds,
		"batches": stats.BatchesAcked - 1,
	})
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "spanbench:", err)
	os.Exit(1)
}
