package agl_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agl-dev/agl/clients/go/agl"
	"github.com/agl-dev/agl/clients/go/internal/testserver"
)

// Workers started together do not heartbeat together: each source sends its first heartbeat at a
// random point of its first interval (every heartbeat is a store write, and 1,000 aligned ones
// held dispatch back for tens of milliseconds in bench/fleet_bench.py).
func TestWorkersStartedTogetherSpreadTheirHeartbeats(t *testing.T) {
	const workers, interval = 16, time.Second
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)
	sources := make([]*agl.WorkStreamSource, workers)
	var started sync.WaitGroup
	errs := make(chan error, workers)
	for i := range sources {
		sources[i] = agl.NewWorkStreamSource(client, agl.WorkStreamConfig{
			WorkerID: "w-phase-" + string(rune('a'+i)), HeartbeatInterval: interval,
		})
		t.Cleanup(func() { closeSource(t, sources[i]) })
		started.Add(1)
		go func() {
			defer started.Done()
			errs <- sources[i].Start(ctx)
		}()
	}
	started.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// The worker record is written at welcome and at each heartbeat, with the store's clock: the
	// gap between the two writes is the first heartbeat's delay, however often this polls.
	welcomed := make([]time.Time, workers)
	for i, source := range sources {
		welcomed[i] = worker(t, ctx, client, source.WorkerID()).GetLastHeartbeatTime().AsTime()
	}
	offsets := make([]time.Duration, workers)
	for i, source := range sources {
		waitFor(t, func() bool {
			offsets[i] = worker(t, ctx, client, source.WorkerID()).GetLastHeartbeatTime().AsTime().Sub(welcomed[i])
			return offsets[i] > 0
		})
	}
	slices.Sort(offsets)
	// Aligned, every offset would be one interval; spread uniformly over it, 16 offsets span less
	// than 0.4 of it with a probability of about 1e-5.
	if spread := offsets[workers-1] - offsets[0]; spread < interval*4/10 {
		t.Fatalf("first heartbeats %v after welcome span %v; want them spread over the interval", offsets, spread)
	}
	// A beat that fell before the stream was open is skipped, so the first may come in the second
	// interval; never later.
	if offsets[workers-1] > 2*interval+500*time.Millisecond {
		t.Fatalf("first heartbeats %v after welcome; want each within two intervals", offsets)
	}
}
