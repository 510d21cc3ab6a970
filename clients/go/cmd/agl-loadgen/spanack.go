package main

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// loadBatches reads the span batches a span-ack run sends: a JSON list of base64-encoded
// IngestSpansRequest messages, written by bench/store_bench.py so that the Go writers send exactly
// the spans its Python writers send (and to rollouts that exist).
func loadBatches(path string) ([]*aglv1.IngestSpansRequest, error) {
	if path == "" {
		return nil, fmt.Errorf("-scenario span-ack needs -batches (a JSON list of base64 IngestSpansRequest messages)")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read -batches: %w", err)
	}
	var encoded []string
	if err := json.Unmarshal(data, &encoded); err != nil {
		return nil, fmt.Errorf("-batches %s is not a JSON list of strings: %w", path, err)
	}
	batches := make([]*aglv1.IngestSpansRequest, 0, len(encoded))
	for i, text := range encoded {
		raw, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			return nil, fmt.Errorf("-batches[%d] is not base64: %w", i, err)
		}
		batch := &aglv1.IngestSpansRequest{}
		if err := proto.Unmarshal(raw, batch); err != nil {
			return nil, fmt.Errorf("-batches[%d] is not an IngestSpansRequest: %w", i, err)
		}
		if len(batch.GetSpans()) == 0 {
			return nil, fmt.Errorf("-batches[%d] holds no spans", i)
		}
		batches = append(batches, batch)
	}
	if len(batches) == 0 {
		return nil, fmt.Errorf("-batches %s holds no batch", path)
	}
	return batches, nil
}

// runSpanAck runs -writers closed-loop span writers, each with an IngestSpans stream of its own
// (spread over the -conns connections): a writer sends one batch (fresh span ids, so every span is
// stored anew), waits for its ack and sends the next. Over the measured window it times each
// batch from its send to its ack: the latency of a durable span write as a writer sees it.
func runSpanAck(ctx context.Context, f *fleet) (map[string]any, error) {
	batches, err := loadBatches(f.cfg.batches)
	if err != nil {
		return nil, err
	}
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		acked     atomic.Int64 // batches acked with every span stored, in the window
		total     atomic.Int64 // batches acked with every span stored, warm-up included
		bad       atomic.Int64 // acks that did not store every span, any time
		mu        sync.Mutex
		latencies []float64
		timeline  []sample // with -latencies
	)
	errs := make(chan error, f.cfg.writers)
	var wg sync.WaitGroup
	for w := range f.cfg.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			client := aglv1.NewLightningStoreServiceClient(f.conns[w%len(f.conns)])
			streamCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			stream, err := client.IngestSpans(streamCtx, grpc.ForceCodecV2(rawCodec{}))
			if err != nil {
				errs <- fmt.Errorf("writer %d: IngestSpans: %w", w, err)
				return
			}
			next, spans, err := batchMaker(batches[w%len(batches)], f.cfg.encode, ids)
			if err != nil {
				errs <- fmt.Errorf("writer %d: %w", w, err)
				return
			}
			mine := make([]float64, 0, 4096)
			var sent []sample
			for id := int64(1); !stop.Load(); id++ {
				message := next(id)
				at := time.Now()
				if err := stream.SendMsg(message); err != nil {
					errs <- fmt.Errorf("writer %d: send: %w", w, err)
					return
				}
				ack, err := stream.Recv()
				if err != nil {
					errs <- fmt.Errorf("writer %d: ack: %w", w, err)
					return
				}
				took := time.Since(at)
				if ack.GetBatchId() != id || int(ack.GetAccepted()) != spans {
					if bad.Add(1) <= 3 {
						logf("writer %d: batch %d acked as %d with %d of %d spans stored (%d rejected)",
							w, id, ack.GetBatchId(), ack.GetAccepted(), spans, len(ack.GetRejected()))
					}
					continue
				}
				total.Add(1)
				if measuring.Load() {
					acked.Add(1)
					mine = append(mine, took.Seconds())
					if f.cfg.latencies != "" {
						sent = append(sent, sample{w, at.UnixNano(), took.Nanoseconds()})
					}
				}
			}
			_ = stream.CloseSend()
			mu.Lock()
			latencies = append(latencies, mine...)
			timeline = append(timeline, sent...)
			mu.Unlock()
		}()
	}
	time.Sleep(f.cfg.warmup)
	logf("measuring %s with %d span writers", f.cfg.duration, f.cfg.writers)
	// The writers' own allocations and garbage collections over the window: on a machine they
	// share with agl-server, a collection's marking takes CPU from the server and delays the
	// writers' receives, so it shows in the latencies measured.
	var memBefore, memAfter runtime.MemStats
	runtime.ReadMemStats(&memBefore)
	measuring.Store(true)
	started := time.Now()
	time.Sleep(f.cfg.duration)
	measuring.Store(false)
	window := time.Since(started)
	runtime.ReadMemStats(&memAfter)
	stop.Store(true)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	if f.cfg.latencies != "" {
		if err := writeSamples(f.cfg.latencies, timeline); err != nil {
			return nil, err
		}
	}
	out := map[string]any{
		"writers":         f.cfg.writers,
		"spans_per_batch": len(batches[0].GetSpans()),
		"window_s":        window.Seconds(),
		"batches_acked":   acked.Load(),
		"batches_per_s":   float64(acked.Load()) / window.Seconds(),
		"batches_total":   total.Load(),
		"bad_acks":        bad.Load(),
		"encode":          f.cfg.encode,
		"gc_cycles":       memAfter.NumGC - memBefore.NumGC,
		"alloc_bytes_per_batch": float64(memAfter.TotalAlloc-memBefore.TotalAlloc) /
			float64(max(1, acked.Load())),
	}
	addPercentiles(out, "ack", latencies)
	return out, nil
}

// batchMaker gives the message a writer sends as its batch batchID (the spans of batch with new span
// ids), and how many spans it holds. encode "once": batch serialized once, the ids written into its
// bytes (encodedBatch); "each": this writer's copy of batch, its ids set and marshalled for each send,
// as a client building its spans anew would.
func batchMaker(batch *aglv1.IngestSpansRequest, encode string, ids *rand.Rand) (func(int64) any, int, error) {
	spans := len(batch.GetSpans())
	switch encode {
	case "once":
		encoded, err := encodeBatch(batch)
		if err != nil {
			return nil, 0, err
		}
		spanID := func(_ int, dst []byte) { binary.BigEndian.PutUint64(dst, ids.Uint64()|1) } // never all zero
		return func(batchID int64) any { return encoded.next(batchID, spanID) }, spans, nil
	case "each":
		// This writer's own copy, sent again and again with new span ids: cloning the spans for
		// every batch cost more CPU than the rest of the client.
		mine := proto.Clone(batch).(*aglv1.IngestSpansRequest)
		return func(batchID int64) any {
			mine.BatchId = batchID
			for _, span := range mine.Spans {
				span.SpanId = binary.BigEndian.AppendUint64(span.SpanId[:0], ids.Uint64()|1) // never all zero
			}
			return mine
		}, spans, nil
	}
	return nil, 0, fmt.Errorf("-encode %q: give once or each", encode)
}

// sample is one batch acked in the measured window, for -latencies: when latency rose and for
// whom (all writers at once points at the server, one writer at its stream).
type sample struct {
	writer  int
	sentNs  int64
	latency int64
}

func writeSamples(path string, samples []sample) error {
	slices.SortFunc(samples, func(a, b sample) int { return cmp.Compare(a.sentNs, b.sentNs) })
	var text strings.Builder
	for _, s := range samples {
		fmt.Fprintf(&text, "%d %d %d\n", s.writer, s.sentNs, s.latency)
	}
	if err := os.WriteFile(path, []byte(text.String()), 0o644); err != nil {
		return fmt.Errorf("cannot write -latencies: %w", err)
	}
	return nil
}
