package wirecodec

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
)

// llmBatch is ten spans like the ones agents send through the LLM proxy: text attributes and two
// token-id arrays (42 and 12 ids) each.
func llmBatch() *aglv1.IngestSpansRequest {
	batch := &aglv1.IngestSpansRequest{BatchId: 1}
	ids := func(from, n int) *aglv1.AnyValue {
		array := &aglv1.ArrayValue{}
		for i := range n {
			array.Values = append(array.Values, &aglv1.AnyValue{Value: &aglv1.AnyValue_IntValue{IntValue: int64(from + i)}})
		}
		return &aglv1.AnyValue{Value: &aglv1.AnyValue_ArrayValue{ArrayValue: array}}
	}
	text := func(key, value string) *aglv1.KeyValue {
		return &aglv1.KeyValue{Key: key, Value: &aglv1.AnyValue{Value: &aglv1.AnyValue_StringValue{StringValue: value}}}
	}
	for i := range 10 {
		batch.Spans = append(batch.Spans, &aglv1.Span{
			RolloutId: "ro-000001", AttemptId: "at-000001", Name: "openai.chat.completion",
			SpanId: binary.BigEndian.AppendUint64(nil, uint64(i+1)), TraceId: make([]byte, 16),
			Attributes: []*aglv1.KeyValue{
				text("gen_ai.system", "openai"), text("gen_ai.request.model", "tiny"),
				text("gen_ai.response.id", fmt.Sprint("chatcmpl-", i)),
				text("agl.llm.request", strings.Repeat("ask ", 60)), text("agl.llm.response", "héllo, 你好 🙂"),
				{Key: "agl.llm.prompt_token_ids", Value: ids(1000, 42)},
				{Key: "agl.llm.response_token_ids", Value: ids(2000, 12)},
			},
			SequenceId: int64(i + 1),
		})
	}
	return batch
}

func TestCodecWritesWhatProtobufReads(t *testing.T) {
	for _, message := range []proto.Message{
		llmBatch(),
		&aglv1.IngestSpansResponse{BatchId: 3, Accepted: 9, DuplicateIndices: []int32{1, 4}},
		structpb.NewStringValue("no generated methods: protobuf's own"),
	} {
		encoded, err := Encode(message)
		if err != nil {
			t.Fatal(err)
		}
		back := message.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(encoded, back); err != nil || !proto.Equal(back, message) {
			t.Fatalf("%T decodes otherwise (%v)", message, err)
		}
		again := message.ProtoReflect().New().Interface()
		protobufs, _ := proto.Marshal(message)
		if err := Decode(protobufs, again); err != nil || !proto.Equal(again, message) {
			t.Fatalf("%T: protobuf's bytes decode otherwise (%v)", message, err)
		}
		if Size(message) != len(encoded) || len(encoded) != len(protobufs) {
			t.Fatalf("%T: size %d, encoded %d, protobuf %d", message, Size(message), len(encoded), len(protobufs))
		}
	}
	if _, err := Encode("not a message"); err == nil {
		t.Fatal("a string was marshalled")
	}
}

// A span batch is marshalled into a buffer from gRPC's pool, which gRPC frees once the message is
// written: a writer sending batch after batch makes almost no garbage. (Before, 12.8 KB per batch
// sent; bench/store_bench.py --ack-only --go-client reports it.)
func TestMarshalReusesPooledBuffers(t *testing.T) {
	batch := llmBatch()
	size := Size(batch)
	if mem.IsBelowBufferPoolingThreshold(size) {
		t.Fatalf("the batch (%d bytes) is below gRPC's pooling threshold: it tests nothing", size)
	}
	send := func() {
		data, err := Codec{}.Marshal(batch)
		if err != nil {
			t.Fatal(err)
		}
		if data.Len() != size {
			t.Fatalf("marshalled %d bytes, size %d", data.Len(), size)
		}
		data.Free()
	}
	send() // the pool's first buffer of this size
	const sends = 200
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range sends {
		send()
	}
	runtime.ReadMemStats(&after)
	if perSend := (after.TotalAlloc - before.TotalAlloc) / sends; perSend > uint64(size)/8 {
		t.Fatalf("%d bytes allocated per send of a %d-byte batch: the buffer is not reused", perSend, size)
	}
}

// A pooled buffer comes back holding the last message's bytes; the next message, of another
// size, must not carry any of them, nor a received message the buffers it was read from.
func TestPooledBuffersCarryNothingOver(t *testing.T) {
	long, short := llmBatch(), llmBatch()
	short.Spans = short.Spans[:7]
	for _, message := range []*aglv1.IngestSpansRequest{long, short, long, short} {
		raw, err := Encode(message) // through a pooled buffer, freed
		if err != nil {
			t.Fatal(err)
		}
		// As gRPC hands a large message over: in several buffers.
		third := len(raw) / 3
		parts := mem.BufferSlice{
			mem.SliceBuffer(raw[:third]), mem.SliceBuffer(raw[third : 2*third]), mem.SliceBuffer(raw[2*third:]),
		}
		back := &aglv1.IngestSpansRequest{}
		if err := (Codec{}).Unmarshal(parts, back); err != nil || !proto.Equal(back, message) {
			t.Fatalf("a %d-span batch came back otherwise (%v)", len(message.Spans), err)
		}
		clear(raw) // what it was read from is gone; what it decoded is its own
		if !proto.Equal(back, message) {
			t.Fatal("the decoded batch shares bytes with the buffers it was read from")
		}
	}
}

// go test -bench . ./internal/wirecodec (bench/go_codec_bench.py runs it and saves the table).
func BenchmarkMarshalProtobuf(b *testing.B) {
	batch := llmBatch()
	for b.Loop() {
		if _, err := proto.Marshal(batch); err != nil {
			b.Fatal(err)
		}
	}
}

// gRPC's own codec, which the client used before: reflection, into a pooled buffer.
func BenchmarkMarshalGrpcCodec(b *testing.B) {
	batch := llmBatch()
	codec := encoding.GetCodecV2(grpcproto.Name)
	for b.Loop() {
		data, err := codec.Marshal(batch)
		if err != nil {
			b.Fatal(err)
		}
		data.Free()
	}
}

func BenchmarkMarshalCodec(b *testing.B) {
	batch := llmBatch()
	for b.Loop() {
		data, err := (Codec{}).Marshal(batch)
		if err != nil {
			b.Fatal(err)
		}
		data.Free() // as gRPC does once the message is written
	}
}

func BenchmarkUnmarshalProtobuf(b *testing.B) {
	raw, _ := proto.Marshal(llmBatch())
	for b.Loop() {
		if err := proto.Unmarshal(raw, &aglv1.IngestSpansRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalCodec(b *testing.B) {
	raw, _ := proto.Marshal(llmBatch())
	for b.Loop() {
		if err := Decode(raw, &aglv1.IngestSpansRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}
