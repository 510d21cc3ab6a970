package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
)

// drainTimeout bounds how long a scenario waits for attempts still held at its end.
const drainTimeout = 30 * time.Second

func (f *fleet) common(out map[string]any, held int64) {
	out["completed"] = f.finalAcked.Load()
	out["assigned"] = f.assigned.Load()
	out["failed_acks"] = f.failedAcks.Load()
	out["stream_errors"] = f.streamErrors()
	out["held_at_end"] = held
	dups, unique := f.duplicates()
	out["duplicates"] = dups
	out["unique_assigned"] = unique
	addPercentiles(out, "ack_running", f.ackRunning)
	addPercentiles(out, "ack_final", f.ackFinal)
}

// waitFor polls until done() or timeout; false on timeout.
func waitFor(timeout time.Duration, done func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// runWelcome opens every stream at once, then measures dispatch latency while they stay open.
func runWelcome(ctx context.Context, f *fleet) (map[string]any, error) {
	out := map[string]any{}
	probes := max(1, int(f.cfg.rate*f.cfg.duration.Seconds()))
	f.probeSent = make([]atomic.Int64, probes)
	f.connect(ctx).fields(out)

	logf("enqueueing %d single rollouts at %g/s with %d streams open", probes, f.cfg.rate, len(f.workers))
	f.measuring.Store(true)
	ticker := time.NewTicker(time.Duration(float64(time.Second) / f.cfg.rate))
	var wg sync.WaitGroup
	var enqueueErrors atomic.Int64
	started := time.Now()
	for i := range probes {
		<-ticker.C
		wg.Add(1)
		go func() { // open loop: a slow call does not delay the next one
			defer wg.Done()
			f.probeSent[i].Store(f.since())
			if _, err := f.enqueue(ctx, i, 1); err != nil {
				if enqueueErrors.Add(1) <= 3 {
					logf("%v", err)
				}
			}
		}()
	}
	ticker.Stop()
	wg.Wait()
	out["dispatch_phase_s"] = time.Since(started).Seconds()
	expected := int64(probes) - enqueueErrors.Load()
	out["dispatch_all_finished"] = waitFor(drainTimeout, func() bool { return f.finalAcked.Load() >= expected })
	f.measuring.Store(false)
	held := f.leave(drainTimeout)
	f.mu.Lock()
	addPercentiles(out, "dispatch", f.dispatch)
	f.mu.Unlock()
	out["dispatch_enqueued"] = probes
	out["enqueue_errors"] = enqueueErrors.Load()
	f.common(out, held)
	out["dispatch_missing"] = int64(probes) - int64(out["unique_assigned"].(int))
	return out, nil
}

// runLargeBatch enqueues -tasks in -batch calls to -workers workers and checks exactly-once.
func runLargeBatch(ctx context.Context, f *fleet) (map[string]any, error) {
	out := map[string]any{"tasks": f.cfg.tasks, "batch": f.cfg.batch}
	f.target = int64(f.cfg.tasks)
	f.connect(ctx).fields(out)

	logf("enqueueing %d rollouts in batches of %d", f.cfg.tasks, f.cfg.batch)
	f.measuring.Store(true)
	started := time.Now()
	startNs := f.since()
	ids := make([]string, 0, f.cfg.tasks)
	var calls []float64
	for first := 0; first < f.cfg.tasks; first += f.cfg.batch {
		callStarted := time.Now()
		got, err := f.enqueue(ctx, first, min(f.cfg.batch, f.cfg.tasks-first))
		if err != nil {
			return nil, err
		}
		calls = append(calls, time.Since(callStarted).Seconds())
		ids = append(ids, got...)
	}
	out["enqueue_s"] = time.Since(started).Seconds()
	addPercentiles(out, "enqueue_call", calls)
	logf("enqueued in %s; waiting for the reports", time.Since(started).Round(time.Millisecond))
	timedOut := false
	select {
	case <-f.reached:
	case <-time.After(f.cfg.timeout - time.Since(started)):
		timedOut = true
		logf("timed out after %s: %d of %d acknowledged", f.cfg.timeout, f.finalAcked.Load(), f.cfg.tasks)
	}
	f.measuring.Store(false)
	completed := f.finalAcked.Load()
	elapsed := float64(f.lastFinalNs.Load()-startNs) / 1e9
	if timedOut {
		elapsed = time.Since(started).Seconds()
	}
	out["timed_out"] = timedOut
	out["elapsed_s"] = elapsed
	out["rollouts_per_s"] = float64(completed) / elapsed
	held := f.leave(drainTimeout)
	f.common(out, held)

	f.mu.Lock()
	missing := 0
	for _, id := range ids {
		if f.seen[id] == 0 {
			missing++
		}
	}
	f.mu.Unlock()
	out["missing"] = missing
	verified, bad, err := f.verify(ctx, ids)
	if err != nil {
		return nil, err
	}
	out["verified_succeeded_one_attempt"] = verified
	out["verify_bad"] = bad
	out["exactly_once"] = !timedOut && missing == 0 && out["duplicates"].(int) == 0 &&
		f.failedAcks.Load() == 0 && verified == f.cfg.tasks && bad == 0
	return out, nil
}

// verify reads every rollout of the namespace (QueryRollouts, paged by rollout id) and counts
// those of ids that are SUCCEEDED with exactly one attempt, itself SUCCEEDED; bad counts the rest.
func (f *fleet) verify(ctx context.Context, ids []string) (verified, bad int, err error) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	const page = 1000
	for offset := 0; ; offset += page {
		call, cancel := context.WithTimeout(ctx, 60*time.Second)
		resp, err := f.store.QueryRollouts(call, &aglv1.QueryRolloutsRequest{
			Namespace: f.cfg.namespace, SortBy: "rollout_id", Limit: page, Offset: int32(offset),
		})
		cancel()
		if err != nil {
			return verified, bad, fmt.Errorf("QueryRollouts at offset %d: %w", offset, err)
		}
		for _, r := range resp.GetRollouts() {
			attempt := r.GetAttempt()
			ok := want[r.GetRolloutId()] && r.GetStatus() == aglv1.RolloutStatus_ROLLOUT_STATUS_SUCCEEDED &&
				attempt.GetSequenceId() == 1 && attempt.GetStatus() == aglv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED
			delete(want, r.GetRolloutId())
			if ok {
				verified++
			} else {
				if bad < 3 {
					logf("rollout %s: status %s, latest attempt %d %s", r.GetRolloutId(), r.GetStatus(), attempt.GetSequenceId(), attempt.GetStatus())
				}
				bad++
			}
		}
		if len(resp.GetRollouts()) < page {
			break
		}
	}
	return verified, bad + len(want), nil
}

// runLifecycle keeps a backlog queued and measures completions and ack latency over -duration.
func runLifecycle(ctx context.Context, f *fleet) (map[string]any, error) {
	out := map[string]any{"backlog": f.cfg.backlog}
	f.connect(ctx).fields(out)

	stop := make(chan struct{})
	feederDone := make(chan error, 1)
	var enqueued atomic.Int64
	chunk := min(f.cfg.batch, f.cfg.backlog)
	go func() { // keeps about -backlog rollouts queued ahead of the workers
		for {
			select {
			case <-stop:
				feederDone <- nil
				return
			default:
			}
			if enqueued.Load()-f.assigned.Load() >= int64(f.cfg.backlog) {
				time.Sleep(2 * time.Millisecond)
				continue
			}
			if _, err := f.enqueue(ctx, int(enqueued.Load()), chunk); err != nil {
				feederDone <- err
				return
			}
			enqueued.Add(int64(chunk))
		}
	}()
	time.Sleep(f.cfg.warmup)
	logf("measuring %s with %d workers", f.cfg.duration, len(f.workers))
	f.measuring.Store(true)
	before, started := f.finalAcked.Load(), time.Now()
	time.Sleep(f.cfg.duration)
	after, window := f.finalAcked.Load(), time.Since(started)
	f.measuring.Store(false)
	close(stop)
	feedErr := <-feederDone
	held := f.leave(drainTimeout)
	if feedErr != nil {
		return nil, feedErr
	}
	out["window_s"] = window.Seconds()
	out["completed_in_window"] = after - before
	out["rollouts_per_s"] = float64(after-before) / window.Seconds()
	out["enqueued"] = enqueued.Load()
	f.common(out, held)
	return out, nil
}
