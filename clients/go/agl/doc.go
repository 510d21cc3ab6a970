// Package agl is the Go client of agl-server: a thin layer over the generated gRPC code in
// github.com/agl-dev/agl/clients/go/gen/agl/v1 (package aglv1).
//
// A runner takes work, streams spans and finishes attempts:
//
//	client, err := agl.NewClient("127.0.0.1:4747") // the token comes from $AGL_TOKEN
//	if err != nil { ... }
//	defer client.Close(context.Background())
//	runner := agl.NewRunner(client, agl.NewDequeueSource(client, "worker-1", 10*time.Second))
//	err = runner.Serve(ctx, func(ctx context.Context, task *agl.Task) error {
//		question := task.Input().(map[string]any)["question"]
//		if err := task.Emit(ctx, agl.NewSpan("think", agl.Attr("question", question))); err != nil {
//			return err
//		}
//		return task.EmitReward(ctx, 1.0)
//	})
//
// Serve returns once ctx ends (cancel it on SIGTERM), after the running attempts finish.
//
// For each attempt the runner sends the RUNNING report and starts the handler at once, without
// waiting a durable round trip for its ack; the final report waits for RUNNING's outcome, so the
// store records the two in order. If the server refuses RUNNING (the attempt timed out or was
// cancelled meanwhile), the handler's context is cancelled with [ErrNotStarted] as its cause and
// nothing final is reported for the attempt.
//
// Every call takes a [context.Context]; calls without a deadline get the client's default one
// (30s), and calls that fail with UNAVAILABLE before the server saw them are retried by gRPC's
// retry policy. Spans travel on one batched, pipelined, acknowledged IngestSpans stream per
// client ([SpanStream]) that resends unacknowledged batches after a reconnect; the server ignores
// span ids it already stored, so nothing is stored twice. Errors are gRPC status errors (use
// [google.golang.org/grpc/status.Code]) wrapped with what was being done.
//
// The generated client stays available through [Client.Store] for everything this package does
// not wrap.
package agl
