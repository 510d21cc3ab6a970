package agl

// The store calls of a Client: enqueue, dequeue, rollouts, attempts, resources, spans, each a
// thin wrapper over the generated LightningStoreService client in plain Go values.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
)

// RolloutSpec is a rollout to enqueue, in plain Go values.
type RolloutSpec struct {
	// Input is the task: a JSON-like value (map[string]any, []any, string, a number, bool, nil)
	// or anything encoding/json marshals (a struct with json tags). nil is a task without input.
	Input any
	// RolloutID is the rollout's id; empty lets the client pick one (so a retried call cannot
	// enqueue the task twice).
	RolloutID string
	// Mode is "train", "val", "test" or empty.
	Mode string
	// ResourcesID pins the resources the rollout runs with; empty: the server records the
	// namespace's latest at enqueue on the rollout, and its runner gets exactly that version.
	ResourcesID string
	// Queue is the queue the rollout waits in; empty: "default". Workers take work from the
	// queues they name ([WorkStreamConfig.Queues], [WithQueues]); a retry stays in the queue.
	Queue string
	// Labels are matched by workers' label selectors (e.g. {"lang": "go"}: only workers whose
	// selector accepts lang=go get it). At most 32.
	Labels map[string]string
	// Priority is 0 (default) to 1000: higher is dispatched first, equal ones in queue order.
	Priority int32
	// Config sets timeouts and retries; nil: the server's defaults.
	Config *aglv1.RolloutConfig
	// Metadata is stored with the rollout, JSON-like values.
	Metadata map[string]any
}

// Proto is the spec as the generated message.
func (r RolloutSpec) Proto() (*aglv1.RolloutSpec, error) {
	input, err := inputValue(r.Input)
	if err != nil {
		return nil, err
	}
	spec := &aglv1.RolloutSpec{
		RolloutId: r.RolloutID, Input: input, ResourcesId: r.ResourcesID, Config: r.Config,
		Queue: r.Queue, Labels: r.Labels, Priority: r.Priority,
	}
	if r.Mode != "" {
		mode, ok := aglv1.RolloutMode_value["ROLLOUT_MODE_"+strings.ToUpper(r.Mode)]
		if !ok {
			return nil, fmt.Errorf("agl: rollout mode %q: use train, val or test", r.Mode)
		}
		spec.Mode = aglv1.RolloutMode(mode)
	}
	if r.Metadata != nil {
		if spec.Metadata, err = structpb.NewStruct(r.Metadata); err != nil {
			return nil, fmt.Errorf("agl: rollout metadata: %w", err)
		}
	}
	return spec, nil
}

// newRolloutID is an id like the Python client's: "ro-" and 16 hex digits.
func newRolloutID() string { return "ro-" + hex.EncodeToString(randomID(8)) }

// inputValue turns a task input into a Value: JSON-like values directly, anything else through
// encoding/json.
func inputValue(v any) (*structpb.Value, error) {
	if value, ok := v.(*structpb.Value); ok {
		return value, nil
	}
	if value, err := structpb.NewValue(v); err == nil {
		return value, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("agl: the task input %T is not JSON-like: %w", v, err)
	}
	var plain any
	if err := json.Unmarshal(raw, &plain); err != nil {
		return nil, fmt.Errorf("agl: the task input %T is not JSON-like: %w", v, err)
	}
	return JSONValue(plain)
}

// EnqueueRollouts adds rollouts to their queues in the client's namespace, their inputs in plain
// Go values:
//
//	client.EnqueueRollouts(ctx, agl.RolloutSpec{Input: map[string]any{"question": "2+2", "answer": 4}})
//	client.EnqueueRollouts(ctx, agl.RolloutSpec{Input: task, Queue: "tools", Labels: map[string]string{"lang": "go"}, Priority: 10})
//
// Items succeed or fail on their own: when some fail, the error is an [*ItemErrors] and the
// rollouts that were created are returned (nil at the failed indices).
func (c *Client) EnqueueRollouts(ctx context.Context, specs ...RolloutSpec) ([]*aglv1.Rollout, error) {
	protos := make([]*aglv1.RolloutSpec, len(specs))
	for i, spec := range specs {
		p, err := spec.Proto()
		if err != nil {
			return nil, fmt.Errorf("rollouts[%d]: %w", i, err)
		}
		if p.GetRolloutId() == "" {
			p.RolloutId = newRolloutID()
		}
		protos[i] = p
	}
	return c.EnqueueRolloutSpecs(ctx, protos...)
}

// EnqueueRolloutSpecs is [Client.EnqueueRollouts] with the generated messages.
func (c *Client) EnqueueRolloutSpecs(ctx context.Context, specs ...*aglv1.RolloutSpec) ([]*aglv1.Rollout, error) {
	resp, err := c.store.EnqueueRollouts(ctx, &aglv1.EnqueueRolloutsRequest{Rollouts: specs, Namespace: c.opts.namespace})
	if err != nil {
		return nil, c.wrap(err, "enqueue %d rollouts", len(specs))
	}
	rollouts := resp.GetRollouts()
	for i, rollout := range rollouts {
		if rollout.GetRolloutId() == "" {
			rollouts[i] = nil
		}
	}
	if len(resp.GetErrors()) > 0 {
		return rollouts, &ItemErrors{What: "enqueue rollouts", Items: resp.GetErrors()}
	}
	return rollouts, nil
}

// DequeueRollout claims the next queued rollout of the client's namespace for workerID (highest
// priority, then oldest; from the "default" queue unless [WithQueues] names others), with a new
// attempt (in rollout.Attempt). When there is none it waits up to wait for work (a long poll) and
// returns nil, nil if none came.
func (c *Client) DequeueRollout(
	ctx context.Context, workerID string, wait time.Duration, opts ...DequeueOption,
) (*aglv1.Rollout, error) {
	req := &aglv1.DequeueRolloutRequest{WorkerId: workerID, Limit: 1, Namespace: c.opts.namespace}
	for _, opt := range opts {
		opt(req)
	}
	if wait > 0 {
		req.Wait = durationpb.New(wait)
		// The server answers just before the deadline, so the long poll gets the wait plus the
		// usual time for the answer.
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, wait+c.opts.timeout)
			defer cancel()
		}
	}
	resp, err := c.store.DequeueRollout(ctx, req)
	if err != nil {
		return nil, c.wrap(err, "dequeue a rollout for worker %q", workerID)
	}
	if len(resp.GetRollouts()) == 0 {
		return nil, nil
	}
	return resp.GetRollouts()[0], nil
}

// GetRollout returns the rollout with its latest attempt.
func (c *Client) GetRollout(ctx context.Context, rolloutID string) (*aglv1.Rollout, error) {
	resp, err := c.store.GetRollout(ctx, &aglv1.GetRolloutRequest{RolloutId: rolloutID})
	if err != nil {
		return nil, c.wrap(err, "get rollout %q", rolloutID)
	}
	return resp.GetRollout(), nil
}

// UpdateAttempt sets the status of an attempt ("latest" names the rollout's latest one). Finishing
// an attempt (SUCCEEDED, FAILED) decides the rollout's status; send the attempt's spans first
// (see [Task.Finish], which does both).
func (c *Client) UpdateAttempt(
	ctx context.Context, rolloutID, attemptID string, status aglv1.AttemptStatus,
) (*aglv1.Attempt, error) {
	resp, err := c.store.UpdateAttempt(ctx, &aglv1.UpdateAttemptRequest{
		RolloutId: rolloutID, AttemptId: attemptID, Status: &status,
	})
	if err != nil {
		return nil, c.wrap(err, "set attempt %q of rollout %q to %s", attemptID, rolloutID, statusName(status))
	}
	return resp.GetAttempt(), nil
}

// AddResources stores a new resources set in the client's namespace and makes it the
// namespace's latest. An empty resourcesID lets the server pick one.
func (c *Client) AddResources(
	ctx context.Context, resourcesID string, resources map[string]*aglv1.Resource,
) (*aglv1.ResourcesUpdate, error) {
	resp, err := c.store.AddResources(ctx, &aglv1.AddResourcesRequest{
		ResourcesId: resourcesID, Resources: resources, Namespace: c.opts.namespace,
	})
	if err != nil {
		return nil, c.wrap(err, "add resources %q", resourcesID)
	}
	return resp.GetResources(), nil
}

// GetResources returns a resources set of the client's namespace; an empty resourcesID returns
// the namespace's latest one.
func (c *Client) GetResources(ctx context.Context, resourcesID string) (*aglv1.ResourcesUpdate, error) {
	return c.getResources(ctx, c.opts.namespace, resourcesID)
}

func (c *Client) getResources(ctx context.Context, namespace, resourcesID string) (*aglv1.ResourcesUpdate, error) {
	resp, err := c.store.GetResources(ctx, &aglv1.GetResourcesRequest{ResourcesId: resourcesID, Namespace: namespace})
	if err != nil {
		if resourcesID == "" {
			return nil, c.wrap(err, "get the latest resources of namespace %q", nsName(namespace))
		}
		return nil, c.wrap(err, "get resources %q", resourcesID)
	}
	return resp.GetResources(), nil
}

// WaitForRollouts blocks until all the rollouts are terminal or timeout passes, and returns the
// terminal ones (in request order) and the ids still pending.
func (c *Client) WaitForRollouts(
	ctx context.Context, rolloutIDs []string, timeout time.Duration,
) ([]*aglv1.Rollout, []string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout+c.opts.timeout)
		defer cancel()
	}
	resp, err := c.store.WaitForRollouts(ctx, &aglv1.WaitForRolloutsRequest{
		RolloutIds: rolloutIDs, Timeout: durationpb.New(timeout),
	})
	if err != nil {
		return nil, nil, c.wrap(err, "wait for %d rollouts", len(rolloutIDs))
	}
	return resp.GetRollouts(), resp.GetPendingRolloutIds(), nil
}

// QuerySpans returns the stored spans of a rollout in sequence order. attemptID is an attempt id,
// "latest", or empty for all attempts.
func (c *Client) QuerySpans(ctx context.Context, rolloutID, attemptID string) ([]*aglv1.Span, error) {
	stream, err := c.store.QuerySpans(ctx, &aglv1.QuerySpansRequest{RolloutId: rolloutID, AttemptId: attemptID})
	if err != nil {
		return nil, c.wrap(err, "query the spans of rollout %q", rolloutID)
	}
	var spans []*aglv1.Span
	for {
		resp, err := stream.Recv()
		if err != nil {
			if isEOF(err) {
				return spans, nil
			}
			return nil, c.wrap(err, "query the spans of rollout %q", rolloutID)
		}
		spans = append(spans, resp.GetSpans()...)
	}
}

// QuerySpansOfRollouts returns the stored spans of several rollouts from one QuerySpans call, by
// rollout id: every id given is a key (nil when it has no spans), each rollout's spans in sequence
// order. attemptID applies to each rollout: an attempt id, "latest", or empty for all attempts. At
// most 1,000 ids, none twice; an id that names no rollout fails the call with NotFound.
func (c *Client) QuerySpansOfRollouts(ctx context.Context, rolloutIDs []string, attemptID string) (map[string][]*aglv1.Span, error) {
	spans := make(map[string][]*aglv1.Span, len(rolloutIDs))
	for _, id := range rolloutIDs {
		spans[id] = nil
	}
	if len(rolloutIDs) == 0 {
		return spans, nil
	}
	stream, err := c.store.QuerySpans(ctx, &aglv1.QuerySpansRequest{RolloutIds: rolloutIDs, AttemptId: attemptID})
	if err != nil {
		return nil, c.wrap(err, "query the spans of %d rollouts", len(rolloutIDs))
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			if isEOF(err) {
				return spans, nil
			}
			return nil, c.wrap(err, "query the spans of %d rollouts", len(rolloutIDs))
		}
		for _, span := range resp.GetSpans() {
			spans[span.GetRolloutId()] = append(spans[span.GetRolloutId()], span)
		}
	}
}
