package agl_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/agl-dev/agl/clients/go/agl"
	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
	"github.com/agl-dev/agl/clients/go/internal/testserver"
)

// Routing and namespaces (issue 12) through the Go client against a real agl-server.

const queuing = aglv1.RolloutStatus_ROLLOUT_STATUS_QUEUING

// take claims the next assignment and finishes it, so a capacity-1 source can get the next one.
func take(t *testing.T, ctx context.Context, source agl.WorkSource) *aglv1.Rollout {
	t.Helper()
	a, err := source.Next(ctx)
	if err != nil {
		t.Fatalf("worker %q: %v", source.WorkerID(), err)
	}
	rollout := a.Rollout
	for _, st := range []aglv1.AttemptStatus{running, succeeded} {
		if err := source.Report(ctx, rollout.GetRolloutId(), rollout.GetAttempt().GetAttemptId(), st, nil); err != nil {
			t.Fatal(err)
		}
	}
	return rollout
}

func mustEnqueue(t *testing.T, ctx context.Context, client *agl.Client, specs ...agl.RolloutSpec) {
	t.Helper()
	if _, err := client.EnqueueRollouts(ctx, specs...); err != nil {
		t.Fatal(err)
	}
}

func assertQueuing(t *testing.T, ctx context.Context, client *agl.Client, ids ...string) {
	t.Helper()
	for _, id := range ids {
		r, err := client.GetRollout(ctx, id)
		if err != nil || r.GetStatus() != queuing || r.GetAttempt() != nil {
			t.Fatalf("rollout %q should still wait in its queue untouched: %v, %v", id, r, err)
		}
	}
}

// A worker gets only the work of its queues whose labels its selector accepts, highest priority
// first, on the Work stream and with long polls alike. Rollouts that do not match stay queued,
// untouched: each source's last claim is a rollout enqueued after all of them, which a source
// that ignored queues or selectors would have reached only after them (FIFO).
func TestWorkersTakeOnlyTheirQueuesAndLabels(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)
	goTask := map[string]string{"lang": "go"}
	tsTask := map[string]string{"lang": "ts"}
	mustEnqueue(t, ctx, client,
		agl.RolloutSpec{RolloutID: "ts-1", Input: 1, Queue: "agents", Labels: tsTask},
		agl.RolloutSpec{RolloutID: "go-default-queue", Input: 2, Labels: goTask},
		agl.RolloutSpec{RolloutID: "unlabelled", Input: 3, Queue: "agents"},
		agl.RolloutSpec{RolloutID: "go-low", Input: 4, Queue: "agents", Labels: goTask},
		agl.RolloutSpec{RolloutID: "go-high", Input: 5, Queue: "agents", Labels: goTask, Priority: 10},
	)
	stream := agl.NewWorkStreamSource(client, agl.WorkStreamConfig{
		WorkerID: "go-stream", Queues: []string{"agents"}, LabelSelector: "lang=go",
	})
	defer closeSource(t, stream)
	first := take(t, ctx, stream)
	if first.GetRolloutId() != "go-high" || first.GetQueue() != "agents" || first.GetPriority() != 10 ||
		first.GetLabels()["lang"] != "go" || first.GetNamespace() != "default" {
		t.Fatalf("the first push should be the high-priority Go task of the queue, with its routing: %v", first)
	}
	if second := take(t, ctx, stream); second.GetRolloutId() != "go-low" {
		t.Fatalf("second push %q, want go-low", second.GetRolloutId())
	}
	mustEnqueue(t, ctx, client, agl.RolloutSpec{RolloutID: "go-late", Input: 6, Queue: "agents", Labels: goTask})
	if third := take(t, ctx, stream); third.GetRolloutId() != "go-late" {
		t.Fatalf("third push %q, want go-late", third.GetRolloutId())
	}
	assertQueuing(t, ctx, client, "ts-1", "go-default-queue", "unlabelled")
	record := worker(t, ctx, client, "go-stream")
	if record.GetLabelSelector() != "lang=go" || strings.Join(record.GetQueues(), ",") != "agents" {
		t.Fatalf("the worker record should say what the worker serves: %v", record)
	}

	// Long polls: the TypeScript task of the queue, then the one queued after the rest.
	poll := agl.NewDequeueSource(client, "ts-poll", 5*time.Second, agl.WithQueues("agents"), agl.WithLabelSelector("lang in (ts)"))
	if r := take(t, ctx, poll); r.GetRolloutId() != "ts-1" {
		t.Fatalf("poll took %q, want ts-1", r.GetRolloutId())
	}
	mustEnqueue(t, ctx, client, agl.RolloutSpec{RolloutID: "ts-late", Input: 7, Queue: "agents", Labels: tsTask})
	if r := take(t, ctx, poll); r.GetRolloutId() != "ts-late" {
		t.Fatalf("poll took %q, want ts-late", r.GetRolloutId())
	}
	assertQueuing(t, ctx, client, "go-default-queue", "unlabelled")

	// A worker of the default queue that wants no Go work finds none; one without options takes
	// what is left there.
	none, err := client.DequeueRollout(ctx, "not-go", 0, agl.WithLabelSelector("lang!=go"))
	if err != nil || none != nil {
		t.Fatalf("the default queue holds only a Go task, yet a lang!=go poll got %v, %v", none, err)
	}
	if r := take(t, ctx, agl.NewDequeueSource(client, "any", time.Second)); r.GetRolloutId() != "go-default-queue" {
		t.Fatalf("a plain poll took %q, want go-default-queue", r.GetRolloutId())
	}
	assertQueuing(t, ctx, client, "unlabelled")
}

// Two experiments on one server, each with its own client namespace: rollouts, workers and
// "latest" resources never cross over, and each rollout runs with the resources its own
// namespace had when it was enqueued.
func TestNamespacesKeepExperimentsApart(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	expA := newClient(t, server.Address, agl.WithNamespace("exp-a"))
	expB := expA.InNamespace("exp-b") // a view: same connection, another namespace
	if expA.Namespace() != "exp-a" || expB.Namespace() != "exp-b" {
		t.Fatalf("Namespace() = %q, %q", expA.Namespace(), expB.Namespace())
	}
	for _, c := range []struct {
		client *agl.Client
		id     string
	}{{expA, "res-a"}, {expB, "res-b"}} {
		if _, err := c.client.AddResources(ctx, c.id, promptResources(c.id+": {question}")); err != nil {
			t.Fatal(err)
		}
	}
	// B's rollouts are older than A's: a worker that saw across namespaces would take them first.
	mustEnqueue(t, ctx, expB, agl.RolloutSpec{RolloutID: "b-1", Input: "b"}, agl.RolloutSpec{RolloutID: "b-2", Input: "b"})
	mustEnqueue(t, ctx, expA, agl.RolloutSpec{RolloutID: "a-1", Input: "a"})
	// A's latest changes after a-1 was queued: the Work stream still hands over res-a with it.
	if _, err := expA.AddResources(ctx, "res-a2", promptResources("newer: {question}")); err != nil {
		t.Fatal(err)
	}

	streamA := agl.NewWorkStreamSource(expA, agl.WorkStreamConfig{WorkerID: "worker-a"})
	defer closeSource(t, streamA)
	got, err := streamA.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	task := agl.NewTask(expA, streamA, got)
	if task.RolloutID() != "a-1" || task.Namespace() != "exp-a" || task.ResourcesID() != "res-a" {
		t.Fatalf("worker-a got %q of %q with resources %q", task.RolloutID(), task.Namespace(), task.ResourcesID())
	}
	if res, err := task.Resources(ctx); err != nil || res.GetResourcesId() != "res-a" || res.GetNamespace() != "exp-a" {
		t.Fatalf("worker-a runs with %v, %v", res, err)
	}
	if err := task.Finish(ctx, succeeded, nil); err != nil {
		t.Fatal(err)
	}
	closeSource(t, streamA) // exp-a has no worker from now on

	// B's latest resources change after b-1 and b-2 were queued; they still run with res-b.
	if _, err := expB.AddResources(ctx, "res-b2", promptResources("newer: {question}")); err != nil {
		t.Fatal(err)
	}
	pollB := agl.NewDequeueSource(expB, "worker-b", 5*time.Second)
	for _, want := range []string{"b-1", "b-2"} {
		got, err := pollB.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		task := agl.NewTask(expB, pollB, got)
		res, err := task.Resources(ctx)
		if task.RolloutID() != want || err != nil || res.GetResourcesId() != "res-b" {
			t.Fatalf("worker-b got %q with resources %v (%v), want %q with res-b", task.RolloutID(), res.GetResourcesId(), err, want)
		}
		if err := task.Finish(ctx, succeeded, nil); err != nil {
			t.Fatal(err)
		}
	}

	// "Latest" is per namespace, and a set of another namespace is not there.
	if latest, err := expA.GetResources(ctx, ""); err != nil || latest.GetResourcesId() != "res-a2" {
		t.Fatalf("exp-a's latest: %v, %v", latest, err)
	}
	if latest, err := expB.GetResources(ctx, ""); err != nil || latest.GetResourcesId() != "res-b2" {
		t.Fatalf("exp-b's latest: %v, %v", latest, err)
	}
	if _, err := expA.GetResources(ctx, "res-b"); status.Code(err) != codes.NotFound {
		t.Fatalf("exp-a reading exp-b's resources: %v, want NOT_FOUND", err)
	}
	// A worker of the default namespace finds nothing of either experiment.
	defaultClient := expA.InNamespace("")
	mustEnqueue(t, ctx, expA, agl.RolloutSpec{RolloutID: "a-2", Input: "a"})
	if r, err := defaultClient.DequeueRollout(ctx, "worker-default", 0); err != nil || r != nil {
		t.Fatalf("the default namespace's worker took %v, %v", r, err)
	}
	assertQueuing(t, ctx, expA, "a-2")
	workers, err := expB.Store().QueryWorkers(ctx, &aglv1.QueryWorkersRequest{Namespace: "exp-b"})
	if err != nil {
		t.Fatal(err)
	}
	if len(workers.GetWorkers()) != 1 || workers.GetWorkers()[0].GetWorkerId() != "worker-b" {
		t.Fatalf("exp-b's workers: %v", workers.GetWorkers())
	}
}

// Bad routing input is refused with INVALID_ARGUMENT and a message that names the bad part; a
// Work stream with a malformed selector fails for good instead of reconnecting forever.
func TestRoutingInputIsValidated(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)
	mustEnqueue(t, ctx, client, agl.RolloutSpec{RolloutID: "kept", Input: 1})

	_, err := client.DequeueRollout(ctx, "w", 0, agl.WithLabelSelector("lang in (go"))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "lang in (go") {
		t.Fatalf("a malformed selector: %v", err)
	}
	// Per item (partial success) or for the whole request: either way INVALID_ARGUMENT naming priority.
	_, err = client.EnqueueRollouts(ctx, agl.RolloutSpec{Input: 1, Priority: -1})
	code := status.Code(err)
	var items *agl.ItemErrors
	if errors.As(err, &items) && len(items.Items) == 1 {
		code = codes.Code(items.Items[0].GetCode())
	}
	if code != codes.InvalidArgument || !strings.Contains(err.Error(), "priority") {
		t.Fatalf("a negative priority: %v", err)
	}
	bad := newClient(t, server.Address, agl.WithNamespace("Not A Namespace"))
	if _, err := bad.EnqueueRollouts(ctx, agl.RolloutSpec{Input: 1}); status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), "Not A Namespace") {
		t.Fatalf("a malformed namespace: %v", err)
	}

	stream := agl.NewWorkStreamSource(client, agl.WorkStreamConfig{LabelSelector: "=go"})
	defer closeSource(t, stream)
	startCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := stream.Start(startCtx); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a Work stream with a malformed selector: %v, want INVALID_ARGUMENT", err)
	}
	assertQueuing(t, ctx, client, "kept")
}
