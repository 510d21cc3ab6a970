package agl

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// The policy table of docs/retry.md; the same table is pinned in
// tests/integration/test_retry_policy.py and clients/ts/test/retry.test.ts.
func TestRetryPolicyTable(t *testing.T) {
	streams := map[codes.Code]bool{
		codes.Unavailable: true, codes.Canceled: true, codes.Unknown: true, codes.Internal: true,
		codes.DeadlineExceeded: true,
	}
	for code := codes.OK; code <= codes.Unauthenticated; code++ {
		if got := unaryRetryable(code); got != (code == codes.Unavailable) {
			t.Errorf("unary %s: retryable=%v", code, got)
		}
		if got := streamRetryable(code); got != streams[code] {
			t.Errorf("stream %s: retryable=%v, want %v", code, got, streams[code])
		}
	}
	for failures, ceiling := range map[int]time.Duration{
		1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond,
		5: 1600 * time.Millisecond, 6: 2 * time.Second, 30: 2 * time.Second,
	} {
		if d := backoffDelay(failures); d < ceiling/2 || d > ceiling {
			t.Errorf("backoff after %d failures: %s, want %s..%s", failures, d, ceiling/2, ceiling)
		}
	}
}

func TestOutageGivesUpAtItsDeadlineAndASuccessResetsIt(t *testing.T) {
	o := outage{deadline: 300 * time.Millisecond}
	if _, ok := o.failed(); !ok {
		t.Fatal("the first failure must be retried")
	}
	o.since = time.Now().Add(-time.Second) // as if the outage began a second ago
	if _, ok := o.failed(); ok {
		t.Fatal("retried past the deadline")
	}
	o.succeeded()
	if _, ok := o.failed(); !ok || o.failures != 1 {
		t.Fatalf("a success must start a new outage: %+v", o)
	}
	if _, ok := (&outage{}).failed(); ok {
		t.Fatal("a zero deadline must never retry")
	}
}
