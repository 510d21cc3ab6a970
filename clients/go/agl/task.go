package agl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
)

// Task is one attempt at a rollout, as a worker runs it: its input and resources, the spans it
// emits (all in one trace, under an "agl.rollout" root span) and its final status.
type Task struct {
	// Rollout is the task with its attempt (Rollout.Attempt).
	Rollout *aglv1.Rollout

	client *Client
	source WorkSource
	// started is the RUNNING report the runner sent without waiting (nil: none to wait for);
	// Finish waits for its outcome so the final report comes after it.
	started *Reported

	mu        sync.Mutex
	resources *aglv1.ResourcesUpdate
	root      *aglv1.Span
	pending   []*Pending
	finishing bool // Finish was called
	finished  bool // the task takes no more spans
	outcome   aglv1.AttemptStatus
}

// NewTask wraps an assignment; [Runner] does this for each attempt it takes.
func NewTask(client *Client, source WorkSource, assignment *Assignment) *Task {
	root := NewSpan(SpanRollout)
	root.TraceId = NewTraceID()
	root.RolloutId = assignment.Rollout.GetRolloutId()
	root.AttemptId = assignment.Rollout.GetAttempt().GetAttemptId()
	root.EndTimeUnixNano = 0
	return &Task{Rollout: assignment.Rollout, client: client, source: source, resources: assignment.Resources, root: root}
}

// RolloutID is the rollout's id.
func (t *Task) RolloutID() string { return t.Rollout.GetRolloutId() }

// AttemptID is the attempt's id.
func (t *Task) AttemptID() string { return t.Rollout.GetAttempt().GetAttemptId() }

// TraceID is the trace all the task's spans belong to.
func (t *Task) TraceID() []byte { return t.root.GetTraceId() }

// RootSpanID is the id of the task's "agl.rollout" span, the default parent of its spans.
func (t *Task) RootSpanID() []byte { return t.root.GetSpanId() }

// Namespace is the namespace (experiment) the rollout belongs to.
func (t *Task) Namespace() string { return t.Rollout.GetNamespace() }

// Queue is the queue the rollout came from.
func (t *Task) Queue() string { return t.Rollout.GetQueue() }

// Labels are the rollout's labels (nil when it has none).
func (t *Task) Labels() map[string]string { return t.Rollout.GetLabels() }

// ResourcesID is the resources set the rollout runs with: the one it was enqueued with, or the
// namespace's latest at enqueue, which the server records on the rollout. Empty when the
// namespace had none then.
func (t *Task) ResourcesID() string { return t.Rollout.GetResourcesId() }

// Input is the task input as Go values (map[string]any, []any, float64, string, bool, nil).
func (t *Task) Input() any { return t.Rollout.GetInput().AsInterface() }

// DecodeInput unmarshals the task input into v, as encoding/json would.
func (t *Task) DecodeInput(v any) error {
	raw, err := protojson.Marshal(t.Rollout.GetInput())
	if err != nil {
		return fmt.Errorf("agl: rollout %q: task input: %w", t.RolloutID(), err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("agl: rollout %q: task input %s does not fit %T: %w", t.RolloutID(), raw, v, err)
	}
	return nil
}

// Resources returns the resources set the rollout runs with: the one it records ([Task.ResourcesID],
// pinned at enqueue, so resources published later do not change what a queued task runs with),
// or the namespace's latest when it records none. A Work stream hands it over with the attempt;
// otherwise it is fetched once.
func (t *Task) Resources(ctx context.Context) (*aglv1.ResourcesUpdate, error) {
	t.mu.Lock()
	resources := t.resources
	t.mu.Unlock()
	if resources != nil {
		return resources, nil
	}
	resources, err := t.client.getResources(ctx, t.Rollout.GetNamespace(), t.Rollout.GetResourcesId())
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.resources = resources
	t.mu.Unlock()
	return resources, nil
}

// PromptTemplate returns the prompt template resource called name; an empty name picks the only
// prompt template of the set (an error if there are several).
func (t *Task) PromptTemplate(ctx context.Context, name string) (*aglv1.PromptTemplate, error) {
	resources, err := t.Resources(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for key, resource := range resources.GetResources() {
		if resource.GetPromptTemplate() != nil {
			names = append(names, key)
		}
	}
	sort.Strings(names)
	if name == "" {
		if len(names) != 1 {
			return nil, fmt.Errorf("agl: resources %q have %d prompt templates %v; name the one to use",
				resources.GetResourcesId(), len(names), names)
		}
		name = names[0]
	}
	resource, ok := resources.GetResources()[name]
	if !ok || resource.GetPromptTemplate() == nil {
		return nil, fmt.Errorf("agl: resources %q (version %d) have no prompt template %q; they have %v",
			resources.GetResourcesId(), resources.GetVersion(), name, names)
	}
	return resource.GetPromptTemplate(), nil
}

// StartSpan begins a span of the task (a child of its root span unless its ParentSpanId is set);
// pass it to [Task.End] when the work it covers is done.
func (t *Task) StartSpan(name string, attrs ...*aglv1.KeyValue) *aglv1.Span {
	span := NewSpan(name, attrs...)
	span.EndTimeUnixNano = 0
	return span
}

// End ends span now, adds attrs to it and emits it.
func (t *Task) End(ctx context.Context, span *aglv1.Span, attrs ...*aglv1.KeyValue) error {
	span.EndTimeUnixNano = uint64(time.Now().UnixNano())
	span.Attributes = append(span.Attributes, attrs...)
	return t.Emit(ctx, span)
}

// Emit sends spans of this task: rollout, attempt and trace ids are filled in, a span without a
// parent becomes a child of the root span. It returns once the spans are queued (the queue is
// bounded, so it may wait for room); [Task.Finish] waits for their acknowledgements.
func (t *Task) Emit(ctx context.Context, spans ...*aglv1.Span) error {
	for _, span := range spans {
		span.RolloutId, span.AttemptId = t.RolloutID(), t.AttemptID()
		if len(span.TraceId) == 0 {
			span.TraceId = t.root.GetTraceId()
		}
		if len(span.SpanId) == 0 {
			span.SpanId = NewSpanID()
		}
		if len(span.ParentSpanId) == 0 && span != t.root {
			span.ParentSpanId = t.root.GetSpanId()
		}
		if span.EndTimeUnixNano == 0 {
			span.EndTimeUnixNano = uint64(time.Now().UnixNano())
		}
	}
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		return fmt.Errorf("agl: attempt %q of rollout %q is finished; it takes no more spans", t.AttemptID(), t.RolloutID())
	}
	t.mu.Unlock()
	pending, err := t.client.Spans().Enqueue(ctx, spans...)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.pending = append(t.pending, pending)
	t.mu.Unlock()
	return nil
}

// EmitReward records the task's reward (an "agl.reward" span).
func (t *Task) EmitReward(ctx context.Context, value float64) error {
	return t.Emit(ctx, RewardSpan(value))
}

// EmitRewards records several named rewards; primary names the one training optimises.
func (t *Task) EmitRewards(ctx context.Context, primary string, rewards map[string]float64) error {
	span, err := NamedRewardSpan(primary, rewards)
	if err != nil {
		return err
	}
	return t.Emit(ctx, span)
}

// Finish ends the attempt: it emits the root span, waits until every span of the task is
// acknowledged (so whoever sees the final status also sees the spans) and reports status
// (SUCCEEDED or FAILED). If spans were rejected or could not be delivered, the attempt is
// reported FAILED instead and the error says why. cause, when not nil, is recorded as the
// failure's reason in the attempt's metadata. Under a [Runner], Finish first waits for the
// outcome of the attempt's RUNNING report; if the server refused it (the attempt timed out or was
// cancelled meanwhile) Finish reports nothing and returns an error that is [ErrNotStarted].
func (t *Task) Finish(ctx context.Context, status aglv1.AttemptStatus, cause error) error {
	t.mu.Lock()
	if t.finishing {
		t.mu.Unlock()
		return fmt.Errorf("agl: attempt %q of rollout %q is already finished", t.AttemptID(), t.RolloutID())
	}
	t.finishing = true
	t.mu.Unlock()
	if status == aglv1.AttemptStatus_ATTEMPT_STATUS_FAILED && cause != nil {
		t.root.Status = &aglv1.SpanStatus{Code: aglv1.SpanStatusCode_SPAN_STATUS_CODE_ERROR, Message: cause.Error()}
	}
	emitErr := t.Emit(ctx, t.root)
	t.mu.Lock()
	t.finished = true
	pending := t.pending
	t.pending = nil
	t.mu.Unlock()

	spanErr := emitErr
	for _, p := range pending {
		ack, err := p.Wait(ctx)
		if err == nil {
			err = ack.Err()
		}
		spanErr = errors.Join(spanErr, err)
	}
	if spanErr != nil {
		status = aglv1.AttemptStatus_ATTEMPT_STATUS_FAILED
		cause = errors.Join(cause, spanErr)
	}
	var metadata *structpb.Struct
	if cause != nil {
		metadata = &structpb.Struct{Fields: map[string]*structpb.Value{"error": structpb.NewStringValue(cause.Error())}}
	}
	if err := t.startErr(ctx); err != nil {
		return errors.Join(spanErr, err)
	}
	if err := t.source.Report(ctx, t.RolloutID(), t.AttemptID(), status, metadata); err != nil {
		return errors.Join(spanErr, err)
	}
	t.mu.Lock()
	t.outcome = status
	t.mu.Unlock()
	return spanErr
}

// startErr waits for the outcome of the RUNNING report: an error that is [ErrNotStarted] when
// the server refused it. If ctx ends first it returns nil: the final report then goes out (and
// fails on ctx) as it would have, behind RUNNING on the stream.
func (t *Task) startErr(ctx context.Context) error {
	if t.started == nil {
		return nil
	}
	select {
	case <-t.started.Done():
		if err := t.started.Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrNotStarted, err)
		}
	case <-ctx.Done():
	}
	return nil
}

// Outcome is the final status Finish reported (UNSPECIFIED until it succeeded in reporting one).
func (t *Task) Outcome() aglv1.AttemptStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.outcome
}

// Finished reports whether Finish was called.
func (t *Task) Finished() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.finishing
}
