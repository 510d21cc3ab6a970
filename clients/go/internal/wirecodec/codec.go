// Package wirecodec is the gRPC codec of agl's Go client: protobuf's wire format, encoded and
// decoded by the code protoc-gen-go-vtproto generates for agl's messages (MarshalVT, UnmarshalVT)
// instead of protobuf's reflection. A 10-span batch of LLM-call spans (token-id arrays of hundreds
// of values) took 72.8 us to marshal by reflection and 11.4 us this way (bench/go_codec_bench.py):
// a Go agent streaming spans spent most of its client CPU there. Messages without the generated methods (none of agl's) go
// through protobuf as before. The bytes are the same wire format any reader parses
// (interop/vectors_test.go decodes them against every language's encoding).
//
// Marshalled messages past gRPC's pooling threshold (1 KiB; a span batch is several) are written
// into a buffer from gRPC's pool, which gRPC puts back once the message is on the wire, and
// received ones are read from pooled buffers too, as gRPC's own codec does. Before, each 10-span
// batch a writer sent left 12.8 KB of garbage, and the collections it caused showed in the
// latency of its acks (bench/store_bench.py --ack-only --go-client, "allocated per batch").
//
// One difference: the generated code does not check that string fields are valid UTF-8. Sending,
// protobuf's refused the whole message (and the span stream then waited for acks until the
// caller's deadline); now agl-server's check of every span it is sent (span_checks.py) rejects
// such a span alone, by its index, and stores the others in its batch. Receiving, what agl-server
// sends was checked when it was stored.
package wirecodec

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

type vtMessage interface {
	MarshalToSizedBufferVT([]byte) (int, error)
	UnmarshalVT([]byte) error
	SizeVT() int
}

// Codec implements grpc's encoding.CodecV2 under the name "proto", so the server sees the usual
// content-type.
type Codec struct{}

// Marshal encodes v (a protobuf message).
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(vtMessage); ok {
		size := m.SizeVT()
		if mem.IsBelowBufferPoolingThreshold(size) {
			buf := make([]byte, size)
			if err := marshalInto(m, buf); err != nil {
				return nil, err
			}
			return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
		}
		pool := mem.DefaultBufferPool()
		buf := pool.Get(size)
		if err := marshalInto(m, *buf); err != nil {
			pool.Put(buf)
			return nil, err
		}
		return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("wirecodec: cannot marshal %T, not a protobuf message", v)
	}
	buf, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
}

// marshalInto fills buf, of exactly m's size: the generated code writes from the end backwards,
// so a message that wrote less would leave the pooled buffer's old bytes in front of it.
func marshalInto(m vtMessage, buf []byte) error {
	n, err := m.MarshalToSizedBufferVT(buf)
	if err != nil {
		return err
	}
	if n != len(buf) {
		return fmt.Errorf("wirecodec: %T wrote %d bytes of the %d its size gave", m, n, len(buf))
	}
	return nil
}

// Unmarshal decodes data into v, a new message (as gRPC passes it). The generated code copies
// what it keeps (strings, bytes), so the pooled buffer goes back to the pool right after.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	if m, ok := v.(vtMessage); ok {
		return m.UnmarshalVT(buf.ReadOnlyData())
	}
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("wirecodec: cannot unmarshal into %T, not a protobuf message", v)
	}
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

// Name is the content-subtype: "proto".
func (Codec) Name() string { return "proto" }

// CallOption makes every call of a connection use Codec (grpc.WithDefaultCallOptions).
func CallOption() grpc.CallOption { return grpc.ForceCodecV2(Codec{}) }

// Encode is Marshal's bytes as one slice (tests, tools): the pooled buffer copied out and freed.
func Encode(v any) ([]byte, error) {
	data, err := Codec{}.Marshal(v)
	if err != nil {
		return nil, err
	}
	defer data.Free()
	return data.Materialize(), nil
}

// Decode is Unmarshal from one slice (tests, tools).
func Decode(raw []byte, v any) error {
	return Codec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, v)
}

// Size is the encoded size of m, without reflection where the generated SizeVT exists.
func Size(m proto.Message) int {
	if v, ok := m.(vtMessage); ok {
		return v.SizeVT()
	}
	return proto.Size(m)
}
