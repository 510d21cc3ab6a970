package agl

// The connection side of a WorkStreamSource: the supervisor that opens the stream (again after a
// failure, with backoff), the loop that receives assignments and acks, heartbeats and sends.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
)

var errWorkStreamEnded = status.Error(codes.Unavailable, "agl-server ended the Work stream")

func (s *WorkStreamSource) supervise() {
	defer close(s.done)
	o := outage{deadline: s.cfg.RetryDeadline}
	for {
		welcomed, err := s.serve()
		if s.ctx.Err() != nil || s.isClosing() {
			return
		}
		// The retry policy (retry.go); ABORTED, not retried, means another process took this worker id over.
		if code := status.Code(err); !streamRetryable(code) {
			s.fail(&Error{Op: fmt.Sprintf("serve worker %q on the Work stream", s.WorkerID()), Address: s.client.address, Err: err})
			return
		}
		if welcomed { // that stream had worked: a new outage starts now
			o.succeeded()
		}
		wait, ok := o.failed()
		if !ok {
			s.fail(&Error{
				Op: fmt.Sprintf("reach the Work stream for %s (the attempts worker %q held are retried elsewhere)",
					s.cfg.RetryDeadline, s.WorkerID()),
				Address: s.client.address, Err: err,
			})
			return
		}
		s.logger.Warn("agl: the Work stream broke; reconnecting", "error", err, "in", wait)
		select {
		case <-time.After(wait):
		case <-s.ctx.Done():
			return
		}
	}
}

// serve runs one stream: hello, welcome, resend, then assignments and acks until it ends.
func (s *WorkStreamSource) serve() (welcomed bool, err error) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	stream, err := s.runner.Work(ctx)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	hello := &aglv1.WorkerHello{
		WorkerId: s.workerID, Capacity: int32(s.cfg.Capacity),
		HeartbeatInterval: durationpb.New(s.cfg.HeartbeatInterval), Info: s.info,
		Namespace: s.cfg.Namespace, Queues: s.cfg.Queues, LabelSelector: s.cfg.LabelSelector,
		StartOnAssignment: !s.cfg.AssignPreparing,
	}
	if s.draining {
		hello.Capacity = 0
	}
	for attemptID, rolloutID := range s.held {
		hello.ActiveAttempts = append(hello.ActiveAttempts, &aglv1.AttemptRef{RolloutId: rolloutID, AttemptId: attemptID})
	}
	s.mu.Unlock()
	if err := stream.Send(&aglv1.WorkRequest{Kind: &aglv1.WorkRequest_Hello{Hello: hello}}); err != nil {
		return false, recvStatus(stream) // Send says io.EOF when the call ended; Recv says why
	}
	first, err := stream.Recv()
	if err != nil {
		return false, streamEnd(err)
	}
	welcome := first.GetWelcome()
	if welcome == nil {
		return false, status.Errorf(codes.FailedPrecondition, "agl-server answered hello with %T, not a welcome", first.GetKind())
	}

	// Reports the previous stream did not acknowledge go first, in the order they were made;
	// sendMu keeps new reports from overtaking them.
	s.sendMu.Lock()
	s.mu.Lock()
	s.workerID = welcome.GetWorkerId()
	s.stream = stream
	s.streams++
	resend := make([]*pendingReport, 0, len(s.pending))
	for _, p := range s.pending {
		resend = append(resend, p)
	}
	draining := s.draining
	s.notifyLocked()
	s.mu.Unlock()
	slices.SortFunc(resend, func(a, b *pendingReport) int { return int(a.seq) - int(b.seq) })
	for _, p := range resend {
		_ = stream.Send(&aglv1.WorkRequest{Kind: &aglv1.WorkRequest_Report{Report: p.report}})
	}
	if draining {
		_ = stream.Send(readyRequest(0))
	}
	s.sendMu.Unlock()
	s.welcome.Do(func() { close(s.welcomed) })
	defer func() {
		s.mu.Lock()
		if s.stream == stream {
			s.stream = nil
		}
		s.mu.Unlock()
	}()

	for {
		resp, err := stream.Recv()
		if err != nil {
			return true, streamEnd(err)
		}
		switch kind := resp.GetKind().(type) {
		case *aglv1.WorkResponse_Assignment:
			s.assigned(kind.Assignment)
		case *aglv1.WorkResponse_ReportAck:
			s.acknowledged(stream, kind.ReportAck)
		}
	}
}

func (s *WorkStreamSource) assigned(a *aglv1.AttemptAssignment) {
	rollout := a.GetRollout()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held[rollout.GetAttempt().GetAttemptId()] = rollout.GetRolloutId()
	s.queue = append(s.queue, &Assignment{Rollout: rollout, Resources: a.GetResources()})
	s.notifyLocked()
}

func (s *WorkStreamSource) acknowledged(stream aglv1.RunnerService_WorkClient, ack *aglv1.AttemptReportAck) {
	s.mu.Lock()
	key := reportKey{ack.GetAttemptId(), ack.GetStatus()}
	p, ok := s.pending[key]
	if ok {
		delete(s.pending, key)
		p.ack = ack
		close(p.done)
	}
	// The store refused to start an attempt (it timed out, was cancelled): it is not the worker's
	// to run, yet the server counts it against the capacity until a final report frees it.
	_, held := s.held[ack.GetAttemptId()]
	release := ok && ack.GetCode() != 0 && ack.GetStatus() == aglv1.AttemptStatus_ATTEMPT_STATUS_RUNNING && held
	s.notifyLocked()
	s.mu.Unlock()
	if release {
		// Fire and forget: the server frees the slot on receipt, whatever the store then says.
		go func() {
			_ = s.Report(s.ctx, ack.GetRolloutId(), ack.GetAttemptId(), aglv1.AttemptStatus_ATTEMPT_STATUS_FAILED,
				&structpb.Struct{Fields: map[string]*structpb.Value{
					"error": structpb.NewStringValue("the store refused to start the attempt: " + ack.GetMessage()),
				}})
		}()
	}
}

// send writes on stream unless it is no longer the current one (then the next stream resends).
func (s *WorkStreamSource) send(stream aglv1.RunnerService_WorkClient, req *aglv1.WorkRequest) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	current := s.stream == stream
	s.mu.Unlock()
	if current {
		_ = stream.Send(req) // an error means the stream broke: the supervisor reconnects and resends
	}
}

func (s *WorkStreamSource) heartbeats() {
	// The first heartbeat comes at a random point of the first interval. Workers started together
	// (a launcher starting a fleet) would otherwise beat in the same instant every interval, and
	// each beat is a store write: 1,000 at once held dispatch back for tens of milliseconds.
	timer := time.NewTimer(rand.N(s.cfg.HeartbeatInterval))
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			timer.Reset(s.cfg.HeartbeatInterval)
		case <-s.ctx.Done():
			return
		case <-s.done:
			return
		}
		s.mu.Lock()
		stream, running := s.stream, len(s.held)
		s.mu.Unlock()
		if stream == nil {
			continue
		}
		stats := &structpb.Struct{Fields: map[string]*structpb.Value{"running_attempts": structpb.NewNumberValue(float64(running))}}
		s.send(stream, &aglv1.WorkRequest{Kind: &aglv1.WorkRequest_Heartbeat{Heartbeat: &aglv1.WorkerHeartbeat{Stats: stats}}})
	}
}

func (s *WorkStreamSource) fail(err error) {
	s.logger.Error("agl: the Work stream failed for good", "error", err)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
	for key, p := range s.pending {
		p.err = err
		close(p.done)
		delete(s.pending, key)
	}
	s.notifyLocked()
}

func (s *WorkStreamSource) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *WorkStreamSource) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func (s *WorkStreamSource) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func readyRequest(capacity int32) *aglv1.WorkRequest {
	return &aglv1.WorkRequest{Kind: &aglv1.WorkRequest_Ready{Ready: &aglv1.WorkerReady{Capacity: capacity}}}
}

func final(st aglv1.AttemptStatus) bool {
	return st == aglv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED || st == aglv1.AttemptStatus_ATTEMPT_STATUS_FAILED
}

// streamEnd turns the end of a Recv into the stream's status: io.EOF is the server ending the
// stream with OK, which for a worker still serving means "go elsewhere" (reconnect).
func streamEnd(err error) error {
	if isEOF(err) {
		return errWorkStreamEnded
	}
	return err
}

func recvStatus(stream aglv1.RunnerService_WorkClient) error {
	for {
		if _, err := stream.Recv(); err != nil {
			return streamEnd(err)
		}
	}
}
