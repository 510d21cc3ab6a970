package agl

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
	"github.com/agl-dev/agl/clients/go/internal/wirecodec"
)

type spanStreamOptions struct {
	batchSpans      int
	batchBytes      int
	inflightBatches int
	queueLimit      int
	maxSpanBytes    int
}

// A SpanStreamOption configures a SpanStream.
type SpanStreamOption func(*spanStreamOptions)

// WithBatchLimits caps a batch (one IngestSpans message) at spans spans and bytes bytes
// (defaults 1024 and 1 MiB); one span larger than bytes still goes alone.
func WithBatchLimits(spans, bytes int) SpanStreamOption {
	return func(o *spanStreamOptions) { o.batchSpans, o.batchBytes = spans, bytes }
}

// WithInflightBatches sets how many batches may await their ack at once (default 16).
func WithInflightBatches(n int) SpanStreamOption {
	return func(o *spanStreamOptions) { o.inflightBatches = n }
}

// WithQueueLimit bounds the spans queued or unacknowledged (default 100,000): past it, Enqueue
// waits for acks instead of buffering without end.
func WithQueueLimit(n int) SpanStreamOption { return func(o *spanStreamOptions) { o.queueLimit = n } }

// WithMaxSpanBytes rejects single spans larger than n bytes at once, with RESOURCE_EXHAUSTED
// (default 16 MiB, agl-server's default message limit).
func WithMaxSpanBytes(n int) SpanStreamOption {
	return func(o *spanStreamOptions) { o.maxSpanBytes = n }
}

// Ack is the outcome of one Enqueue or Send. Indices refer to the spans of that call.
type Ack struct {
	// Accepted spans were stored by this call.
	Accepted int
	// Duplicates were already stored (a resend after a reconnect, or a span id sent twice); the
	// store kept the first copy.
	Duplicates []int
	// Rejected spans could not be stored (unknown rollout or attempt, missing ids, too large).
	Rejected []*aglv1.ItemError
}

// Err is an [*ItemErrors] when some spans were rejected, else nil.
func (a *Ack) Err() error {
	if len(a.Rejected) == 0 {
		return nil
	}
	return &ItemErrors{What: "ingest spans", Items: a.Rejected}
}

// Pending is a call of Enqueue whose spans are on their way.
type Pending struct {
	done        chan struct{}
	ack         Ack
	err         error
	outstanding int
	finished    bool
}

// Done is closed once every span of the call is acknowledged or has failed.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Wait blocks until the call's spans are acknowledged and returns the outcome; the error is the
// stream's failure (after the reconnect timeout, or a non-retryable status) or ctx's.
func (p *Pending) Wait(ctx context.Context) (*Ack, error) {
	select {
	case <-p.done:
		if p.err != nil {
			return nil, p.err
		}
		return &p.ack, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("agl: waiting for span acks: %w", ctx.Err())
	}
}

type queuedSpan struct {
	pending *Pending
	index   int
	span    *aglv1.Span
	size    int
}

type spanBatch struct {
	id    int64
	items []queuedSpan
}

// SpanStreamStats counts what a SpanStream did, for monitoring and tests.
type SpanStreamStats struct {
	BatchesAcked int64
	Reconnects   int64
	// Queued is the number of spans queued or awaiting their ack.
	Queued int
	// Inflight is the number of batches sent and awaiting their ack.
	Inflight int
}

// SpanStream sends spans to agl-server on one long-lived IngestSpans stream: spans from all
// callers are packed into batches, several batches are in flight at once, and the server
// acknowledges each once its spans are durable. When the stream breaks, the unacknowledged
// batches go again on a new stream (the server ignores span ids it already has) until the
// reconnect timeout passes without progress. Memory is bounded by the queue limit.
//
// A span handed to the stream belongs to it: do not change it afterwards.
type SpanStream struct {
	client *Client
	o      spanStreamOptions

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change of the fields below
	queue    []queuedSpan
	resend   []*spanBatch
	inflight map[int64]*spanBatch
	queued   int
	nextID   int64
	closed   bool
	running  bool
	stop     context.CancelFunc
	runDone  chan struct{}
	stats    SpanStreamStats
}

// NewSpanStream makes a span stream on client's connection. Most code uses [Client.Spans]
// instead, which shares one stream per client.
func NewSpanStream(client *Client, opts ...SpanStreamOption) *SpanStream {
	o := spanStreamOptions{
		batchSpans: 1024, batchBytes: 1 << 20, inflightBatches: 16, queueLimit: 100_000,
		maxSpanBytes: 16 << 20,
	}
	for _, opt := range opts {
		opt(&o)
	}
	o.batchSpans, o.inflightBatches, o.queueLimit = max(1, o.batchSpans), max(1, o.inflightBatches), max(1, o.queueLimit)
	return &SpanStream{client: client, o: o, changed: make(chan struct{}), inflight: map[int64]*spanBatch{}}
}

// Send sends spans and waits until they are acknowledged.
func (s *SpanStream) Send(ctx context.Context, spans ...*aglv1.Span) (*Ack, error) {
	pending, err := s.Enqueue(ctx, spans...)
	if err != nil {
		return nil, err
	}
	return pending.Wait(ctx)
}

// Enqueue hands spans to the stream and returns at once (or, when the queue is full, once there
// is room); the returned Pending says when they are acknowledged.
func (s *SpanStream) Enqueue(ctx context.Context, spans ...*aglv1.Span) (*Pending, error) {
	pending := &Pending{done: make(chan struct{})}
	items := make([]queuedSpan, 0, len(spans))
	for i, span := range spans {
		size := wirecodec.Size(span)
		if size > s.o.maxSpanBytes {
			pending.ack.Rejected = append(pending.ack.Rejected, &aglv1.ItemError{
				Index: int32(i), Code: int32(codes.ResourceExhausted),
				Message: fmt.Sprintf("spans[%d] (%q) is %d bytes, over the %d-byte limit of one message; "+
					"trim its attributes", i, span.GetName(), size, s.o.maxSpanBytes),
			})
			continue
		}
		items = append(items, queuedSpan{pending: pending, index: i, span: span, size: size})
	}
	if len(items) == 0 {
		pending.finished = true
		close(pending.done)
		return pending, nil
	}
	pending.outstanding = len(items)
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.waitLocked(ctx, nil, func() bool {
		return s.closed || s.queued == 0 || s.queued+len(items) <= s.o.queueLimit
	})
	if err != nil {
		return nil, fmt.Errorf("agl: waiting for room in the span queue: %w", err)
	}
	if s.closed {
		return nil, &Error{Op: "send spans", Address: s.client.address,
			Err: status.Error(codes.Unavailable, "the span stream is closed")}
	}
	s.queue = append(s.queue, items...)
	s.queued += len(items)
	if !s.running {
		runCtx, stop := context.WithCancel(context.Background())
		s.running, s.stop, s.runDone = true, stop, make(chan struct{})
		go s.run(runCtx)
	}
	s.notifyLocked()
	return pending, nil
}

// Flush waits until every span enqueued so far is acknowledged or has failed.
func (s *SpanStream) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.waitLocked(ctx, nil, s.idleLocked); err != nil {
		return fmt.Errorf("agl: flushing %d spans: %w", s.queued, err)
	}
	return nil
}

// Close flushes (until ctx ends), ends the stream and fails whatever is still unacknowledged.
// Calls after Close fail with UNAVAILABLE.
func (s *SpanStream) Close(ctx context.Context) error {
	flushErr := s.Flush(ctx)
	s.mu.Lock()
	s.closed = true
	s.notifyLocked()
	running, runDone, stop := s.running, s.runDone, s.stop
	s.mu.Unlock()
	if running {
		select {
		case <-runDone:
		case <-ctx.Done():
			stop()
			<-runDone
		}
	}
	s.mu.Lock()
	s.failAllLocked(status.Error(codes.Unavailable, "the span stream was closed before these spans were acknowledged"))
	s.mu.Unlock()
	return flushErr
}

// Stats returns the stream's counters.
func (s *SpanStream) Stats() SpanStreamStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	stats := s.stats
	stats.Queued, stats.Inflight = s.queued, len(s.inflight)
	return stats
}
