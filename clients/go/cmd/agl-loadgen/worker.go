package main

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

type reportKey struct {
	attemptID string
	status    aglv1.AttemptStatus
}

// worker is one Work stream with a no-op agent. Its receive goroutine does all the work: it sends
// the reports as assignments and acks arrive, so a worker costs one goroutine (plus one for
// heartbeats) and no channel hops.
type worker struct {
	f    *fleet
	id   string
	conn *grpc.ClientConn

	cancel   context.CancelFunc
	sendMu   sync.Mutex // the receive and heartbeat goroutines both send
	stream   aglv1.RunnerService_WorkClient
	stopping atomic.Bool

	openAt, welcomeAt time.Time // written before welcomed is closed
	welcomed, ended   chan struct{}
	failed            atomic.Bool  // the stream ended with an error before the run closed it
	holding           atomic.Int64 // attempts assigned and not finally acknowledged

	sentMu sync.Mutex // with -hold, final reports are sent from timers
	sent   map[reportKey]time.Time
}

var loggedErrors atomic.Int32

// run serves the stream until it ends; ctx is the worker's own (w.cancel cancels it).
func (w *worker) run(ctx context.Context) {
	defer close(w.ended)
	defer w.cancel()
	w.openAt = time.Now()
	stream, err := aglv1.NewRunnerServiceClient(w.conn).Work(ctx)
	if err != nil {
		w.end(err)
		return
	}
	w.sendMu.Lock()
	w.stream = stream
	w.sendMu.Unlock()
	hello := &aglv1.WorkerHello{
		WorkerId: w.id, Capacity: int32(w.f.cfg.capacity), HeartbeatInterval: durationpb.New(w.f.cfg.heartbeat),
		Namespace: w.f.cfg.namespace, StartOnAssignment: w.f.cfg.startOnAssign, Info: &structpb.Struct{Fields: map[string]*structpb.Value{
			"agent": structpb.NewStringValue("agl-loadgen"),
		}},
	}
	if !w.send(&aglv1.WorkRequest{Kind: &aglv1.WorkRequest_Hello{Hello: hello}}) {
		w.end(errors.New("cannot send hello"))
		return
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			w.end(err)
			return
		}
		now := time.Now()
		switch kind := msg.GetKind().(type) {
		case *aglv1.WorkResponse_Welcome:
			w.welcomeAt = now
			close(w.welcomed)
			go w.heartbeats(ctx)
		case *aglv1.WorkResponse_Assignment:
			w.holding.Add(1)
			w.f.onAssignment(kind.Assignment, now)
			attempt := kind.Assignment.GetRollout().GetAttempt()
			rolloutID, attemptID := attempt.GetRolloutId(), attempt.GetAttemptId()
			switch {
			case w.f.cfg.hold > 0:
				if w.f.cfg.runningReport && attempt.GetStatus() != aglv1.AttemptStatus_ATTEMPT_STATUS_RUNNING {
					w.report(rolloutID, attemptID, aglv1.AttemptStatus_ATTEMPT_STATUS_RUNNING)
				}
				// Uniform over [hold/2, 3hold/2]: agents' times vary, and equal ones would send the
				// final reports of a batch of assignments in one burst.
				time.AfterFunc(w.f.cfg.hold/2+rand.N(w.f.cfg.hold), func() {
					w.report(rolloutID, attemptID, aglv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED)
				})
			case !w.f.cfg.runningReport || attempt.GetStatus() == aglv1.AttemptStatus_ATTEMPT_STATUS_RUNNING:
				w.report(rolloutID, attemptID, aglv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED)
			case w.f.cfg.runningWait:
				w.report(rolloutID, attemptID, aglv1.AttemptStatus_ATTEMPT_STATUS_RUNNING) // SUCCEEDED after its ack
			default:
				// Pipelined: both reports back to back; the server applies one attempt's reports in
				// the order they came, so RUNNING is recorded first.
				w.report(rolloutID, attemptID, aglv1.AttemptStatus_ATTEMPT_STATUS_RUNNING)
				w.report(rolloutID, attemptID, aglv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED)
			}
		case *aglv1.WorkResponse_ReportAck:
			ack := kind.ReportAck
			key := reportKey{ack.GetAttemptId(), ack.GetStatus()}
			w.sentMu.Lock()
			sentAt, ok := w.sent[key]
			delete(w.sent, key)
			w.sentMu.Unlock()
			if !ok {
				sentAt = now
			}
			w.f.onAck(ack, now.Sub(sentAt))
			switch {
			case ack.GetStatus() != aglv1.AttemptStatus_ATTEMPT_STATUS_RUNNING:
				w.holding.Add(-1) // a final ack
			case !w.f.cfg.runningWait || w.f.cfg.hold > 0:
				// Pipelined (the final report went with RUNNING) or held (it goes when the agent is
				// done): the final report's ack ends the attempt.
			case ack.GetCode() == 0:
				w.report(ack.GetRolloutId(), ack.GetAttemptId(), aglv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED)
			default:
				// A refused RUNNING: the attempt is not ours to run any more.
				w.holding.Add(-1)
			}
		}
	}
}

func (w *worker) end(err error) {
	if errors.Is(err, io.EOF) || w.stopping.Load() {
		return
	}
	w.failed.Store(true)
	if loggedErrors.Add(1) <= 5 {
		logf("worker %s: stream ended: %v", w.id, err)
	}
}

func (w *worker) report(rolloutID, attemptID string, status aglv1.AttemptStatus) {
	w.sentMu.Lock()
	w.sent[reportKey{attemptID, status}] = time.Now()
	w.sentMu.Unlock()
	w.send(&aglv1.WorkRequest{Kind: &aglv1.WorkRequest_Report{Report: &aglv1.AttemptReport{
		RolloutId: rolloutID, AttemptId: attemptID, Status: status,
	}}})
}

func (w *worker) send(req *aglv1.WorkRequest) bool {
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	if w.stream == nil {
		return false
	}
	return w.stream.Send(req) == nil
}

func (w *worker) heartbeats(ctx context.Context) {
	// The first at a random point of the first interval, as the agl package's workers do: a fleet
	// started at once would otherwise beat in the same instant every interval.
	timer := time.NewTimer(rand.N(w.f.cfg.heartbeat))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			timer.Reset(w.f.cfg.heartbeat)
			if w.stopping.Load() {
				return
			}
			w.send(&aglv1.WorkRequest{Kind: &aglv1.WorkRequest_Heartbeat{Heartbeat: &aglv1.WorkerHeartbeat{}}})
		}
	}
}

func (w *worker) closeSend() {
	w.stopping.Store(true)
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	if w.stream != nil {
		_ = w.stream.CloseSend()
	}
}

func readyRequest(capacity int32) *aglv1.WorkRequest {
	return &aglv1.WorkRequest{Kind: &aglv1.WorkRequest_Ready{Ready: &aglv1.WorkerReady{Capacity: capacity}}}
}
