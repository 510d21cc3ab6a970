package agl_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/agl-dev/agl/clients/go/agl"
	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
	"github.com/agl-dev/agl/clients/go/internal/testserver"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, address string, opts ...agl.Option) *agl.Client {
	t.Helper()
	client, err := agl.NewClient(address, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Close(ctx)
	})
	return client
}

func mustValue(t *testing.T, v any) *structpb.Value {
	t.Helper()
	value, err := agl.JSONValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return value
}

func promptResources(template string) map[string]*aglv1.Resource {
	return map[string]*aglv1.Resource{
		"prompt": {Kind: &aglv1.Resource_PromptTemplate{PromptTemplate: &aglv1.PromptTemplate{
			Template: template, Engine: aglv1.PromptTemplateEngine_PROMPT_TEMPLATE_ENGINE_F_STRING,
		}}},
		"llm": {Kind: &aglv1.Resource_Llm{Llm: &aglv1.LLM{Endpoint: "http://127.0.0.1:9/v1", Model: "offline"}}},
	}
}

// The whole life of a rollout through the Go client: enqueue, take it with a long poll, read the
// latest resources, stream spans of every attribute type with acks, emit a reward, finish, wait;
// then Python reads the spans and the reward back.
func TestRolloutLifecycle(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)

	if _, err := client.AddResources(ctx, "res-old", promptResources("old {question}")); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AddResources(ctx, "res-1", promptResources("Q: {question} (tags: {meta[tags][1]})")); err != nil {
		t.Fatal(err)
	}
	input := map[string]any{
		"question": "What is 6 * 7?",
		"meta":     map[string]any{"tags": []any{"math", "easy"}, "level": 2.0, "ok": true, "none": nil},
	}
	// Plain Go values in, statuses by name out.
	rollouts, err := client.EnqueueRollouts(ctx, agl.RolloutSpec{
		RolloutID: "ro-go-1", Input: input, Mode: "train", Config: &aglv1.RolloutConfig{MaxAttempts: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := agl.StatusName(rollouts[0].GetStatus()); got != "queuing" {
		t.Fatalf("enqueued rollout is %s, want queuing", got)
	}

	source := agl.NewDequeueSource(client, "go-worker", 5*time.Second)
	assignment, err := source.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if assignment.Rollout.GetRolloutId() != "ro-go-1" || assignment.Rollout.GetAttempt().GetSequenceId() != 1 {
		t.Fatalf("dequeued %v, want ro-go-1 with its first attempt", assignment.Rollout)
	}
	if worker := assignment.Rollout.GetAttempt().GetWorkerId(); worker != "go-worker" {
		t.Fatalf("attempt is held by %q, want go-worker", worker)
	}
	task := agl.NewTask(client, source, assignment)
	if !equalJSON(task.Input(), input) {
		t.Fatalf("task input %v, want %v", task.Input(), input)
	}

	template, err := task.PromptTemplate(ctx, "prompt")
	if err != nil {
		t.Fatal(err)
	}
	prompt, err := agl.FormatPrompt(template, task.Input().(map[string]any))
	if err != nil {
		t.Fatal(err)
	}
	if prompt != "Q: What is 6 * 7? (tags: easy)" {
		t.Fatalf("prompt from the latest resources is %q", prompt)
	}

	tool := task.StartSpan("calculator", agl.Attr(agl.AttrToolName, "calculator"))
	attrs := []*aglv1.KeyValue{
		agl.Attr("s", "héllo ✓"), agl.Attr("b", true), agl.Attr("i", int64(-1)<<62), agl.Attr("d", 0.1),
		agl.Attr("raw", []byte{0, 1, 254, 255}),
		agl.Attr("nested", []any{1, []any{"x", false}, map[string]any{"k": 2.5}}),
		agl.Attr("kv", map[string]any{"z": int64(1), "a": map[string]any{"deep": []byte("x")}}),
	}
	if err := task.End(ctx, tool, attrs...); err != nil {
		t.Fatal(err)
	}
	if err := task.EmitReward(ctx, 0.75); err != nil {
		t.Fatal(err)
	}
	if err := task.Finish(ctx, aglv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED, nil); err != nil {
		t.Fatal(err)
	}
	if err := task.Emit(ctx, agl.NewSpan("late")); err == nil {
		t.Fatal("a finished task accepted another span")
	}

	done, pending, err := client.WaitForRollouts(ctx, []string{"ro-go-1"}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 0 || done[0].GetStatus() != aglv1.RolloutStatus_ROLLOUT_STATUS_SUCCEEDED {
		t.Fatalf("rollout not succeeded: done=%v pending=%v", done, pending)
	}

	testserver.VerifyRollout(t, server.Address, "", "ro-go-1", testserver.Expect{
		Status: "succeeded", Reward: testserver.Ptr(0.75), SpanCount: 3,
		Spans: []testserver.ExpectedSpan{
			{Name: agl.SpanRollout, Parent: testserver.Ptr("")},
			{Name: "calculator", Parent: testserver.Ptr(agl.SpanRollout), Attributes: map[string]any{
				agl.AttrToolName: "calculator", "s": "héllo ✓", "b": true, "i": -(int64(1) << 62), "d": 0.1,
				"raw":    map[string]any{"bytes": "0001feff"},
				"nested": []any{1, []any{"x", false}, map[string]any{"k": 2.5}},
				"kv":     map[string]any{"z": 1, "a": map[string]any{"deep": map[string]any{"bytes": "78"}}},
			}},
			{Name: agl.SpanReward, Parent: testserver.Ptr(agl.SpanRollout), Attributes: map[string]any{agl.AttrRewardValue: 0.75}},
		},
	})
}

func equalJSON(a, b any) bool {
	x, _ := structpb.NewValue(a)
	y, _ := structpb.NewValue(b)
	return x.String() == y.String()
}

// A long poll on an empty queue ends empty-handed after its wait; one that is waiting when work
// arrives gets it.
func TestDequeueLongPoll(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)

	rollout, err := client.DequeueRollout(ctx, "w", 200*time.Millisecond)
	if err != nil || rollout != nil {
		t.Fatalf("empty queue: got %v, %v; want nil, nil", rollout, err)
	}

	got := make(chan *aglv1.Rollout, 1)
	errs := make(chan error, 1)
	go func() {
		r, err := client.DequeueRollout(ctx, "w", 20*time.Second)
		got <- r
		errs <- err
	}()
	if _, err := client.EnqueueRolloutSpecs(ctx, &aglv1.RolloutSpec{RolloutId: "ro-wake", Input: structpb.NewNullValue()}); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.GetRolloutId() != "ro-wake" {
		t.Fatalf("the waiting poll got %v (err %v), want ro-wake", r, <-errs)
	}
}

// Spans in flight when the server dies are sent again once it is back, and every span is stored
// once. The server is frozen (SIGSTOP) so a batch is surely sent and unacknowledged, then killed
// and restarted on the same port and data directory.
func TestSpanStreamResendsAfterServerCrash(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address, agl.WithSpanStreamOptions(agl.WithBatchLimits(4, 1<<20)))
	if _, err := client.EnqueueRolloutSpecs(ctx, &aglv1.RolloutSpec{RolloutId: "ro-crash", Input: structpb.NewNullValue()}); err != nil {
		t.Fatal(err)
	}
	rollout, err := client.DequeueRollout(ctx, "w", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	spans := func(prefix string, n int) []*aglv1.Span {
		out := make([]*aglv1.Span, n)
		for i := range out {
			out[i] = agl.NewSpan(prefix, agl.Attr("i", i))
			out[i].TraceId, out[i].RolloutId, out[i].AttemptId = agl.NewTraceID(), "ro-crash", rollout.GetAttempt().GetAttemptId()
		}
		return out
	}
	stream := client.Spans()
	before := spans("before", 6)
	ack, err := stream.Send(ctx, before...)
	if err != nil || ack.Accepted != 6 {
		t.Fatalf("first spans: %+v, %v", ack, err)
	}

	if err := syscall.Kill(server.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	during := spans("during", 10)
	pending, err := stream.Enqueue(ctx, during...)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return stream.Stats().Inflight > 0 })
	server.Kill()
	server.Restart()

	ack, err = pending.Wait(ctx)
	if err != nil {
		t.Fatalf("spans sent while the server died were lost: %v", err)
	}
	if ack.Accepted+len(ack.Duplicates) != 10 || len(ack.Rejected) != 0 {
		t.Fatalf("after the restart: %+v", ack)
	}
	if stream.Stats().Reconnects < 1 {
		t.Fatalf("the stream did not reconnect: %+v", stream.Stats())
	}
	// Sending a stored span again is answered as a duplicate, not stored twice.
	again, err := stream.Send(ctx, before[0])
	if err != nil || again.Accepted != 0 || len(again.Duplicates) != 1 {
		t.Fatalf("resent span: %+v, %v", again, err)
	}
	stored, err := client.QuerySpans(ctx, "ro-crash", "")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, s := range stored {
		seen[string(s.GetSpanId())]++
	}
	for _, s := range append(before, during...) {
		if seen[string(s.GetSpanId())] != 1 {
			t.Fatalf("span %q %v stored %d times", s.GetName(), agl.AttributeMap(s.GetAttributes()), seen[string(s.GetSpanId())])
		}
	}
	if len(stored) != 16 {
		t.Fatalf("%d spans stored, want 16", len(stored))
	}
}

// waitFor polls a condition of the client (no event to wait on) with a deadline.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A worker rides out a server restart: its long poll fails while the server is down and is
// retried until the server is back with work.
func TestDequeueSourceSurvivesServerRestart(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)
	server.Stop()

	got := make(chan *agl.Assignment, 1)
	errs := make(chan error, 1)
	go func() {
		a, err := agl.NewDequeueSource(client, "w", 2*time.Second).Next(ctx)
		got <- a
		errs <- err
	}()
	server.Restart()
	if _, err := client.EnqueueRolloutSpecs(ctx, &aglv1.RolloutSpec{RolloutId: "ro-back", Input: structpb.NewNullValue()}); err != nil {
		t.Fatal(err)
	}
	if a := <-got; a == nil || a.Rollout.GetRolloutId() != "ro-back" {
		t.Fatalf("got %v, %v; want ro-back", a, <-errs)
	}
}

// Bad input gets the server's precise status, wrapped with what the client was doing.
func TestErrorsCarryStatusAndAdvice(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)

	_, err := client.UpdateAttempt(ctx, "ro-missing", "latest", aglv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED)
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "ro-missing") {
		t.Fatalf("unknown rollout: %v (code %s)", err, status.Code(err))
	}
	var aglErr *agl.Error
	if !errors.As(err, &aglErr) || !strings.Contains(aglErr.Op, "set attempt") {
		t.Fatalf("error does not say what was being done: %#v", err)
	}

	rollouts, err := client.EnqueueRolloutSpecs(ctx,
		&aglv1.RolloutSpec{RolloutId: "ro-ok", Input: structpb.NewNullValue()},
		&aglv1.RolloutSpec{RolloutId: "ro-bad", Input: structpb.NewNumberValue(nanValue())},
	)
	var items *agl.ItemErrors
	if !errors.As(err, &items) || len(items.Items) != 1 || items.Items[0].GetIndex() != 1 ||
		codes.Code(items.Items[0].GetCode()) != codes.InvalidArgument {
		t.Fatalf("a batch with one bad item: %v", err)
	}
	if rollouts[0].GetRolloutId() != "ro-ok" || rollouts[1] != nil {
		t.Fatalf("the good item should succeed alone: %v", rollouts)
	}

	// A span for an attempt that does not exist is rejected on its own, with a reason.
	span := agl.NewSpan("orphan")
	span.TraceId, span.RolloutId, span.AttemptId = agl.NewTraceID(), "ro-ok", "no-such-attempt"
	ack, err := client.Spans().Send(ctx, span)
	if err != nil || len(ack.Rejected) != 1 || ack.Err() == nil {
		t.Fatalf("orphan span: %+v, %v", ack, err)
	}

	// A span over the size limit is rejected at once (RESOURCE_EXHAUSTED); the rest of the call goes.
	small := newClient(t, server.Address, agl.WithSpanStreamOptions(agl.WithMaxSpanBytes(2000)))
	claimed, err := small.DequeueRollout(ctx, "w", time.Second)
	if err != nil || claimed.GetRolloutId() != "ro-ok" {
		t.Fatalf("dequeue ro-ok: %v, %v", claimed, err)
	}
	okSpan, bigSpan := agl.NewSpan("ok"), agl.NewSpan("big", agl.Attr("payload", strings.Repeat("x", 5000)))
	for _, s := range []*aglv1.Span{okSpan, bigSpan} {
		s.TraceId, s.RolloutId, s.AttemptId = agl.NewTraceID(), "ro-ok", claimed.GetAttempt().GetAttemptId()
	}
	ack, err = small.Spans().Send(ctx, okSpan, bigSpan)
	if err != nil || ack.Accepted != 1 || len(ack.Rejected) != 1 || ack.Rejected[0].GetIndex() != 1 ||
		codes.Code(ack.Rejected[0].GetCode()) != codes.ResourceExhausted {
		t.Fatalf("oversized span: %+v, %v", ack, err)
	}

	// A name that is not UTF-8 goes out as it is (the client's generated marshalling does not check
	// strings, see internal/wirecodec): the server rejects that span alone and stores the other.
	fine, notUTF8 := agl.NewSpan("fine"), agl.NewSpan("bad \xff name")
	for _, s := range []*aglv1.Span{fine, notUTF8} {
		s.TraceId, s.RolloutId, s.AttemptId = agl.NewTraceID(), "ro-ok", claimed.GetAttempt().GetAttemptId()
	}
	ack, err = small.Spans().Send(ctx, fine, notUTF8)
	if err != nil || ack.Accepted != 1 || len(ack.Rejected) != 1 || ack.Rejected[0].GetIndex() != 1 ||
		codes.Code(ack.Rejected[0].GetCode()) != codes.InvalidArgument ||
		!strings.Contains(ack.Rejected[0].GetMessage(), "UTF-8") {
		t.Fatalf("a span named with invalid UTF-8: %+v, %v", ack, err)
	}

	server.Stop()
	down := newClient(t, server.Address, agl.WithRetryDeadline(time.Second), agl.WithTimeout(2*time.Second))
	_, err = down.GetResources(ctx, "")
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "agl-server --port") {
		t.Fatalf("server down: %v", err)
	}
}

// EnqueueRollouts takes plain values: maps, a struct with json tags, a bare number, nil.
func TestEnqueuePlainValues(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t)
	client := newClient(t, server.Address)
	type order struct {
		Item  string `json:"item"`
		Count int    `json:"count"`
	}
	rollouts, err := client.EnqueueRollouts(ctx,
		agl.RolloutSpec{Input: map[string]any{"x": 1}},
		agl.RolloutSpec{Input: order{Item: "tea", Count: 2}, Metadata: map[string]any{"source": "test"}},
		agl.RolloutSpec{Input: 7},
		agl.RolloutSpec{},
	)
	if err != nil || len(rollouts) != 4 {
		t.Fatalf("enqueue: %v, %v", rollouts, err)
	}
	want := []any{map[string]any{"x": 1.0}, map[string]any{"item": "tea", "count": 2.0}, 7.0, nil}
	for i, rollout := range rollouts {
		if !strings.HasPrefix(rollout.GetRolloutId(), "ro-") {
			t.Errorf("rollout %d id %q", i, rollout.GetRolloutId())
		}
		got, err := client.GetRollout(ctx, rollout.GetRolloutId())
		if err != nil {
			t.Fatal(err)
		}
		if in := got.GetInput().AsInterface(); fmt.Sprint(in) != fmt.Sprint(want[i]) {
			t.Errorf("rollout %d input %v, want %v", i, in, want[i])
		}
	}
	if _, err := client.EnqueueRollouts(ctx, agl.RolloutSpec{Input: func() {}}); err == nil ||
		!strings.Contains(err.Error(), "not JSON-like") {
		t.Fatalf("a func input: %v", err)
	}
	if _, err := client.EnqueueRollouts(ctx, agl.RolloutSpec{Mode: "training"}); err == nil ||
		!strings.Contains(err.Error(), "use train, val or test") {
		t.Fatalf("a bad mode: %v", err)
	}
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}

// With --token the server refuses calls without it (UNAUTHENTICATED, with advice) and takes
// them with it.
func TestTokenAuth(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t, "--token", "s3cret")
	t.Setenv("AGL_TOKEN", "")

	_, err := newClient(t, server.Address).GetResources(ctx, "")
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "AGL_TOKEN") {
		t.Fatalf("no token: %v", err)
	}
	_, err = newClient(t, server.Address, agl.WithToken("wrong")).GetResources(ctx, "")
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong token: %v", err)
	}
	client := newClient(t, server.Address, agl.WithToken("s3cret"))
	if _, err := client.AddResources(ctx, "r1", promptResources("{x}")); err != nil {
		t.Fatal(err)
	}
	got, err := client.GetResources(ctx, "")
	if err != nil || got.GetResourcesId() != "r1" {
		t.Fatalf("with the token: %v, %v", got, err)
	}
}

// Over TLS with a private CA.
func TestTLS(t *testing.T) {
	ctx := testContext(t)
	certFile, keyFile, pool := selfSignedCert(t)
	server := testserver.Start(t, "--tls-cert", certFile, "--tls-key", keyFile)

	client := newClient(t, server.Address, agl.WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	if _, err := client.AddResources(ctx, "r-tls", promptResources("{x}")); err != nil {
		t.Fatal(err)
	}
	got, err := client.GetResources(ctx, "r-tls")
	if err != nil || got.GetResources()["prompt"].GetPromptTemplate().GetTemplate() != "{x}" {
		t.Fatalf("over TLS: %v, %v", got, err)
	}
	_, err = newClient(t, server.Address, agl.WithRetryDeadline(time.Second)).GetResources(ctx, "")
	if err == nil {
		t.Fatal("a plaintext client reached a TLS server")
	}
}

func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
