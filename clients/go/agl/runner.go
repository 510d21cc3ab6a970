package agl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
)

// Handler runs one attempt. Returning nil finishes the attempt SUCCEEDED, an error finishes it
// FAILED (with an "agl.exception" span); a handler may also call [Task.Finish] itself.
//
// The runner starts the handler as soon as it has sent the attempt's RUNNING report, before the
// server acknowledged it. If the server refuses it (the attempt timed out or was cancelled
// meanwhile), ctx is cancelled with [ErrNotStarted] as its cause ([context.Cause]) and whatever
// the handler returns is not reported. ctx is also cancelled when the runner's drain timeout
// passes after a stop.
type Handler func(ctx context.Context, task *Task) error

// A RunnerOption configures a Runner.
type RunnerOption func(*Runner)

// WithConcurrency runs up to n attempts at once (default 1).
func WithConcurrency(n int) RunnerOption { return func(r *Runner) { r.concurrency = max(1, n) } }

// WithDrainTimeout sets how long running attempts may go on after Serve's context ends before
// their own contexts are cancelled (default 30s).
func WithDrainTimeout(d time.Duration) RunnerOption { return func(r *Runner) { r.drain = d } }

// WithLogger sets where the runner logs (default slog.Default()).
func WithLogger(logger *slog.Logger) RunnerOption { return func(r *Runner) { r.logger = logger } }

// RunnerStats counts the attempts a Runner finished.
type RunnerStats struct {
	Succeeded, Failed int64
	// Refused counts the attempts whose RUNNING report the server refused (they had timed out or
	// been cancelled meanwhile): their handlers were stopped and nothing final was reported.
	Refused int64
}

// Runner serves attempts from a WorkSource with a Handler.
type Runner struct {
	client      *Client
	source      WorkSource
	concurrency int
	drain       time.Duration
	logger      *slog.Logger
	succeeded   atomic.Int64
	failed      atomic.Int64
	refused     atomic.Int64
}

// NewRunner makes a runner that takes work from source and sends spans through client.
func NewRunner(client *Client, source WorkSource, opts ...RunnerOption) *Runner {
	r := &Runner{client: client, source: source, concurrency: 1, drain: 30 * time.Second, logger: slog.Default()}
	for _, opt := range opts {
		opt(r)
	}
	return r
}

// Stats returns how many attempts the runner finished so far.
func (r *Runner) Stats() RunnerStats {
	return RunnerStats{Succeeded: r.succeeded.Load(), Failed: r.failed.Load(), Refused: r.refused.Load()}
}

// Serve takes attempts and runs handler on each until ctx ends. Then it takes no more work (a
// [Drainer] source is drained and what it still holds is run), lets the running attempts finish
// (their contexts are cancelled after the drain timeout) and returns nil. It returns an error
// only when the work source fails for good (e.g. UNAUTHENTICATED).
func (r *Runner) Serve(ctx context.Context, handler Handler) error {
	// Attempts run on a context that outlives ctx by the drain timeout, so a stop request does not
	// cut short work that is nearly done.
	taskCtx, cancelTasks := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelTasks()
	drainer, drains := r.source.(Drainer)
	stopDrain := context.AfterFunc(ctx, func() {
		if drains {
			drainer.Drain()
		}
		timer := time.AfterFunc(r.drain, cancelTasks)
		context.AfterFunc(taskCtx, func() { timer.Stop() })
	})
	defer stopDrain()
	// A source that drains hands over what it already holds after the stop (work pushed to this
	// worker just before it); the runner takes that until the source says it is drained.
	takeCtx := ctx
	if drains {
		takeCtx = taskCtx
	}

	var wg sync.WaitGroup
	errs := make([]error, r.concurrency)
	for slot := range r.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				assignment, err := r.source.Next(takeCtx)
				if takeCtx.Err() != nil || errors.Is(err, ErrDrained) {
					return
				}
				if err != nil {
					errs[slot] = fmt.Errorf("agl: worker %q cannot take work: %w", r.source.WorkerID(), err)
					return
				}
				r.run(taskCtx, handler, assignment)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *Runner) run(ctx context.Context, handler Handler, assignment *Assignment) {
	task := NewTask(r.client, r.source, assignment)
	log := r.logger.With("rollout_id", task.RolloutID(), "attempt_id", task.AttemptID())
	// RUNNING goes out now and the handler starts at once, without waiting a durable round trip
	// for the ack. If the server refuses it (the attempt timed out or was cancelled meanwhile, or
	// the server is gone), the handler's context is cancelled with ErrNotStarted as its cause.
	// An attempt handed over RUNNING already (a Work stream's start_on_assignment) needs none.
	started := alreadyReported()
	if assignment.Rollout.GetAttempt().GetStatus() != aglv1.AttemptStatus_ATTEMPT_STATUS_RUNNING {
		started = reportSoon(ctx, r.source, r.client.address, task.RolloutID(), task.AttemptID(),
			aglv1.AttemptStatus_ATTEMPT_STATUS_RUNNING, nil)
	}
	task.started = started
	handlerCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() {
		select {
		case <-started.Done():
			if err := started.Err(); err != nil {
				stop(fmt.Errorf("%w: %w", ErrNotStarted, err))
			}
		case <-handlerCtx.Done():
		}
	}()
	err, stack := call(handlerCtx, handler, task)
	// The final report waits for RUNNING's outcome (Task.Finish does too), so the two reach the
	// store in order; an attempt whose start was refused gets no final report from the runner.
	if startErr := task.startErr(ctx); startErr != nil {
		// The attempt is not ours to run any more (timed out, cancelled) or the server is gone.
		log.Warn("agl: cannot start the attempt; its handler was stopped", "error", startErr)
		r.refused.Add(1)
		return
	}
	if task.Finished() {
		r.count(task)
		return
	}
	status := aglv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED
	if err != nil {
		status = aglv1.AttemptStatus_ATTEMPT_STATUS_FAILED
		if emitErr := task.Emit(ctx, ExceptionSpan(err, stack)); emitErr != nil {
			log.Warn("agl: cannot record the attempt's error", "error", emitErr)
		}
	}
	if finishErr := task.Finish(ctx, status, err); finishErr != nil {
		log.Warn("agl: finishing the attempt failed", "error", finishErr)
	} else if err != nil {
		log.Info("agl: attempt failed", "error", err)
	}
	r.count(task)
}

func (r *Runner) count(task *Task) {
	if task.Outcome() == aglv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED {
		r.succeeded.Add(1)
	} else {
		r.failed.Add(1)
	}
}

// call runs handler, turning a panic into an error with its stack.
func call(ctx context.Context, handler Handler, task *Task) (err error, stack string) {
	defer func() {
		if p := recover(); p != nil {
			err, stack = fmt.Errorf("panic: %v", p), string(debug.Stack())
		}
	}()
	return handler(ctx, task), ""
}

// ExceptionSpan records an error as an "agl.exception" span (OpenTelemetry's exception
// attributes); stack may be empty.
func ExceptionSpan(err error, stack string) *aglv1.Span {
	attrs := []*aglv1.KeyValue{Attr(AttrExceptionType, fmt.Sprintf("%T", err)), Attr(AttrExceptionMessage, err.Error())}
	if stack != "" {
		attrs = append(attrs, Attr(AttrExceptionStacktrace, stack))
	}
	span := NewSpan(SpanException, attrs...)
	span.Status = &aglv1.SpanStatus{Code: aglv1.SpanStatusCode_SPAN_STATUS_CODE_ERROR, Message: err.Error()}
	return span
}
