package agl

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
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
		size := proto.Size(span)
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

// --- the stream ------------------------------------------------------------------------------

var errStreamEnded = status.Error(codes.Unavailable, "agl-server ended the span stream")

func (s *SpanStream) run(ctx context.Context) {
	defer func() {
		s.mu.Lock()
		s.running = false
		s.notifyLocked()
		s.mu.Unlock()
		close(s.runDone)
	}()
	// The client's retry policy (retry.go): the stream keeps reconnecting without any ack until
	// the retry deadline, then fails the spans it holds.
	o := outage{deadline: s.client.opts.retryDeadline}
	for {
		s.mu.Lock()
		err := s.waitLocked(ctx, nil, func() bool { return s.closed || s.hasWorkLocked() })
		if err != nil || (s.closed && !s.hasWorkLocked()) {
			s.mu.Unlock()
			return
		}
		ackedBefore := s.stats.BatchesAcked
		s.mu.Unlock()

		err = s.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil { // closed cleanly: everything was acknowledged
			return
		}
		code := status.Code(err)
		s.mu.Lock()
		broken := make([]*spanBatch, 0, len(s.inflight))
		for _, b := range s.inflight {
			broken = append(broken, b)
		}
		clear(s.inflight)
		if s.stats.BatchesAcked > ackedBefore { // that stream delivered: a new outage starts now
			o.succeeded()
		}
		var wait time.Duration
		retry := false
		if streamRetryable(code) {
			wait, retry = o.failed()
		}
		switch {
		case retry:
			// Oldest first, so acks keep coming in roughly the order spans were handed over.
			s.resend = append(broken, s.resend...)
			slices.SortFunc(s.resend, func(a, b *spanBatch) int { return int(a.id - b.id) })
			s.stats.Reconnects++
		case streamRetryable(code): // out of time
			failure := &Error{Op: fmt.Sprintf("deliver spans for %s", s.client.opts.retryDeadline),
				Address: s.client.address, Err: err}
			for _, b := range append(broken, s.resend...) {
				s.failBatchLocked(b, failure)
			}
			s.resend = nil
			s.failQueueLocked(failure)
			o.succeeded() // whatever comes next starts a new outage
		default: // the server's answer: these batches fail at once, nothing waits
			failure := &Error{Op: "send spans", Address: s.client.address, Err: err}
			for _, b := range broken {
				s.failBatchLocked(b, failure)
			}
			o.succeeded()
		}
		s.notifyLocked()
		s.mu.Unlock()
		if !retry {
			continue
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
	}
}

// session runs one IngestSpans stream until it breaks (returning the status) or, once the stream
// is closed and everything acknowledged, ends it cleanly (returning nil).
func (s *SpanStream) session(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	stream, err := s.client.store.IngestSpans(ctx)
	if err != nil {
		return err
	}
	recvDone := make(chan struct{})
	var recvErr error
	go func() {
		defer close(recvDone)
		recvErr = s.receive(stream)
	}()
	finish := func(err error) error {
		cancel()
		<-recvDone
		if err != nil {
			return err
		}
		return recvErr
	}
	for {
		s.mu.Lock()
		err := s.waitLocked(ctx, recvDone, func() bool {
			return (s.hasSendableLocked() && len(s.inflight) < s.o.inflightBatches) || (s.closed && s.idleLocked())
		})
		if err != nil {
			s.mu.Unlock()
			if errors.Is(err, errWaitAborted) {
				return finish(nil)
			}
			return finish(err)
		}
		if !s.hasSendableLocked() { // closed and idle: end our side, let the server end its side
			s.mu.Unlock()
			if err := stream.CloseSend(); err != nil {
				return finish(err)
			}
			<-recvDone
			if isEOF(recvErr) || recvErr == errStreamEnded {
				return nil
			}
			return recvErr
		}
		batch := s.nextBatchLocked()
		s.inflight[batch.id] = batch
		s.mu.Unlock()

		req := &aglv1.IngestSpansRequest{BatchId: batch.id, Spans: make([]*aglv1.Span, len(batch.items))}
		for i, item := range batch.items {
			req.Spans[i] = item.span
		}
		if err := stream.Send(req); err != nil {
			// Send reports io.EOF when the server ended the call; the status comes from Recv.
			<-recvDone
			return recvErr
		}
	}
}

func (s *SpanStream) receive(stream aglv1.LightningStoreService_IngestSpansClient) error {
	for {
		resp, err := stream.Recv()
		if err != nil {
			if isEOF(err) {
				return errStreamEnded
			}
			return err
		}
		s.mu.Lock()
		batch, ok := s.inflight[resp.GetBatchId()]
		if ok {
			delete(s.inflight, resp.GetBatchId())
			s.completeLocked(batch, resp)
			s.stats.BatchesAcked++
			s.notifyLocked()
		}
		s.mu.Unlock()
	}
}

// --- bookkeeping (with s.mu held) ---------------------------------------------------------------

var errWaitAborted = errors.New("wait aborted")

// waitLocked waits until cond holds; it returns ctx's error if ctx ends first, or errWaitAborted if
// abort is closed first. s.mu is held on entry and on return.
func (s *SpanStream) waitLocked(ctx context.Context, abort <-chan struct{}, cond func() bool) error {
	for !cond() {
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
			s.mu.Lock()
		case <-abort:
			s.mu.Lock()
			return errWaitAborted
		case <-ctx.Done():
			s.mu.Lock()
			return ctx.Err()
		}
	}
	return nil
}

func (s *SpanStream) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *SpanStream) hasSendableLocked() bool { return len(s.resend) > 0 || len(s.queue) > 0 }

func (s *SpanStream) hasWorkLocked() bool { return s.hasSendableLocked() || len(s.inflight) > 0 }

func (s *SpanStream) idleLocked() bool { return !s.hasWorkLocked() }

func (s *SpanStream) nextBatchLocked() *spanBatch {
	if len(s.resend) > 0 {
		batch := s.resend[0]
		s.resend[0] = nil
		s.resend = s.resend[1:]
		return batch
	}
	s.nextID++
	batch := &spanBatch{id: s.nextID}
	bytes := 0
	n := 0
	for n < len(s.queue) && n < s.o.batchSpans {
		item := s.queue[n]
		if n > 0 && bytes+item.size > s.o.batchBytes {
			break
		}
		bytes += item.size
		n++
	}
	batch.items = slices.Clone(s.queue[:n])
	clear(s.queue[:n]) // drop references so sent spans can be collected once acknowledged
	s.queue = s.queue[n:]
	return batch
}

func (s *SpanStream) completeLocked(batch *spanBatch, resp *aglv1.IngestSpansResponse) {
	duplicates := make(map[int32]bool, len(resp.GetDuplicateIndices()))
	for _, i := range resp.GetDuplicateIndices() {
		duplicates[i] = true
	}
	rejected := make(map[int32]*aglv1.ItemError, len(resp.GetRejected()))
	for _, e := range resp.GetRejected() {
		rejected[e.GetIndex()] = e
	}
	for position, item := range batch.items {
		p := item.pending
		switch e, bad := rejected[int32(position)]; {
		case duplicates[int32(position)]:
			p.ack.Duplicates = append(p.ack.Duplicates, item.index)
		case bad:
			p.ack.Rejected = append(p.ack.Rejected, &aglv1.ItemError{
				Index: int32(item.index), Code: e.GetCode(), Message: e.GetMessage(),
			})
		default:
			p.ack.Accepted++
		}
		p.outstanding--
		if p.outstanding == 0 && !p.finished {
			slices.Sort(p.ack.Duplicates)
			slices.SortFunc(p.ack.Rejected, func(a, b *aglv1.ItemError) int { return int(a.GetIndex() - b.GetIndex()) })
			p.finished = true
			close(p.done)
		}
	}
	s.queued -= len(batch.items)
}

func (s *SpanStream) failBatchLocked(batch *spanBatch, err error) {
	for _, item := range batch.items {
		item.pending.failLocked(err)
	}
	s.queued -= len(batch.items)
}

func (s *SpanStream) failQueueLocked(err error) {
	for _, item := range s.queue {
		item.pending.failLocked(err)
	}
	s.queued -= len(s.queue)
	s.queue = nil
}

func (s *SpanStream) failAllLocked(err error) {
	for _, b := range s.inflight {
		s.failBatchLocked(b, err)
	}
	clear(s.inflight)
	for _, b := range s.resend {
		s.failBatchLocked(b, err)
	}
	s.resend = nil
	s.failQueueLocked(err)
	s.notifyLocked()
}

func (p *Pending) failLocked(err error) {
	if !p.finished {
		p.finished = true
		p.err = err
		close(p.done)
	}
}
