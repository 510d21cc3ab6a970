package main

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
	"github.com/agl-dev/agl/clients/go/internal/wirecodec"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

const maxMessageBytes = 64 << 20

// fleet is the run's connections, workers and what they observed. The workers call its methods
// from their receive goroutines, so everything here is safe for concurrent use.
type fleet struct {
	cfg   config
	conns []*grpc.ClientConn
	// A connection of its own for enqueues and queries, so they do not queue behind the streams.
	control *grpc.ClientConn
	store   aglv1.LightningStoreServiceClient
	workers []*worker

	// Counters of the whole run.
	assigned atomic.Int64
	// Assignments whose attempt arrived RUNNING (start_on_assignment honoured).
	assignedRunning atomic.Int64
	finalAcked      atomic.Int64 // final reports acknowledged with code 0
	failedAcks      atomic.Int64 // acks with a code other than 0, of any report
	lastFinalNs     atomic.Int64 // when the latest final ack arrived, ns since base
	base            time.Time

	// When set, a final ack that makes finalAcked reach target closes reached.
	target  int64
	reached chan struct{}
	once    sync.Once

	mu sync.Mutex
	// rollout id -> times it was assigned (exactly-once check).
	seen map[string]int
	// Latencies in seconds; collected only while measuring is set.
	measuring  atomic.Bool
	ackRunning []float64
	ackFinal   []float64
	dispatch   []float64
	// welcome: when (ns since base) the dispatch-probe rollout with input i was enqueued; 0 unset.
	probeSent []atomic.Int64
}

type bearer struct{ token string }

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity is false: the bench talks to a loopback server in plaintext.
func (bearer) RequireTransportSecurity() bool { return false }

func newFleet(cfg config) (*fleet, error) {
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDisableRetry(),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes),
			wirecodec.CallOption(), // as the agl client encodes: generated code, no reflection
		),
	}
	if cfg.token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearer{cfg.token}))
	}
	f := &fleet{cfg: cfg, base: time.Now(), seen: map[string]int{}, reached: make(chan struct{})}
	for i := 0; i <= cfg.conns; i++ {
		conn, err := grpc.NewClient(cfg.server, dial...)
		if err != nil {
			f.closeConns()
			return nil, fmt.Errorf("cannot use the address %q: %w", cfg.server, err)
		}
		if i == cfg.conns {
			f.control = conn
		} else {
			f.conns = append(f.conns, conn)
		}
	}
	f.store = aglv1.NewLightningStoreServiceClient(f.control)
	// Connect every connection before any clock starts: the welcome time is the server's, not TCP's.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, conn := range append([]*grpc.ClientConn{f.control}, f.conns...) {
		if err := waitReady(ctx, conn); err != nil {
			f.closeConns()
			return nil, fmt.Errorf("cannot connect to %s: %w", cfg.server, err)
		}
	}
	return f, nil
}

func waitReady(ctx context.Context, conn *grpc.ClientConn) error {
	conn.Connect()
	for {
		state := conn.GetState()
		if state == connectivity.Ready {
			return nil
		}
		if !conn.WaitForStateChange(ctx, state) {
			return ctx.Err()
		}
	}
}

func (f *fleet) closeConns() {
	for _, conn := range f.conns {
		_ = conn.Close()
	}
	if f.control != nil {
		_ = f.control.Close()
	}
}

func (f *fleet) since() int64 { return int64(time.Since(f.base)) }

// onAssignment is called by a worker for every assignment, as it arrives.
func (f *fleet) onAssignment(a *aglv1.AttemptAssignment, arrived time.Time) {
	f.assigned.Add(1)
	rollout := a.GetRollout()
	if rollout.GetAttempt().GetStatus() == aglv1.AttemptStatus_ATTEMPT_STATUS_RUNNING {
		f.assignedRunning.Add(1)
	}
	var probe float64 = -1
	if f.probeSent != nil {
		probe = rollout.GetInput().GetNumberValue()
	}
	f.mu.Lock()
	f.seen[rollout.GetRolloutId()]++
	if probe >= 0 && int(probe) < len(f.probeSent) {
		if sent := f.probeSent[int(probe)].Load(); sent > 0 {
			f.dispatch = append(f.dispatch, float64(int64(arrived.Sub(f.base))-sent)/1e9)
		}
	}
	f.mu.Unlock()
}

// onAck is called by a worker for every report ack with the time since its report was sent.
func (f *fleet) onAck(ack *aglv1.AttemptReportAck, latency time.Duration) {
	if ack.GetCode() != 0 {
		f.failedAcks.Add(1)
	}
	running := ack.GetStatus() == aglv1.AttemptStatus_ATTEMPT_STATUS_RUNNING
	if f.measuring.Load() {
		f.mu.Lock()
		if running {
			f.ackRunning = append(f.ackRunning, latency.Seconds())
		} else {
			f.ackFinal = append(f.ackFinal, latency.Seconds())
		}
		f.mu.Unlock()
	}
	if !running && ack.GetCode() == 0 {
		f.lastFinalNs.Store(f.since())
		if n := f.finalAcked.Add(1); f.target > 0 && n == f.target {
			f.once.Do(func() { close(f.reached) })
		}
	}
}

// connect opens every worker's stream at once and waits up to -welcome-timeout for the welcomes.
func (f *fleet) connect(ctx context.Context) welcomeStats {
	f.workers = make([]*worker, f.cfg.workers)
	for i := range f.workers {
		f.workers[i] = &worker{
			f: f, id: fmt.Sprintf("%s-w%05d", f.cfg.namespace, i), conn: f.conns[i%len(f.conns)],
			welcomed: make(chan struct{}), ended: make(chan struct{}), sent: map[reportKey]time.Time{},
		}
	}
	start := time.Now()
	for _, w := range f.workers {
		wctx, cancel := context.WithCancel(ctx)
		w.cancel = cancel
		go w.run(wctx)
	}
	deadline := time.NewTimer(f.cfg.welcomeTimeout)
	defer deadline.Stop()
	stats := welcomeStats{}
	for _, w := range f.workers {
		select {
		case <-w.welcomed:
		case <-w.ended:
		case <-deadline.C:
			stats.timedOut = true
		}
		if stats.timedOut {
			break
		}
	}
	stats.waited = time.Since(start)
	for _, w := range f.workers {
		select {
		case <-w.welcomed:
			at := w.welcomeAt.Sub(start)
			stats.latencies = append(stats.latencies, w.welcomeAt.Sub(w.openAt).Seconds())
			stats.welcomed++
			stats.last = max(stats.last, at)
			if at <= 5*time.Second {
				stats.within5s++
			}
		default:
			select {
			case <-w.ended:
				stats.failed++
			default:
			}
		}
	}
	if stats.welcomed < len(f.workers) {
		logf("%d of %d streams welcomed within %s (%d ended)", stats.welcomed, len(f.workers), stats.waited.Round(time.Millisecond), stats.failed)
	} else {
		logf("%d streams welcomed in %s", stats.welcomed, stats.last.Round(time.Millisecond))
	}
	return stats
}

// leave drains every worker (capacity 0), waits until no attempt is held or timeout, then closes
// every stream and waits for them to end.
func (f *fleet) leave(timeout time.Duration) (held int64) {
	for _, w := range f.workers {
		w.send(readyRequest(0))
	}
	deadline := time.Now().Add(timeout)
	for f.held() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	held = f.held()
	for _, w := range f.workers {
		w.closeSend()
	}
	ends := time.After(10 * time.Second)
	for _, w := range f.workers {
		select {
		case <-w.ended:
		case <-ends:
			w.cancel()
		}
	}
	return held
}

// held is the attempts assigned and not yet finally acknowledged (or refused).
func (f *fleet) held() int64 {
	var n int64
	for _, w := range f.workers {
		n += w.holding.Load()
	}
	return n
}

func (f *fleet) streamErrors() int {
	n := 0
	for _, w := range f.workers {
		if w.failed.Load() {
			n++
		}
	}
	return n
}

// enqueue creates rollouts with inputs first..first+count-1 in one call; returns their ids.
func (f *fleet) enqueue(ctx context.Context, first, count int) ([]string, error) {
	specs := make([]*aglv1.RolloutSpec, count)
	for i := range specs {
		specs[i] = &aglv1.RolloutSpec{Input: structpb.NewNumberValue(float64(first + i))}
	}
	call, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	resp, err := f.store.EnqueueRollouts(call, &aglv1.EnqueueRolloutsRequest{Rollouts: specs, Namespace: f.cfg.namespace})
	if err != nil {
		return nil, fmt.Errorf("EnqueueRollouts of %d: %w", count, err)
	}
	if len(resp.GetErrors()) > 0 {
		return nil, fmt.Errorf("EnqueueRollouts of %d: %d items failed, first: %v", count, len(resp.GetErrors()), resp.GetErrors()[0])
	}
	ids := make([]string, len(resp.GetRollouts()))
	for i, r := range resp.GetRollouts() {
		ids[i] = r.GetRolloutId()
	}
	return ids, nil
}

// duplicates is how many assignments beyond the first each rollout got, summed.
func (f *fleet) duplicates() (dups, unique int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.seen {
		dups += n - 1
	}
	return dups, len(f.seen)
}

type welcomeStats struct {
	welcomed, failed, within5s int
	timedOut                   bool
	last, waited               time.Duration
	latencies                  []float64
}

func (s welcomeStats) fields(out map[string]any) {
	out["welcomed"] = s.welcomed
	out["welcome_failed"] = s.failed
	out["welcome_timed_out"] = s.timedOut
	out["welcomed_within_5s"] = s.within5s
	out["welcome_waited_s"] = s.waited.Seconds()
	if s.timedOut || s.failed > 0 {
		out["welcome_all_s"] = nil
	} else {
		out["welcome_all_s"] = s.last.Seconds()
	}
	addPercentiles(out, "welcome", s.latencies)
}

// percentile as bench/common.py computes it: the nearest rank, rounded.
func percentile(values []float64, q float64) float64 {
	if len(values) == 0 {
		return math.NaN()
	}
	sorted := append([]float64(nil), values...)
	sort.Float64s(sorted)
	index := int(math.Round(q / 100 * float64(len(sorted)-1)))
	return sorted[min(len(sorted)-1, max(0, index))]
}

// addPercentiles sets <name>_count, _p50_ms, _p99_ms and _max_ms (null when there are none).
func addPercentiles(out map[string]any, name string, seconds []float64) {
	out[name+"_count"] = len(seconds)
	for _, q := range []struct {
		key string
		q   float64
	}{{"p50", 50}, {"p99", 99}, {"max", 100}} {
		v := percentile(seconds, q.q)
		if math.IsNaN(v) {
			out[name+"_"+q.key+"_ms"] = nil
		} else {
			out[name+"_"+q.key+"_ms"] = v * 1e3
		}
	}
}
