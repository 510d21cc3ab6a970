package main

import (
	"fmt"

	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
	"github.com/agl-dev/agl/clients/go/internal/wirecodec"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// encodedBatch is an IngestSpansRequest serialized once, sent again and again with new span ids and
// batch ids written into its bytes. Marshalling every send takes CPU the writers share with the
// agl-server being measured (with protobuf's reflection it was more than half of agl-loadgen's;
// with the client's generated code, wirecodec, less): -encode once leaves only the copy and the
// ids, -encode each marshals every send, as a client building its spans would.
type encodedBatch struct {
	prefix  []byte // the spans, without batch_id
	spanIDs []int  // offsets in prefix of each span's 8-byte span_id
}

var (
	batchIDField = protowire.Number((&aglv1.IngestSpansRequest{}).ProtoReflect().Descriptor().Fields().ByName("batch_id").Number())
	spansField   = protowire.Number((&aglv1.IngestSpansRequest{}).ProtoReflect().Descriptor().Fields().ByName("spans").Number())
	spanIDField  = protowire.Number((&aglv1.Span{}).ProtoReflect().Descriptor().Fields().ByName("span_id").Number())
)

// encodeBatch serializes batch without its batch_id and finds each span's span_id in the bytes; every
// span must have an 8-byte span_id (the bytes are overwritten in place for each send).
func encodeBatch(batch *aglv1.IngestSpansRequest) (*encodedBatch, error) {
	spansOnly := &aglv1.IngestSpansRequest{Spans: batch.GetSpans()}
	prefix, err := proto.MarshalOptions{Deterministic: true}.Marshal(spansOnly)
	if err != nil {
		return nil, err
	}
	out := &encodedBatch{prefix: prefix}
	for at := 0; at < len(prefix); {
		number, kind, n := protowire.ConsumeTag(prefix[at:])
		if n < 0 || number != spansField || kind != protowire.BytesType {
			return nil, fmt.Errorf("unexpected field %d at byte %d of the encoded batch", number, at)
		}
		span, m := protowire.ConsumeBytes(prefix[at+n:])
		if m < 0 {
			return nil, fmt.Errorf("truncated span at byte %d of the encoded batch", at)
		}
		offset, err := spanIDOffset(span)
		if err != nil {
			return nil, fmt.Errorf("span %d: %w", len(out.spanIDs), err)
		}
		out.spanIDs = append(out.spanIDs, at+n+(m-len(span))+offset)
		at += n + m
	}
	return out, nil
}

// spanIDOffset is where the 8 bytes of span's span_id start in span (its serialized bytes).
func spanIDOffset(span []byte) (int, error) {
	for at := 0; at < len(span); {
		number, kind, n := protowire.ConsumeTag(span[at:])
		if n < 0 {
			return 0, fmt.Errorf("bad tag at byte %d", at)
		}
		if number == spanIDField && kind == protowire.BytesType {
			value, m := protowire.ConsumeBytes(span[at+n:])
			if m < 0 || len(value) != 8 {
				return 0, fmt.Errorf("span_id is not 8 bytes")
			}
			return at + n + m - 8, nil
		}
		m := protowire.ConsumeFieldValue(number, kind, span[at+n:])
		if m < 0 {
			return 0, fmt.Errorf("bad field %d at byte %d", number, at)
		}
		at += n + m
	}
	return 0, fmt.Errorf("no span_id")
}

// next returns the message to send: the spans with ids(i) as the i-th span's id, then batch_id. A new
// slice each time, since gRPC may still hold the last one's bytes until they are on the wire.
func (b *encodedBatch) next(batchID int64, ids func(i int, dst []byte)) rawMessage {
	out := make([]byte, len(b.prefix), len(b.prefix)+11)
	copy(out, b.prefix)
	for i, at := range b.spanIDs {
		ids(i, out[at:at+8])
	}
	out = protowire.AppendTag(out, batchIDField, protowire.VarintType)
	return protowire.AppendVarint(out, uint64(batchID))
}

// rawMessage is a message already serialized; rawCodec sends it as it is.
type rawMessage []byte

// rawCodec sends rawMessage values as they are and everything else as the agl client does
// (wirecodec), so the stream's acks are still parsed messages. Its name is "proto": the server
// sees the usual content-type.
type rawCodec struct{ wirecodec.Codec }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if raw, ok := v.(rawMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(raw)}, nil
	}
	return c.Codec.Marshal(v)
}
