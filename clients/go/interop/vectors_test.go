// Package interop checks the Go side of the cross-language interop vectors
// (clients/interop/vectors): Go encodes every vector, decodes the Python and TypeScript
// encodings and compares them with its own, value for value and, where the vector says so,
// byte for byte. See tests/interop/test_vectors.py for the scheme.
package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/agl-dev/agl/clients/go/gen/agl/v1" // registers the agl.v1 messages
	"github.com/agl-dev/agl/clients/go/internal/wirecodec"
)

var languages = []string{"python", "go", "ts"}

type vector struct {
	Description string          `json:"description"`
	Type        string          `json:"type"`
	ByteExact   bool            `json:"byte_exact"`
	Message     json.RawMessage `json:"message"`
}

func vectorsDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "interop", "vectors"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

var deterministic = proto.MarshalOptions{Deterministic: true}

func TestVectors(t *testing.T) {
	dir := vectorsDir(t)
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(paths) < 10 {
		t.Fatalf("vectors in %s: %d, %v", dir, len(paths), err)
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var v vector
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(v.Type))
			if err != nil {
				t.Fatalf("type %s: %v", v.Type, err)
			}
			message := mt.New().Interface()
			if err := protojson.Unmarshal(v.Message, message); err != nil {
				t.Fatalf("parse the description: %v", err)
			}
			ours, err := deterministic.Marshal(message)
			if err != nil {
				t.Fatal(err)
			}
			mine := filepath.Join(dir, "encoded", "go", name+".binpb")
			if os.Getenv("AGL_UPDATE_VECTORS") == "1" { // write only; the others may not be rewritten yet
				if err := os.WriteFile(mine, ours, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if stored, err := os.ReadFile(mine); err != nil || !bytes.Equal(stored, ours) {
				t.Fatalf("%s is stale or missing (%v); run `make interop-vectors`", mine, err)
			}

			// The client's codec (generated marshalling) writes what protobuf reads back as the
			// same message, and its size is the size of those bytes.
			if err := checkCodec(message, ours); err != nil {
				t.Fatal(err)
			}

			// The description survives a round trip through Go's JSON writer and parser.
			text, err := protojson.Marshal(message)
			if err != nil {
				t.Fatal(err)
			}
			again := mt.New().Interface()
			if err := protojson.Unmarshal(text, again); err != nil {
				t.Fatal(err)
			}
			if b, _ := deterministic.Marshal(again); !bytes.Equal(b, ours) {
				t.Fatalf("JSON round trip changed the message: %s", text)
			}

			for _, language := range languages {
				theirs, err := os.ReadFile(filepath.Join(dir, "encoded", language, name+".binpb"))
				if err != nil {
					t.Fatalf("%s encoding: %v", language, err)
				}
				decoded := mt.New().Interface()
				if err := proto.Unmarshal(theirs, decoded); err != nil {
					t.Fatalf("decode %s's encoding: %v", language, err)
				}
				// The client's codec reads the other language's bytes as protobuf does.
				viaCodec := mt.New().Interface()
				if err := wirecodec.Decode(theirs, viaCodec); err != nil || !proto.Equal(viaCodec, decoded) {
					t.Fatalf("the client's codec decodes %s's encoding otherwise (%v):\n%v\nwant\n%v", language, err, viaCodec, decoded)
				}
				// proto.Equal compares values (NaN equals NaN); no unknown fields means nothing was lost.
				if !proto.Equal(decoded, message) {
					t.Fatalf("%s's encoding decodes to a different value in Go:\n%v\nwant\n%v", language, decoded, message)
				}
				if unknown := decoded.ProtoReflect().GetUnknown(); len(unknown) > 0 {
					t.Fatalf("%s's encoding has fields Go does not know", language)
				}
				if v.ByteExact && !bytes.Equal(theirs, ours) {
					t.Fatalf("%s encodes %s with other bytes than Go", language, name)
				}
			}
		})
	}
}

// checkCodec: wirecodec encodes message to bytes protobuf parses back to an equal message, with
// no unknown fields, of the size wirecodec.Size says; protobuf's own encoding has that size too.
func checkCodec(message proto.Message, protobufs []byte) error {
	encoded, err := wirecodec.Encode(message)
	if err != nil {
		return fmt.Errorf("the client's codec cannot encode it: %w", err)
	}
	back := message.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(encoded, back); err != nil || !proto.Equal(back, message) {
		return fmt.Errorf("the client's codec encodes it otherwise (%v):\n%v\nwant\n%v", err, back, message)
	}
	if len(back.ProtoReflect().GetUnknown()) > 0 {
		return fmt.Errorf("the client's codec writes fields protobuf does not know")
	}
	if size := wirecodec.Size(message); size != len(encoded) || size != len(protobufs) {
		return fmt.Errorf("size %d, encoded %d bytes, protobuf %d bytes", size, len(encoded), len(protobufs))
	}
	return nil
}
