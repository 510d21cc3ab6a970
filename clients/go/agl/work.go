package agl

import (
	"context"
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
