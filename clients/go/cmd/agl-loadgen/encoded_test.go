package main

import (
	"bytes"
	"encoding/binary"
	"testing"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
	"google.golang.org/protobuf/proto"
)

func testBatch() *aglv1.IngestSpansRequest {
	batch := &aglv1.IngestSpansRequest{BatchId: 5}
	for i := range 3 {
		batch.Spans = append(batch.Spans, &aglv1.Span{
			RolloutId: "ro-1",
			AttemptId: "at-1",
			TraceId:   bytes.Repeat([]byte{7}, 16),
			SpanId:    binary.BigEndian.AppendUint64(nil, uint64(100+i)),
			Name:      "llm call",
			// A field after span_id, so that writing the id cannot spill into what follows unseen.
			Attributes: []*aglv1.KeyValue{{Key: "n", Value: &aglv1.AnyValue{Value: &aglv1.AnyValue_IntValue{IntValue: int64(i)}}}},
		})
	}
	return batch
}

// The bytes sent are the batch itself, with each span's new id and the batch id: decoded, they equal
// the original with those two changed.
func TestEncodedBatchIsTheBatchWithNewIDs(t *testing.T) {
	batch := testBatch()
	encoded, err := encodeBatch(batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(encoded.spanIDs) != len(batch.Spans) {
		t.Fatalf("found %d span ids, want %d", len(encoded.spanIDs), len(batch.Spans))
	}
	for round := range int64(2) {
		id := func(i int, dst []byte) { binary.BigEndian.PutUint64(dst, uint64(1000*(round+1))+uint64(i)) }
		raw := encoded.next(1<<40+round, id) // a batch id of several varint bytes
		got := &aglv1.IngestSpansRequest{}
		if err := proto.Unmarshal(raw, got); err != nil {
			t.Fatal(err)
		}
		want := proto.Clone(batch).(*aglv1.IngestSpansRequest)
		want.BatchId = 1<<40 + round
		for i, span := range want.Spans {
			span.SpanId = binary.BigEndian.AppendUint64(nil, uint64(1000*(round+1))+uint64(i))
		}
		if !proto.Equal(got, want) {
			t.Fatalf("round %d: decoded %v, want %v", round, got, want)
		}
	}
	// next copies: the prefix keeps its original ids for the next send.
	first := &aglv1.IngestSpansRequest{}
	if err := proto.Unmarshal(encoded.prefix, first); err != nil || !bytes.Equal(first.Spans[0].SpanId, batch.Spans[0].SpanId) {
		t.Fatalf("the kept bytes changed: %v %v", first, err)
	}
}

func TestEncodeBatchNeedsEightByteSpanIDs(t *testing.T) {
	batch := testBatch()
	batch.Spans[1].SpanId = []byte{1, 2, 3}
	if _, err := encodeBatch(batch); err == nil {
		t.Fatal("a 3-byte span id was accepted")
	}
	batch.Spans[1].SpanId = nil
	if _, err := encodeBatch(batch); err == nil {
		t.Fatal("a span without an id was accepted")
	}
}
