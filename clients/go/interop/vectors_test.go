// Package interop checks the Go side of the cross-language interop vectors
// (clients/interop/vectors): Go encodes every vector, decodes the Python and TypeScript
// encodings and compares them with its own, value for value and, where the vector says so,
// byte for byte. See tests/interop/test_vectors.py for the scheme.
package interop

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/agl-dev/agl/clients/go/gen/agl/v1" // registers the agl.v1 messages
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
