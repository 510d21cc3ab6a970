package agl

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
)

// Assignment is an attempt handed to this worker.
type Assignment struct {
	// Rollout is the task, with the new attempt in Rollout.Attempt.
	Rollout *aglv1.Rollout
	// Resources is the resources set to run with when the source resolved it; nil lets the task
	// fetch it when asked ([Task.Resources]).
	Resources *aglv1.ResourcesUpdate
}

// A WorkSource hands attempts to a worker and takes their status reports. [DequeueSource] long
// polls DequeueRollout; a source on agl's runner Work stream fits the same interface, so a
// [Runner] works with either.
type WorkSource interface {
	// Next blocks until an attempt is assigned or ctx ends (then it returns ctx's error).
	Next(ctx context.Context) (*Assignment, error)
	// Report records the status of an attempt this source assigned: RUNNING when it starts,
	// SUCCEEDED or FAILED when it ends. metadata, when not nil, replaces the attempt's metadata.
	Report(ctx context.Context, rolloutID, attemptID string, status aglv1.AttemptStatus, metadata *structpb.Struct) error
	// WorkerID is the worker's id as the server knows it.
	WorkerID() string
}

// A SoonReporter is a [WorkSource] that can send a report without waiting for its outcome. The
// [Runner] sends RUNNING this way and starts the handler at once, so an attempt does not wait a
// durable round trip to start; it waits for RUNNING's outcome before the final report, so the two
// reach the store in order. Both sources of this package are SoonReporters; for another source
// the runner calls Report on a goroutine instead.
type SoonReporter interface {
	// ReportSoon sends the report as Report does and returns at once; the [Reported] says how it
	// went. ctx bounds the report where the source needs a call for it (the Work stream only queues
	// it and delivers it, like Report, even after ctx ends).
	ReportSoon(ctx context.Context, rolloutID, attemptID string, status aglv1.AttemptStatus, metadata *structpb.Struct) *Reported
}

// Reported is the outcome of a report sent with [SoonReporter.ReportSoon].
type Reported struct {
	done   <-chan struct{}
	result func() error // the outcome; called only once done is closed
	op     string
	addr   string
}

// Done is closed once the report's outcome is known: the server's ack, or a failure for good.
func (r *Reported) Done() <-chan struct{} { return r.done }

// Err is nil until Done is closed, then the report's outcome: nil when the server recorded it,
// else why not (the store's code, e.g. FAILED_PRECONDITION for an attempt that timed out or was
// cancelled, or the failure that ended the source).
func (r *Reported) Err() error {
	select {
	case <-r.done:
		return r.result()
	default:
		return nil
	}
}

// Wait waits for the outcome (see [Reported.Err]); if ctx ends first it returns ctx's error (as
// a gRPC status) and the report is still delivered when it can be.
func (r *Reported) Wait(ctx context.Context) error {
	select {
	case <-r.done:
		return r.result()
	case <-ctx.Done():
		return &Error{Op: r.op, Address: r.addr, Err: status.FromContextError(ctx.Err()).Err()}
	}
}

// reportedNow is a Reported whose outcome is known already.
func reportedNow(err error) *Reported {
	done := make(chan struct{})
	close(done)
	return &Reported{done: done, result: func() error { return err }}
}

// reportedBy runs report on a goroutine: the way to send a report soon through any source.
func reportedBy(op, addr string, report func() error) *Reported {
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = report()
	}()
	return &Reported{done: done, result: func() error { return err }, op: op, addr: addr}
}

// alreadyReported is a report that needs no sending: its outcome, success, is known now.
func alreadyReported() *Reported {
	done := make(chan struct{})
	close(done)
	return &Reported{done: done, result: func() error { return nil }}
}

// reportSoon sends a report through source without waiting: with ReportSoon when the source has
// it, else with Report on a goroutine.
func reportSoon(
	ctx context.Context, source WorkSource, addr, rolloutID, attemptID string, st aglv1.AttemptStatus, metadata *structpb.Struct,
) *Reported {
	if soon, ok := source.(SoonReporter); ok {
		return soon.ReportSoon(ctx, rolloutID, attemptID, st, metadata)
	}
	op := fmt.Sprintf("report attempt %q of rollout %q as %s", attemptID, rolloutID, statusName(st))
	return reportedBy(op, addr, func() error { return source.Report(ctx, rolloutID, attemptID, st, metadata) })
}

// DequeueSource takes work with DequeueRollout long polls. It rides out a server that goes
// away (restarts, upgrades) as a stream does (docs/retry.md): failed polls are retried with
// back-off until the client's retry deadline.
type DequeueSource struct {
	client   *Client
	workerID string
	wait     time.Duration
	opts     []DequeueOption
	logger   *slog.Logger
}

// NewDequeueSource takes work for workerID in the client's namespace, waiting up to wait per poll
// (10s is a good value: the poll returns the moment work arrives, so the wait only bounds how long
// a stop request or a dead connection goes unnoticed). opts say which work it takes:
//
//	agl.NewDequeueSource(client, "go-1", 10*time.Second, agl.WithQueues("tools"), agl.WithLabelSelector("lang=go"))
func NewDequeueSource(client *Client, workerID string, wait time.Duration, opts ...DequeueOption) *DequeueSource {
	return &DequeueSource{client: client, workerID: workerID, wait: wait, opts: opts, logger: slog.Default()}
}

// WorkerID is the id the source dequeues for.
func (d *DequeueSource) WorkerID() string { return d.workerID }

// Next long-polls until a rollout is claimed for this worker.
func (d *DequeueSource) Next(ctx context.Context) (*Assignment, error) {
	o := outage{deadline: d.client.opts.retryDeadline}
	for {
		rollout, err := d.client.DequeueRollout(ctx, d.workerID, d.wait, d.opts...)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			if !streamRetryable(status.Code(err)) {
				return nil, err
			}
			wait, ok := o.failed()
			if !ok {
				return nil, err
			}
			d.logger.Warn("agl: dequeue failed; retrying", "error", err, "in", wait)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		}
		o.succeeded()
		if rollout != nil {
			return &Assignment{Rollout: rollout}, nil
		}
	}
}

// Report sets the attempt's status with UpdateAttempt.
func (d *DequeueSource) Report(
	ctx context.Context, rolloutID, attemptID string, status aglv1.AttemptStatus, metadata *structpb.Struct,
) error {
	_, err := d.client.store.UpdateAttempt(ctx, &aglv1.UpdateAttemptRequest{
		RolloutId: rolloutID, AttemptId: attemptID, Status: &status, Metadata: metadata,
	})
	if err != nil {
		return d.client.wrap(err, "set attempt %q of rollout %q to %s", attemptID, rolloutID, statusName(status))
	}
	return nil
}

// ReportSoon calls Report on a goroutine under ctx: UpdateAttempt is one call per report, so
// there is nothing to pipeline, but the caller need not wait for it.
func (d *DequeueSource) ReportSoon(
	ctx context.Context, rolloutID, attemptID string, st aglv1.AttemptStatus, metadata *structpb.Struct,
) *Reported {
	op := fmt.Sprintf("set attempt %q of rollout %q to %s", attemptID, rolloutID, statusName(st))
	return reportedBy(op, d.client.address, func() error { return d.Report(ctx, rolloutID, attemptID, st, metadata) })
}
