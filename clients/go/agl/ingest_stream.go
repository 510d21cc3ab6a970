package agl

// The connection side of a SpanStream: the loop that opens the IngestSpans stream (again after a
// failure, resending what was not acknowledged), sends batches and matches acks to them, and the
// bookkeeping of queued, in-flight and resent batches it does under the stream's lock.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
)

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
