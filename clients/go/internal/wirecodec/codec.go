// Package wirecodec is the gRPC codec of agl's Go client: protobuf's wire format, encoded and
// decoded by the code protoc-gen-go-vtproto generates for agl's messages (MarshalVT, UnmarshalVT)
// instead of protobuf's reflection. A 10-span batch of LLM-call spans (token-id arrays of hundreds
// of values) took 72.8 us to marshal by reflection and 11.4 us this way (bench/go_codec_bench.py):
// a Go agent streaming spans spent most of its client CPU there. Messages without the generated methods (none of agl's) go
// through protobuf as before. The bytes are the same wire format any reader parses
// (interop/vectors_test.go decodes them against every language's encoding).
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
	"google.golang.org/protobuf/proto"
)

type vtMessage interface {
	MarshalVT() ([]byte, error)
	UnmarshalVT([]byte) error
	SizeVT() int
}

// Codec implements grpc's encoding.Codec under the name "proto", so the server sees the usual
// content-type.
type Codec struct{}

// Marshal encodes v (a protobuf message).
func (Codec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(vtMessage); ok {
		return m.MarshalVT()
	}
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("wirecodec: cannot marshal %T, not a protobuf message", v)
	}
	return proto.Marshal(m)
}

// Unmarshal decodes data into v, a new message (as gRPC passes it).
func (Codec) Unmarshal(data []byte, v any) error {
	if m, ok := v.(vtMessage); ok {
		return m.UnmarshalVT(data)
	}
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("wirecodec: cannot unmarshal into %T, not a protobuf message", v)
	}
	return proto.Unmarshal(data, m)
}

// Name is the content-subtype: "proto".
func (Codec) Name() string { return "proto" }

// CallOption makes every call of a connection use Codec (grpc.WithDefaultCallOptions).
func CallOption() grpc.CallOption { return grpc.ForceCodec(Codec{}) }

// Size is the encoded size of m, without reflection where the generated SizeVT exists.
func Size(m proto.Message) int {
	if v, ok := m.(vtMessage); ok {
		return v.SizeVT()
	}
	return proto.Size(m)
}
