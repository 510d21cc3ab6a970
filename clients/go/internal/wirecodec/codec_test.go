package wirecodec

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

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
		encoded, err := Codec{}.Marshal(message)
		if err != nil {
			t.Fatal(err)
		}
		back := message.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(encoded, back); err != nil || !proto.Equal(back, message) {
			t.Fatalf("%T decodes otherwise (%v)", message, err)
		}
		again := message.ProtoReflect().New().Interface()
		protobufs, _ := proto.Marshal(message)
		if err := (Codec{}).Unmarshal(protobufs, again); err != nil || !proto.Equal(again, message) {
			t.Fatalf("%T: protobuf's bytes decode otherwise (%v)", message, err)
		}
		if Size(message) != len(encoded) || len(encoded) != len(protobufs) {
			t.Fatalf("%T: size %d, encoded %d, protobuf %d", message, Size(message), len(encoded), len(protobufs))
		}
	}
	if _, err := (Codec{}).Marshal("not a message"); err == nil {
		t.Fatal("a string was marshalled")
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

func BenchmarkMarshalCodec(b *testing.B) {
	batch := llmBatch()
	for b.Loop() {
		if _, err := (Codec{}).Marshal(batch); err != nil {
			b.Fatal(err)
		}
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
		if err := (Codec{}).Unmarshal(raw, &aglv1.IngestSpansRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}
