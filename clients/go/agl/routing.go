package agl

// Routing: the namespace a client works in, and which queues and labels a worker takes work from.
// agl-server does the matching (docs/queues.md); these are the client's ways to say what it wants.

import aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"

// Namespace is the namespace the client works in (see [WithNamespace]); empty is the server's
// "default".
func (c *Client) Namespace() string { return c.opts.namespace }

// InNamespace is a view of the client scoped to another namespace (empty: the server's
// "default"), for one process that works in several: it shares the client's connection and span
// stream, so it costs nothing to make. Closing the client or any of its views closes them all.
func (c *Client) InNamespace(namespace string) *Client {
	view := *c
	view.opts.namespace = namespace
	return &view
}

// A DequeueOption says which work a dequeue may claim (see [Client.DequeueRollout] and
// [NewDequeueSource]).
type DequeueOption func(*aglv1.DequeueRolloutRequest)

// WithQueues claims from these queues only (default: "default"); across them the highest
// priority goes first, then the oldest.
func WithQueues(queues ...string) DequeueOption {
	return func(r *aglv1.DequeueRolloutRequest) { r.Queues = append(r.Queues, queues...) }
}

// WithLabelSelector claims only rollouts whose labels match selector: comma-separated
// requirements that must all hold, "k=v", "k!=v", "k in (a,b)", "k notin (a,b)", "k", "!k".
// A malformed selector fails with INVALID_ARGUMENT naming the bad part.
func WithLabelSelector(selector string) DequeueOption {
	return func(r *aglv1.DequeueRolloutRequest) { r.LabelSelector = selector }
}

// nsName is a namespace as the server names it: empty is "default".
func nsName(namespace string) string {
	if namespace == "" {
		return "default"
	}
	return namespace
}
