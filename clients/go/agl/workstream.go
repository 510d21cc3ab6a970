package agl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
)

// ErrDrained is what a drained work source's Next returns once it has handed over everything it
// was given: no more work comes from it.
var ErrDrained = errors.New("agl: the work source is drained; it hands out no more work")

// A Drainer is a [WorkSource] that can stop taking new work while the attempts it already handed
// over run on. When the context of [Runner.Serve] ends, the runner drains such a source and keeps
// calling Next until it returns [ErrDrained], so attempts the server pushed just before the stop
// are run, not dropped.
type Drainer interface {
	// Drain asks for no new work. Next then returns what the source holds, and ErrDrained once
	// the source holds nothing (nothing queued, nothing running).
	Drain()
}

// WorkStreamConfig configures a [WorkStreamSource]. The zero value works: a server-picked worker
// id, capacity 1, heartbeats every 10s, any work of the "default" queue of the client's namespace.
type WorkStreamConfig struct {
	// WorkerID is the worker's id; empty lets the server pick one (see [WorkStreamSource.WorkerID]).
	WorkerID string
	// Capacity is how many attempts the worker runs at once (default 1). Give a [Runner] the same
	// concurrency: attempts beyond it wait in the source while the server counts them as running.
	Capacity int
	// HeartbeatInterval is how often the worker says it is alive (default 10s). The server ends a
	// stream that is silent for three intervals and gives up the attempts it held. The first
	// heartbeat comes at a random point of the first interval, so that workers started together
	// do not all beat at once.
	HeartbeatInterval time.Duration
	// RetryDeadline is how long to keep reconnecting after the stream broke (zero: the client's
	// retry deadline, see [WithRetryDeadline]); after it, Next and Report fail for good.
	RetryDeadline time.Duration
	// Namespace is the namespace (experiment) the worker serves; empty: the client's (see
	// [WithNamespace]).
	Namespace string
	// Queues are the queues the worker takes work from; empty: "default".
	Queues []string
	// LabelSelector limits the work pushed to rollouts whose labels match: comma-separated
	// requirements that must all hold, "k=v", "k!=v", "k in (a,b)", "k notin (a,b)", "k", "!k"
	// (e.g. "lang=go"). Empty: any labels. The server refuses a malformed one (INVALID_ARGUMENT,
	// naming the bad part) and the source fails for good. Among the matching rollouts of its
	// queues the worker gets the highest priority first, then the oldest.
	LabelSelector string
	// AssignPreparing asks for attempts in PREPARING, which a [Runner] reports RUNNING when it
	// starts them. By default the source says start_on_assignment in its hello: a Runner starts
	// each attempt the moment it gets it, so the server hands it over RUNNING already and no
	// RUNNING report is sent (one message, its ack and a store write fewer per attempt). Set it
	// when attempts wait in the source before they start (a Runner with less concurrency than
	// Capacity), so their status says they have not started yet.
	AssignPreparing bool
	// Info is what the worker wants to be known by in its worker record (agent name, version, ...),
	// on top of host, pid and language, which the source fills in.
	Info map[string]any
	// Logger is where the source logs reconnects (default slog.Default()).
	Logger *slog.Logger
}

// WorkStreamSource takes work that agl-server pushes on a RunnerService Work stream: the server
// assigns an attempt (with its resources resolved) the moment one is queued and the worker has
// room, and notices the moment the worker goes away (the attempts it held become UNRESPONSIVE at
// once, and their rollouts are retried per their policy).
//
// The stream survives a server restart: the source reconnects with backoff, says hello again
// listing the attempts it still runs (so the new server watches them instead of giving them up)
// and resends every report the old stream did not acknowledge (reports are idempotent). Spans do
// not travel on this stream: [Task.Finish] waits for the acks of an attempt's spans on the
// client's span stream before it reports the final status.
//
// It is safe for concurrent use. Call [WorkStreamSource.Close] when done (a [Runner] does not):
// it waits for the acks of final reports and leaves cleanly.
type WorkStreamSource struct {
	client *Client
	runner aglv1.RunnerServiceClient
	cfg    WorkStreamConfig
	info   *structpb.Struct
	logger *slog.Logger

	startOnce sync.Once
	ctx       context.Context // the supervisor's life; cancelled by Close
	cancel    context.CancelFunc
	done      chan struct{} // closed when the supervisor has stopped
	welcomed  chan struct{} // closed at the first welcome
	welcome   sync.Once

	sendMu sync.Mutex // one writer on the stream at a time; taken before mu, never inside it

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change Next or Close may wait for
	workerID string
	stream   aglv1.RunnerService_WorkClient // the welcomed stream, nil while there is none
	queue    []*Assignment                  // assigned, not yet taken by Next
	held     map[string]string              // attempt id -> rollout id: assigned, not finally reported
	pending  map[reportKey]*pendingReport   // sent (or to send), not acknowledged
	seq      uint64
	streams  int
	draining bool
	closing  bool
	err      error // the failure that ended the source for good
}

type reportKey struct {
	attemptID string
	status    aglv1.AttemptStatus
}

type pendingReport struct {
	seq    uint64
	report *aglv1.AttemptReport
	done   chan struct{}
	ack    *aglv1.AttemptReportAck
	err    error
}

// NewWorkStreamSource prepares a Work stream for client's server. It connects on [Start] or on
// the first [WorkStreamSource.Next].
func NewWorkStreamSource(client *Client, cfg WorkStreamConfig) *WorkStreamSource {
	cfg.Capacity = max(1, cfg.Capacity)
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.RetryDeadline <= 0 {
		cfg.RetryDeadline = client.opts.retryDeadline
	}
	if cfg.Namespace == "" {
		cfg.Namespace = client.opts.namespace
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	info := map[string]any{"language": "go", "go": runtime.Version(), "pid": os.Getpid()}
	if host, err := os.Hostname(); err == nil {
		info["host"] = host
	}
	for k, v := range cfg.Info {
		info[k] = v
	}
	infoStruct, err := structpb.NewStruct(info)
	if err != nil {
		// Info holds values JSON cannot carry: keep the facts the source knows are plain.
		logger.Warn("agl: worker info dropped", "error", err)
		infoStruct, _ = structpb.NewStruct(map[string]any{"language": "go", "go": runtime.Version(), "pid": os.Getpid()})
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &WorkStreamSource{
		client: client, runner: aglv1.NewRunnerServiceClient(client.Conn()), cfg: cfg, info: infoStruct,
		logger: logger, ctx: ctx, cancel: cancel, done: make(chan struct{}), welcomed: make(chan struct{}),
		changed: make(chan struct{}), workerID: cfg.WorkerID,
		held: map[string]string{}, pending: map[reportKey]*pendingReport{},
	}
}

// WorkerID is the worker's id: the configured one, or the one the server picked once welcomed.
func (s *WorkStreamSource) WorkerID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.workerID
}

// Start opens the stream and returns once the server welcomed the worker, the source failed for
// good (a bad token, a server out of reach for the reconnect timeout) or ctx ended. Next calls it.
func (s *WorkStreamSource) Start(ctx context.Context) error {
	s.startOnce.Do(func() {
		go s.supervise()
		go s.heartbeats()
	})
	select {
	case <-s.welcomed:
		return nil
	case <-s.done:
		if err := s.failure(); err != nil {
			return err
		}
		return ErrDrained
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WorkStreamStats describes a WorkStreamSource, for monitoring and tests.
type WorkStreamStats struct {
	// Streams is how many streams the server welcomed: 1, plus one per reconnect.
	Streams int
	// Held is how many attempts the worker holds: assigned and not finally reported.
	Held int
	// Queued is how many of those Next has not handed out yet.
	Queued int
}

// Stats returns the source's counters.
func (s *WorkStreamSource) Stats() WorkStreamStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return WorkStreamStats{Streams: s.streams, Held: len(s.held), Queued: len(s.queue)}
}

// Next returns the next attempt the server assigned. After [WorkStreamSource.Drain] it returns
// what the source still holds, then [ErrDrained].
func (s *WorkStreamSource) Next(ctx context.Context) (*Assignment, error) {
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case len(s.queue) > 0:
			assignment := s.queue[0]
			s.queue = s.queue[1:]
			return assignment, nil
		case s.err != nil:
			return nil, s.err
		case s.closing || (s.draining && len(s.held) == 0):
			// Nothing queued and nothing running: no assignment can come any more.
			return nil, ErrDrained
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
			s.mu.Lock()
		case <-ctx.Done():
			s.mu.Lock()
			return nil, ctx.Err()
		}
	}
}

// Report sends an attempt's status on the stream and waits for the server's ack. A final status
// (SUCCEEDED, FAILED) frees one unit of capacity. If the stream breaks first, the report goes
// again on the next stream; if ctx ends first, Report returns ctx's error and the report is still
// delivered when it can be (Close waits for it).
func (s *WorkStreamSource) Report(
	ctx context.Context, rolloutID, attemptID string, st aglv1.AttemptStatus, metadata *structpb.Struct,
) error {
	return s.ReportSoon(ctx, rolloutID, attemptID, st, metadata).Wait(ctx)
}

// ReportSoon is Report without the wait: the report is on its way (or queued for the next
// stream) when it returns, and the [Reported] says what the server answered. Reports of one
// attempt reach the server in the order they were made and it applies them in that order. ctx
// is not used: the report is delivered whatever happens to it (Close waits for it).
func (s *WorkStreamSource) ReportSoon(
	_ context.Context, rolloutID, attemptID string, st aglv1.AttemptStatus, metadata *structpb.Struct,
) *Reported {
	op := fmt.Sprintf("report attempt %q of rollout %q as %s", attemptID, rolloutID, statusName(st))
	report := &aglv1.AttemptReport{RolloutId: rolloutID, AttemptId: attemptID, Status: st, Metadata: metadata}
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return reportedNow(err)
	}
	if s.closing {
		s.mu.Unlock()
		return reportedNow(&Error{Op: op, Address: s.client.address, Err: status.Error(codes.Unavailable, "the Work stream is closed")})
	}
	key := reportKey{attemptID, st}
	p, dup := s.pending[key]
	if !dup {
		s.seq++
		p = &pendingReport{seq: s.seq, report: report, done: make(chan struct{})}
		s.pending[key] = p
	}
	if final(st) {
		delete(s.held, attemptID)
		s.notifyLocked()
	}
	stream := s.stream
	s.mu.Unlock()
	if !dup && stream != nil {
		s.send(stream, &aglv1.WorkRequest{Kind: &aglv1.WorkRequest_Report{Report: report}})
	}
	return &Reported{done: p.done, op: op, addr: s.client.address, result: func() error {
		if p.err != nil {
			return p.err
		}
		if p.ack.GetCode() != 0 {
			return &Error{Op: op, Address: s.client.address, Err: status.Error(codes.Code(p.ack.GetCode()), p.ack.GetMessage())}
		}
		return nil
	}}
}

// Drain asks the server for no new work (capacity 0); the attempts the worker holds run on. A
// [Runner] calls it when its context ends.
func (s *WorkStreamSource) Drain() {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return
	}
	s.draining = true
	s.notifyLocked()
	stream := s.stream
	s.mu.Unlock()
	if stream != nil {
		s.send(stream, readyRequest(0))
	}
}

// Close leaves: it drains the source, waits (until ctx ends) for the acks of the reports sent so
// far, then ends the stream. Attempts still held then (assigned and never finished) are given up
// by the server as UNRESPONSIVE and retried per their policy. Close the source before its client.
func (s *WorkStreamSource) Close(ctx context.Context) error {
	started := false
	s.startOnce.Do(func() { close(s.done) }) // never started: nothing runs
	select {
	case <-s.done:
	default:
		started = true
	}
	var waitErr error
	if started {
		s.Drain()
		s.mu.Lock()
	wait:
		for len(s.pending) > 0 && s.err == nil {
			changed := s.changed
			s.mu.Unlock()
			select {
			case <-changed:
				s.mu.Lock()
			case <-s.done:
				s.mu.Lock()
				break wait
			case <-ctx.Done():
				s.mu.Lock()
				waitErr = fmt.Errorf("agl: closing the Work stream: %d reports not acknowledged: %w", len(s.pending), ctx.Err())
				break wait
			}
		}
		s.closing = true
		s.notifyLocked()
		stream := s.stream
		s.mu.Unlock()
		if stream != nil {
			// Half-close: the server ends the stream once it has seen everything sent before.
			s.sendMu.Lock()
			_ = stream.CloseSend()
			s.sendMu.Unlock()
			select {
			case <-s.done:
			case <-ctx.Done():
			}
		}
	}
	s.cancel()
	<-s.done
	s.mu.Lock()
	s.closing = true
	for key, p := range s.pending {
		p.err = &Error{Op: "report attempt " + key.attemptID, Address: s.client.address,
			Err: status.Error(codes.Unavailable, "the Work stream was closed before the report was acknowledged")}
		close(p.done)
		delete(s.pending, key)
	}
	s.notifyLocked()
	s.mu.Unlock()
	return waitErr
}
