package agl

import (
	"context"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The retry policy of the agl clients, the same in Python, Go and TypeScript (docs/retry.md):
//
//   - unary calls are retried on UNAVAILABLE only; any other status is the server's answer;
//   - streams (IngestSpans, Work, the DequeueSource's polls) are reopened on UNAVAILABLE,
//     CANCELLED, UNKNOWN, INTERNAL and DEADLINE_EXCEEDED, never on ABORTED (on the Work stream:
//     another process took the worker id over), and never when this client cancelled them;
//   - the n-th consecutive failure waits min(100ms * 2^(n-1), 2s) times a random 50-100%; a
//     success resets the count; a status that is not retried fails at once, with no wait;
//   - one give-up rule: the retry deadline (default 60s, [WithRetryDeadline]) counted from the
//     first failure since the last success.

// DefaultRetryDeadline is how long calls and streams keep retrying through an outage.
const DefaultRetryDeadline = 60 * time.Second

const (
	initialBackoff = 100 * time.Millisecond
	maxBackoff     = 2 * time.Second
)

// unaryRetryable reports whether a unary call that failed with code may be tried again.
func unaryRetryable(code codes.Code) bool { return code == codes.Unavailable }

// streamRetryable reports whether a broken stream may be opened again.
func streamRetryable(code codes.Code) bool {
	switch code {
	case codes.Unavailable, codes.Canceled, codes.Unknown, codes.Internal, codes.DeadlineExceeded:
		return true
	}
	return false
}

// backoffDelay is the wait after the failures-th consecutive failure (1 for the first).
func backoffDelay(failures int) time.Duration {
	d := initialBackoff << min(max(failures-1, 0), 10)
	d = min(d, maxBackoff)
	return time.Duration(float64(d) * (0.5 + rand.Float64()/2))
}

// outage is the retry state of one call or stream: failures since the last success.
type outage struct {
	deadline time.Duration
	failures int
	since    time.Time
}

func (o *outage) succeeded() { o.failures, o.since = 0, time.Time{} }

// failed counts a retryable failure and returns the wait before the next try, or false when the
// retry deadline has passed.
func (o *outage) failed() (time.Duration, bool) {
	now := time.Now()
	if o.since.IsZero() {
		o.since = now
	}
	o.failures++
	remaining := o.deadline - now.Sub(o.since)
	if remaining <= 0 {
		return 0, false
	}
	return min(backoffDelay(o.failures), remaining), true
}

// retryUnary retries unary calls that fail with UNAVAILABLE until the retry deadline or the
// call's context ends. Calls that create things are safe to retry: rollouts with client-chosen ids
// and spans with their ids are deduplicated by the server.
func retryUnary(deadline time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption,
	) error {
		o := outage{deadline: deadline}
		for {
			err := invoker(ctx, method, req, reply, cc, opts...)
			if err == nil || !unaryRetryable(status.Code(err)) || ctx.Err() != nil {
				return err
			}
			wait, ok := o.failed()
			if !ok {
				return err
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return err
			}
		}
	}
}
