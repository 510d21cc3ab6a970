package agl_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/agl-dev/agl/clients/go/agl"
	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
	"github.com/agl-dev/agl/clients/go/internal/testserver"
)

// The runner sends RUNNING (for an attempt that arrives PREPARING) without waiting for its ack
// and starts the handler at once; these tests check what can be observed of that from outside:
// the store records RUNNING before the final status of every attempt, a handler whose attempt the
// store refused to start is told to stop through its context, and an attempt a Work stream has
// claimed RUNNING gets no RUNNING report.

// sources makes each kind of work source the runner takes, for table tests.
var sources = map[string]func(client *agl.Client, workerID string, capacity int) agl.WorkSource{
	"stream": func(client *agl.Client, workerID string, capacity int) agl.WorkSource {
		return agl.NewWorkStreamSource(client, agl.WorkStreamConfig{WorkerID: workerID, Capacity: capacity})
	},
	"stream-preparing": func(client *agl.Client, workerID string, capacity int) agl.WorkSource {
		return agl.NewWorkStreamSource(client, agl.WorkStreamConfig{WorkerID: workerID, Capacity: capacity, AssignPreparing: true})
	},
	"dequeue": func(client *agl.Client, workerID string, _ int) agl.WorkSource {
		return agl.NewDequeueSource(client, workerID, time.Second)
	},
}

func closeAny(t *testing.T, source agl.WorkSource) {
	t.Helper()
	if stream, ok := source.(*agl.WorkStreamSource); ok {
		closeSource(t, stream)
	}
}

// events reads the store's event log (from its start) until it has every rollout's terminal
// event, and returns each rollout's events in log order.
func events(t *testing.T, ctx context.Context, client *agl.Client, ids ...string) map[string][]*aglv1.RolloutEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch, err := client.Store().WatchRollouts(ctx, &aglv1.WatchRolloutsRequest{RolloutIds: ids, AfterEventId: proto.Int64(0)})
	if err != nil {
		t.Fatal(err)
	}
	byRollout := map[string][]*aglv1.RolloutEvent{}
	ended := map[string]bool{}
	for len(ended) < len(ids) {
		resp, err := watch.Recv()
		if err != nil {
			t.Fatalf("watching %v: %v (terminal events seen for %v)", ids, err, ended)
		}
		for _, event := range resp.GetEvents() {
			byRollout[event.GetRolloutId()] = append(byRollout[event.GetRolloutId()], event)
			switch event.GetNewStatus() {
			case aglv1.RolloutStatus_ROLLOUT_STATUS_SUCCEEDED, aglv1.RolloutStatus_ROLLOUT_STATUS_FAILED,
				aglv1.RolloutStatus_ROLLOUT_STATUS_CANCELLED:
				ended[event.GetRolloutId()] = true
			}
		}
	}
	return byRollout
}

// Handlers that return at once make the final report follow RUNNING as closely as it can; the
// store still records RUNNING first for every attempt (a RUNNING that came after the final
// status would be refused, and the log would have no RUNNING event), whether the handler
// returns, fails or finishes the task itself.
func TestRunnerRecordsRunningBeforeTheFinalStatus(t *testing.T) {
	for name, newSource := range sources {
		t.Run(name, func(t *testing.T) {
			ctx := testContext(t)
			server := testserver.Start(t)
			client := newClient(t, server.Address)
			var ids []string
			for i := range 24 {
				ids = append(ids, fmt.Sprintf("ro-%02d", i))
			}
			enqueue(t, ctx, client, nil, ids...)
			source := newSource(client, "fast-"+name, 4)
			runner := agl.NewRunner(client, source, agl.WithConcurrency(4))
			serveCtx, stop := context.WithCancel(ctx)
			served := make(chan error, 1)
			go func() {
				served <- runner.Serve(serveCtx, func(ctx context.Context, task *agl.Task) error {
					switch task.Input().(string)[4] {
					case '1':
						return errors.New("gave up")
					case '2':
						return task.Finish(ctx, succeeded, nil)
					}
					return nil
				})
			}()
			rollouts := waitDone(t, ctx, client, ids...)
			stopServing(t, stop, served, source, runner, agl.RunnerStats{Succeeded: 21, Failed: 3})
			log := events(t, ctx, client, ids...)
			for _, id := range ids {
				attemptID := rollouts[id].GetAttempt().GetAttemptId()
				var order []aglv1.RolloutStatus
				ranAt, endedAt := -1, -1
				for i, event := range log[id] {
					order = append(order, event.GetNewStatus())
					switch event.GetNewStatus() {
					case aglv1.RolloutStatus_ROLLOUT_STATUS_RUNNING:
						if event.GetRollout().GetAttempt().GetAttemptId() == attemptID &&
							event.GetRollout().GetAttempt().GetStatus() == running {
							ranAt = i
						}
					case aglv1.RolloutStatus_ROLLOUT_STATUS_SUCCEEDED, aglv1.RolloutStatus_ROLLOUT_STATUS_FAILED:
						endedAt = i
					}
				}
				if ranAt < 0 || endedAt < ranAt {
					t.Errorf("%s: RUNNING not recorded before the final status: %v", id, order)
				}
			}
		})
	}
}

// refusing is a work source whose Next fails the attempt of one rollout in the store before
// handing it over, as the store's timeout watchdog or a cancellation would have: the runner's
// RUNNING report of it is then refused (FAILED_PRECONDITION). Everything else is the real source.
type refusing struct {
	agl.WorkSource
	client    *agl.Client
	rolloutID string
}

func (r refusing) Next(ctx context.Context) (*agl.Assignment, error) {
	assignment, err := r.WorkSource.Next(ctx)
	if err == nil && assignment.Rollout.GetRolloutId() == r.rolloutID {
		attemptID := assignment.Rollout.GetAttempt().GetAttemptId()
		_, err = r.client.UpdateAttempt(ctx, r.rolloutID, attemptID, aglv1.AttemptStatus_ATTEMPT_STATUS_FAILED)
	}
	return assignment, err
}

// The runner does not wait for RUNNING's ack, so the handler of an attempt the store refuses to
// start is running; it is told to stop through its context (cause ErrNotStarted, with the
// store's code), what it returns is not reported, and the worker's slot goes to the next attempt.
//
// A Work stream that has its attempts claimed RUNNING (the default) sends no RUNNING report, so
// there is nothing to refuse: such an attempt's final report is refused instead.
func TestRunnerStopsTheHandlerOfARefusedAttempt(t *testing.T) {
	for name, newSource := range sources {
		if name == "stream" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			ctx := testContext(t)
			server := testserver.Start(t)
			client := newClient(t, server.Address)
			enqueue(t, ctx, client, nil, "ro-refused")
			real := newSource(client, "refused-"+name, 1)
			// A wrapper hides the source's optional interfaces; keep the ones the runner uses.
			var source agl.WorkSource = refusing{WorkSource: real, client: client, rolloutID: "ro-refused"}
			if stream, ok := real.(*agl.WorkStreamSource); ok {
				source = struct {
					refusing
					agl.SoonReporter
					agl.Drainer
				}{source.(refusing), stream, stream}
			} else {
				source = struct {
					refusing
					agl.SoonReporter
				}{source.(refusing), real.(agl.SoonReporter)}
			}
			runner := agl.NewRunner(client, source, agl.WithConcurrency(1))
			causes := make(chan error, 1)
			serveCtx, stop := context.WithCancel(ctx)
			served := make(chan error, 1)
			go func() {
				served <- runner.Serve(serveCtx, func(ctx context.Context, task *agl.Task) error {
					if task.RolloutID() != "ro-refused" {
						return task.EmitReward(ctx, 1)
					}
					<-ctx.Done() // the test's deadline ends it too, and then the cause says so
					causes <- context.Cause(ctx)
					return errors.New("stopped: " + context.Cause(ctx).Error())
				})
			}()
			var cause error
			select {
			case cause = <-causes:
			case <-ctx.Done():
				t.Fatal("the handler of the refused attempt never ran")
			}
			if !errors.Is(cause, agl.ErrNotStarted) || status.Code(cause) != codes.FailedPrecondition {
				t.Fatalf("the refused attempt's handler stopped with cause %v, want ErrNotStarted (FAILED_PRECONDITION)", cause)
			}
			// The slot is free: the next rollout runs on this worker (capacity 1).
			enqueue(t, ctx, client, nil, "ro-after")
			after := waitDone(t, ctx, client, "ro-after")["ro-after"]
			if after.GetStatus() != aglv1.RolloutStatus_ROLLOUT_STATUS_SUCCEEDED {
				t.Fatalf("ro-after: %v", after.GetStatus())
			}
			stopServing(t, stop, served, real, runner, agl.RunnerStats{Succeeded: 1, Refused: 1})
			refused, err := client.GetRollout(ctx, "ro-refused")
			if err != nil {
				t.Fatal(err)
			}
			if refused.GetStatus() != aglv1.RolloutStatus_ROLLOUT_STATUS_FAILED ||
				refused.GetAttempt().GetStatus() != aglv1.AttemptStatus_ATTEMPT_STATUS_FAILED {
				t.Fatalf("ro-refused: %v, attempt %v", refused.GetStatus(), refused.GetAttempt().GetStatus())
			}
			for _, event := range events(t, ctx, client, "ro-refused")["ro-refused"] {
				if event.GetNewStatus() == aglv1.RolloutStatus_ROLLOUT_STATUS_RUNNING {
					t.Fatalf("ro-refused was recorded RUNNING: %v", event)
				}
			}
		})
	}
}

// stopServing ends Serve, closes the source and checks the runner's counts.
func stopServing(t *testing.T, stop func(), served <-chan error, source agl.WorkSource, runner *agl.Runner, want agl.RunnerStats) {
	t.Helper()
	stop()
	if err := <-served; err != nil {
		t.Fatalf("Serve after stop: %v", err)
	}
	closeAny(t, source)
	if stats := runner.Stats(); stats != want {
		t.Fatalf("stats %+v, want %+v", stats, want)
	}
}

const (
	preparingRollout = aglv1.RolloutStatus_ROLLOUT_STATUS_PREPARING
	runningRollout   = aglv1.RolloutStatus_ROLLOUT_STATUS_RUNNING
	succeededRollout = aglv1.RolloutStatus_ROLLOUT_STATUS_SUCCEEDED
)

// recording is a work source that notes every report the runner makes through it; everything
// else is the real source.
type recording struct {
	agl.WorkSource
	soon agl.SoonReporter
	mu   sync.Mutex
	sent map[string][]aglv1.AttemptStatus // rollout id -> statuses reported, in order
}

func (r *recording) note(rolloutID string, st aglv1.AttemptStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent[rolloutID] = append(r.sent[rolloutID], st)
}

func (r *recording) Report(ctx context.Context, rolloutID, attemptID string, st aglv1.AttemptStatus, metadata *structpb.Struct) error {
	r.note(rolloutID, st)
	return r.WorkSource.Report(ctx, rolloutID, attemptID, st, metadata)
}

func (r *recording) ReportSoon(ctx context.Context, rolloutID, attemptID string, st aglv1.AttemptStatus, metadata *structpb.Struct) *agl.Reported {
	r.note(rolloutID, st)
	return r.soon.ReportSoon(ctx, rolloutID, attemptID, st, metadata)
}

// A Work stream claims its attempts RUNNING unless AssignPreparing is set; the runner reports
// RUNNING only for an attempt that arrives PREPARING, so with the default no RUNNING report is
// sent and the rollout goes from QUEUING to RUNNING in the claim itself.
func TestRunnerReportsRunningOnlyForAttemptsThatArrivePreparing(t *testing.T) {
	for name, newSource := range sources {
		t.Run(name, func(t *testing.T) {
			ctx := testContext(t)
			server := testserver.Start(t)
			client := newClient(t, server.Address)
			ids := []string{"ro-a", "ro-b", "ro-c"}
			enqueue(t, ctx, client, nil, ids...)
			real := newSource(client, "rec-"+name, 1)
			source := &recording{WorkSource: real, soon: real.(agl.SoonReporter), sent: map[string][]aglv1.AttemptStatus{}}
			var wrapped agl.WorkSource = source
			if stream, ok := real.(*agl.WorkStreamSource); ok {
				wrapped = struct {
					*recording
					agl.Drainer
				}{source, stream}
			}
			runner := agl.NewRunner(client, wrapped, agl.WithConcurrency(1))
			serveCtx, stop := context.WithCancel(ctx)
			served := make(chan error, 1)
			arrived := make(chan aglv1.AttemptStatus, len(ids))
			go func() {
				served <- runner.Serve(serveCtx, func(ctx context.Context, task *agl.Task) error {
					arrived <- task.Rollout.GetAttempt().GetStatus()
					return task.EmitReward(ctx, 1)
				})
			}()
			waitDone(t, ctx, client, ids...)
			stopServing(t, stop, served, real, runner, agl.RunnerStats{Succeeded: int64(len(ids))})
			close(arrived)
			want, wantLog := aglv1.AttemptStatus_ATTEMPT_STATUS_PREPARING, []aglv1.RolloutStatus{queuing, preparingRollout, runningRollout, succeededRollout}
			wantSent := []aglv1.AttemptStatus{running, succeeded}
			if name == "stream" {
				want, wantLog = running, []aglv1.RolloutStatus{queuing, runningRollout, succeededRollout}
				wantSent = []aglv1.AttemptStatus{succeeded}
			}
			for got := range arrived {
				if got != want {
					t.Errorf("an attempt arrived %v, want %v", got, want)
				}
			}
			log := events(t, ctx, client, ids...)
			for _, id := range ids {
				if fmt.Sprint(source.sent[id]) != fmt.Sprint(wantSent) {
					t.Errorf("%s: the runner reported %v, want %v", id, source.sent[id], wantSent)
				}
				var order []aglv1.RolloutStatus
				for _, event := range log[id] {
					order = append(order, event.GetNewStatus())
				}
				if fmt.Sprint(order) != fmt.Sprint(wantLog) {
					t.Errorf("%s: statuses %v, want %v", id, order, wantLog)
				}
			}
		})
	}
}
