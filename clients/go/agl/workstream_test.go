package agl_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/agl-dev/agl/clients/go/agl"
	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
	"github.com/agl-dev/agl/clients/go/internal/testserver"
)

const (
	running   = aglv1.AttemptStatus_ATTEMPT_STATUS_RUNNING
	succeeded = aglv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED
)

func enqueue(t *testing.T, ctx context.Context, client *agl.Client, config *aglv1.RolloutConfig, ids ...string) {
	t.Helper()
	specs := make([]agl.RolloutSpec, len(ids))
	for i, id := range ids {
		specs[i] = agl.RolloutSpec{RolloutID: id, Input: id, Config: config}
	}
	if _, err := client.EnqueueRollouts(ctx, specs...); err != nil {
		t.Fatal(err)
	}
}

func waitDone(t *testing.T, ctx context.Context, client *agl.Client, ids ...string) map[string]*aglv1.Rollout {
	t.Helper()
	rollouts, pending, err := client.WaitForRollouts(ctx, ids, 20*time.Second)
	if err != nil || len(pending) > 0 {
		t.Fatalf("rollouts %v not finished: %v", pending, err)
	}
	byID := map[string]*aglv1.Rollout{}
	for _, r := range rollouts {
		byID[r.GetRolloutId()] = r
	}
	return byID
}

func attempts(t *testing.T, ctx context.Context, client *agl.Client, rolloutID string) []*aglv1.Attempt {
	t.Helper()
	resp, err := client.Store().QueryAttempts(ctx, &aglv1.QueryAttemptsRequest{RolloutId: rolloutID})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetAttempts()
}

func worker(t *testing.T, ctx context.Context, client *agl.Client, workerID string) *aglv1.Worker {
	t.Helper()
	resp, err := client.Store().GetWorker(ctx, &aglv1.GetWorkerRequest{WorkerId: workerID})
	if err != nil {
		t.Fatalf("worker %q: %v", workerID, err)
	}
	return resp.GetWorker()
}

func closeSource(t *testing.T, source *agl.WorkStreamSource) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := source.Close(ctx); err != nil {
		t.Fatalf("closing the Work stream: %v", err)
	}
}

// The protocol through the source itself: an assignment carries its resources, the server never
// gives more than the capacity, reports are acknowledged (errors carry the store's code), the
// worker record says who the worker is, and closing leaves cleanly.
func TestWorkStreamSourceProtocol(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)
	if _, err := client.AddResources(ctx, "res-1", promptResources("Q: {question}")); err != nil {
		t.Fatal(err)
	}
	enqueue(t, ctx, client, nil, "ro-1", "ro-2")

	source := agl.NewWorkStreamSource(client, agl.WorkStreamConfig{Capacity: 1, Info: map[string]any{"agent": "protocol-test"}})
	first, err := source.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	workerID := source.WorkerID()
	if !strings.HasPrefix(workerID, "wk-") {
		t.Fatalf("the server should have picked a worker id, got %q", workerID)
	}
	if first.Rollout.GetRolloutId() != "ro-1" || first.Rollout.GetAttempt().GetWorkerId() != workerID {
		t.Fatalf("first assignment %v", first.Rollout)
	}
	if first.Resources.GetResourcesId() != "res-1" || first.Resources.GetResources()["prompt"].GetPromptTemplate() == nil {
		t.Fatalf("the assignment's resources are not resolved: %v", first.Resources)
	}
	record := worker(t, ctx, client, workerID)
	stats := record.GetHeartbeatStats().AsMap()
	if stats["language"] != "go" || stats["agent"] != "protocol-test" || stats["capacity"] != 1.0 || stats["connected"] != true {
		t.Fatalf("worker record %v", stats)
	}

	// Capacity 1: the second rollout waits in the queue while the first is held.
	next := make(chan *agl.Assignment, 1)
	go func() {
		a, err := source.Next(ctx)
		if err != nil {
			t.Error(err)
		}
		next <- a
	}()
	if err := source.Report(ctx, "ro-1", first.Rollout.GetAttempt().GetAttemptId(), running, nil); err != nil {
		t.Fatal(err)
	}
	if r, err := client.GetRollout(ctx, "ro-2"); err != nil || r.GetStatus() != aglv1.RolloutStatus_ROLLOUT_STATUS_QUEUING {
		t.Fatalf("ro-2 was given out beyond the capacity: %v, %v", r.GetStatus(), err)
	}
	if source.Stats().Held != 1 {
		t.Fatalf("held %d, want 1", source.Stats().Held)
	}
	done := &structpb.Struct{Fields: map[string]*structpb.Value{"note": structpb.NewStringValue("done")}}
	if err := source.Report(ctx, "ro-1", first.Rollout.GetAttempt().GetAttemptId(), succeeded, done); err != nil {
		t.Fatal(err)
	}
	second := <-next
	if second.Rollout.GetRolloutId() != "ro-2" {
		t.Fatalf("second assignment %v", second.Rollout)
	}
	r1, err := client.GetRollout(ctx, "ro-1")
	if err != nil || r1.GetStatus() != aglv1.RolloutStatus_ROLLOUT_STATUS_SUCCEEDED || r1.GetAttempt().GetMetadata().AsMap()["note"] != "done" {
		t.Fatalf("ro-1 after its final report: %v, %v", r1, err)
	}

	// A report of an attempt that is not this worker's is refused with the store's code.
	err = source.Report(ctx, "ro-1", "at-missing", succeeded, nil)
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "at-missing") {
		t.Fatalf("report of an unknown attempt: %v", err)
	}

	if err := source.Report(ctx, "ro-2", second.Rollout.GetAttempt().GetAttemptId(), succeeded, nil); err != nil {
		t.Fatal(err)
	}

	// An attempt the store refuses to start (here it already failed, as a timed-out one would
	// have) is not run, and the source frees its slot: the next rollout comes.
	enqueue(t, ctx, client, nil, "ro-gone", "ro-3")
	gone, err := source.Next(ctx)
	if err != nil || gone.Rollout.GetRolloutId() != "ro-gone" {
		t.Fatalf("assignment %v, %v", gone, err)
	}
	goneAttempt := gone.Rollout.GetAttempt().GetAttemptId()
	if _, err := client.UpdateAttempt(ctx, "ro-gone", goneAttempt, aglv1.AttemptStatus_ATTEMPT_STATUS_FAILED); err != nil {
		t.Fatal(err)
	}
	if err := source.Report(ctx, "ro-gone", goneAttempt, running, nil); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("starting a failed attempt: %v", err)
	}
	if third, err := source.Next(ctx); err != nil || third.Rollout.GetRolloutId() != "ro-3" {
		t.Fatalf("after a refused start: %v, %v", third, err)
	}
	closeSource(t, source)
	if _, err := source.Next(ctx); err != agl.ErrDrained {
		t.Fatalf("Next after Close: %v, want ErrDrained", err)
	}
	record = worker(t, ctx, client, workerID)
	if record.GetStatus() != aglv1.WorkerStatus_WORKER_STATUS_UNKNOWN || record.GetHeartbeatStats().AsMap()["connected"] != false {
		t.Fatalf("worker record after Close: %v %v", record.GetStatus(), record.GetHeartbeatStats().AsMap())
	}
}

// A Runner serves attempts from the Work stream: spans and rewards land (checked from Python),
// and stopping drains the stream: nothing is left assigned to the worker.
func TestRunnerOnWorkStream(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)
	ids := []string{"ro-a", "ro-b", "ro-c", "ro-d", "ro-e", "ro-f"}
	enqueue(t, ctx, client, nil, ids...)

	source := agl.NewWorkStreamSource(client, agl.WorkStreamConfig{WorkerID: "go-stream", Capacity: 2})
	runner := agl.NewRunner(client, source, agl.WithConcurrency(2))
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- runner.Serve(serveCtx, func(ctx context.Context, task *agl.Task) error {
			span := task.StartSpan("work", agl.Attr("input", task.Input()))
			if err := task.End(ctx, span); err != nil {
				return err
			}
			return task.EmitReward(ctx, 0.75)
		})
	}()
	for id, r := range waitDone(t, ctx, client, ids...) {
		if r.GetStatus() != aglv1.RolloutStatus_ROLLOUT_STATUS_SUCCEEDED || r.GetAttempt().GetWorkerId() != "go-stream" {
			t.Fatalf("%s: %v by %q", id, r.GetStatus(), r.GetAttempt().GetWorkerId())
		}
	}
	testserver.VerifyRollout(t, server.Address, "", "ro-c", testserver.Expect{
		Status: "succeeded", Reward: testserver.Ptr(0.75), SpanCount: 3,
		Spans: []testserver.ExpectedSpan{{Name: "work", Parent: testserver.Ptr(agl.SpanRollout), Attributes: map[string]any{"input": "ro-c"}}},
	})
	stop()
	if err := <-served; err != nil {
		t.Fatalf("Serve after stop: %v", err)
	}
	if stats := runner.Stats(); stats.Succeeded != 6 || stats.Failed != 0 {
		t.Fatalf("stats %+v", stats)
	}
	// Drained: queued work stays queued for other workers.
	enqueue(t, ctx, client, nil, "ro-later")
	if held := source.Stats().Held; held != 0 {
		t.Fatalf("a drained source holds %d attempts", held)
	}
	closeSource(t, source)
	if r, err := client.GetRollout(ctx, "ro-later"); err != nil || r.GetStatus() != aglv1.RolloutStatus_ROLLOUT_STATUS_QUEUING {
		t.Fatalf("ro-later after the worker left: %v, %v", r.GetStatus(), err)
	}
}

// Work the server pushed just before a stop is run, not dropped: the runner drains the source and
// takes what it still holds. Capacity 2 with one slot keeps a second attempt waiting in the
// source while the first runs.
func TestRunnerRunsWhatTheDrainedSourceHolds(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)
	enqueue(t, ctx, client, nil, "ro-first", "ro-second")
	source := agl.NewWorkStreamSource(client, agl.WorkStreamConfig{WorkerID: "drainer", Capacity: 2})
	runner := agl.NewRunner(client, source, agl.WithConcurrency(1))
	serveCtx, stop := context.WithCancel(ctx)
	started, release := make(chan string, 2), make(chan struct{})
	served := make(chan error, 1)
	go func() {
		served <- runner.Serve(serveCtx, func(ctx context.Context, task *agl.Task) error {
			started <- task.RolloutID()
			<-release
			return task.EmitReward(ctx, 1)
		})
	}()
	if first := <-started; first != "ro-first" {
		t.Fatalf("started %s first", first)
	}
	waitFor(t, func() bool { return source.Stats().Queued == 1 })
	stop()
	close(release)
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	select {
	case second := <-started:
		if second != "ro-second" {
			t.Fatalf("then started %s", second)
		}
	default:
		t.Fatal("the runner stopped without running the attempt its source held")
	}
	if stats := runner.Stats(); stats.Succeeded != 2 {
		t.Fatalf("stats %+v", stats)
	}
	closeSource(t, source)
	for id, r := range waitDone(t, ctx, client, "ro-first", "ro-second") {
		if r.GetStatus() != aglv1.RolloutStatus_ROLLOUT_STATUS_SUCCEEDED || len(attempts(t, ctx, client, id)) != 1 {
			t.Fatalf("%s: %v", id, r.GetStatus())
		}
	}
	if err := source.Report(ctx, "ro-first", "at-x", succeeded, nil); status.Code(err) != codes.Unavailable {
		t.Fatalf("a report after Close: %v", err)
	}
}

// TestMain runs the package's tests, or, in the child process TestRunnerKilledMidAttempt starts
// (AGL_HELPER_ADDRESS set), a runner to be killed.
func TestMain(m *testing.M) {
	if address := os.Getenv("AGL_HELPER_ADDRESS"); address != "" {
		serveUntilKilled(address, os.Getenv("AGL_HELPER_WORKER"))
		os.Exit(1) // serving ends only when the process is killed
	}
	os.Exit(m.Run())
}

// serveUntilKilled serves attempts from the Work stream, announcing each one on stdout once its
// first span is acknowledged, and never finishes one.
func serveUntilKilled(address, workerID string) {
	client, err := agl.NewClient(address)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	source := agl.NewWorkStreamSource(client, agl.WorkStreamConfig{WorkerID: workerID})
	err = agl.NewRunner(client, source).Serve(context.Background(), func(ctx context.Context, task *agl.Task) error {
		if err := task.EmitReward(ctx, 0); err != nil {
			return err
		}
		if err := client.Spans().Flush(ctx); err != nil {
			return err
		}
		fmt.Printf("started %s %s\n", task.RolloutID(), task.AttemptID())
		<-ctx.Done()
		return ctx.Err()
	})
	fmt.Fprintln(os.Stderr, "serving ended:", err)
}

// A runner process killed (SIGKILL) in the middle of an attempt: the server sees its Work stream
// break and gives the attempt up as UNRESPONSIVE at once (not after a heartbeat timeout: that is
// 30s here, and the test's deadline is shorter), so the rollout's retry policy runs it again on
// another worker.
func TestRunnerKilledMidAttempt(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)
	retry := &aglv1.RolloutConfig{MaxAttempts: 2, RetryCondition: []aglv1.AttemptStatus{aglv1.AttemptStatus_ATTEMPT_STATUS_UNRESPONSIVE}}
	enqueue(t, ctx, client, retry, "ro-orphan")

	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), "AGL_HELPER_ADDRESS="+server.Address, "AGL_HELPER_WORKER=doomed")
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	started := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if rest, ok := strings.CutPrefix(lines.Text(), "started "); ok {
				started <- rest
			}
		}
		close(started)
	}()
	var first string
	select {
	case first = <-started:
	case <-time.After(30 * time.Second):
		t.Fatalf("the child runner did not start the attempt:\n%s", server.LogTail())
	}
	if !strings.HasPrefix(first, "ro-orphan ") {
		t.Fatalf("child started %q", first)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()

	// Another worker takes the retry.
	source := agl.NewWorkStreamSource(client, agl.WorkStreamConfig{WorkerID: "rescuer"})
	defer closeSource(t, source)
	serveCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		_ = agl.NewRunner(client, source).Serve(serveCtx, func(ctx context.Context, task *agl.Task) error {
			return task.EmitReward(ctx, 1)
		})
	}()
	rollouts, pending, err := client.WaitForRollouts(ctx, []string{"ro-orphan"}, 10*time.Second)
	if err != nil || len(pending) > 0 {
		t.Fatalf("the orphaned rollout was not retried within 10s: %v\n%s", err, server.LogTail())
	}
	if rollouts[0].GetStatus() != aglv1.RolloutStatus_ROLLOUT_STATUS_SUCCEEDED {
		t.Fatalf("ro-orphan: %v", rollouts[0].GetStatus())
	}
	got := attempts(t, ctx, client, "ro-orphan")
	if len(got) != 2 ||
		got[0].GetStatus() != aglv1.AttemptStatus_ATTEMPT_STATUS_UNRESPONSIVE || got[0].GetWorkerId() != "doomed" ||
		"ro-orphan "+got[0].GetAttemptId() != first ||
		got[1].GetStatus() != succeeded || got[1].GetWorkerId() != "rescuer" {
		t.Fatalf("attempts of ro-orphan: %v", got)
	}
	if w := worker(t, ctx, client, "doomed"); w.GetStatus() != aglv1.WorkerStatus_WORKER_STATUS_UNKNOWN {
		t.Fatalf("the killed worker is %v", w.GetStatus())
	}
}

// The Work stream rides out agl-server restarts, a clean one (SIGTERM) and a crash (SIGKILL):
// the worker reconnects, says which attempts it still runs, and they finish as the same attempts
// (not given up and retried). A report the dead server never acknowledged is sent again, and the
// new server watches the attempts the worker listed: they are given up if it leaves.
func TestWorkStreamSurvivesServerRestarts(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)
	source := agl.NewWorkStreamSource(client, agl.WorkStreamConfig{WorkerID: "survivor", Capacity: 1, RetryDeadline: 30 * time.Second})

	for _, restart := range []struct {
		name string
		stop func()
	}{{"stop", server.Stop}, {"crash", server.Kill}} {
		id := "ro-" + restart.name
		enqueue(t, ctx, client, nil, id)
		assignment, err := source.Next(ctx)
		if err != nil || assignment.Rollout.GetRolloutId() != id {
			t.Fatalf("%s: assignment %v, %v", restart.name, assignment, err)
		}
		attemptID := assignment.Rollout.GetAttempt().GetAttemptId()
		if err := source.Report(ctx, id, attemptID, running, nil); err != nil {
			t.Fatal(err)
		}
		restart.stop()
		server.Restart()
		task := agl.NewTask(client, source, assignment)
		if err := task.EmitReward(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if err := task.Finish(ctx, succeeded, nil); err != nil {
			t.Fatalf("%s: finishing after the restart: %v\n%s", restart.name, err, server.LogTail())
		}
		got := attempts(t, ctx, client, id)
		if len(got) != 1 || got[0].GetAttemptId() != attemptID || got[0].GetStatus() != succeeded {
			t.Fatalf("%s: attempts %v", restart.name, got)
		}
	}

	// A report sent to a server that froze and then died is delivered by the next stream.
	enqueue(t, ctx, client, nil, "ro-frozen")
	assignment, err := source.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(server.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Report sends at once, then waits for the ack, which a frozen server cannot give.
	attemptID := assignment.Rollout.GetAttempt().GetAttemptId()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = source.Report(short, "ro-frozen", attemptID, running, nil)
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a report to a frozen server: %v, want DEADLINE_EXCEEDED", err)
	}
	server.Kill()
	server.Restart()
	// The same report again waits for the first one, which the next stream delivers.
	if err := source.Report(ctx, "ro-frozen", attemptID, running, nil); err != nil {
		t.Fatalf("the report was not delivered after the restart: %v", err)
	}
	if r, err := client.GetRollout(ctx, "ro-frozen"); err != nil || r.GetAttempt().GetStatus() != running {
		t.Fatalf("ro-frozen after the restart: %v, %v", r.GetAttempt().GetStatus(), err)
	}
	if err := source.Report(ctx, "ro-frozen", attemptID, succeeded, nil); err != nil {
		t.Fatal(err)
	}
	waitDone(t, ctx, client, "ro-frozen")

	// The new stream holds the attempts the hello listed: leaving gives them up.
	enqueue(t, ctx, client, nil, "ro-adopted")
	assignment, err = source.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := source.Report(ctx, "ro-adopted", assignment.Rollout.GetAttempt().GetAttemptId(), running, nil); err != nil {
		t.Fatal(err)
	}
	streams := source.Stats().Streams
	server.Kill()
	server.Restart()
	waitFor(t, func() bool { return source.Stats().Streams > streams })
	closeSource(t, source)
	if r, err := client.GetRollout(ctx, "ro-adopted"); err != nil || r.GetAttempt().GetStatus() != aglv1.AttemptStatus_ATTEMPT_STATUS_UNRESPONSIVE {
		t.Fatalf("ro-adopted after its worker left: %v, %v", r.GetAttempt().GetStatus(), err)
	}
}
