package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agl-dev/agl/clients/go/agl"
	aglv1 "github.com/agl-dev/agl/clients/go/gen/agl/v1"
	"github.com/agl-dev/agl/clients/go/internal/testserver"
)

func prompt(template string) map[string]*aglv1.Resource {
	return map[string]*aglv1.Resource{"prompt": {Kind: &aglv1.Resource_PromptTemplate{
		PromptTemplate: &aglv1.PromptTemplate{Template: template},
	}}}
}

func task(t *testing.T, id string, input map[string]any) agl.RolloutSpec {
	return agl.RolloutSpec{RolloutID: id, Input: input}
}

// The example agent, built and run as its own process, serves rollouts from a real agl-server,
// on the Work stream (the default) and with long polls: it follows the latest prompt template,
// reports its spans and rewards (checked from Python) and stops cleanly on SIGTERM.
func TestCalcAgentServesRollouts(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "calc-agent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("work-stream", func(t *testing.T) { serveRollouts(t, bin) })
	t.Run("poll", func(t *testing.T) { serveRollouts(t, bin, "-poll", "-wait", "2s") })
}

func serveRollouts(t *testing.T, bin string, args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	server := testserver.Start(t)
	client, err := agl.NewClient(server.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(ctx)

	var logs bytes.Buffer
	agent := exec.Command(bin, append([]string{"-server", server.Address, "-worker-id", "calc-go"}, args...)...)
	agent.Stdout, agent.Stderr = &logs, &logs
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- agent.Wait() }()
	defer func() { _ = agent.Process.Kill() }()

	template := "Reply with only the number. {question}"
	if _, err := client.AddResources(ctx, "terse", prompt(template)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.EnqueueRollouts(ctx,
		task(t, "ro-right", map[string]any{"question": "What is 6 * 7?", "answer": 42}),
		task(t, "ro-wrong", map[string]any{"question": "What is 6 * 7?", "answer": 41}),
		task(t, "ro-broken", map[string]any{"prompt": "no question here"}),
	); err != nil {
		t.Fatal(err)
	}
	wait := func(ids ...string) {
		t.Helper()
		_, pending, err := client.WaitForRollouts(ctx, ids, 30*time.Second)
		if err != nil || len(pending) > 0 {
			t.Fatalf("rollouts %v not finished: %v\n%s", pending, err, logs.String())
		}
	}
	wait("ro-right", "ro-wrong", "ro-broken")

	agentSpans := func(output string, reward float64, tmpl, question string) testserver.Expect {
		return testserver.Expect{
			Status: "succeeded", Reward: testserver.Ptr(reward), SpanCount: 5,
			Spans: []testserver.ExpectedSpan{
				{Name: agl.SpanRollout, Parent: testserver.Ptr("")},
				{Name: "calc-agent", Parent: testserver.Ptr(agl.SpanRollout), Attributes: map[string]any{
					agl.AttrOperation: "agent", agl.AttrAgentName: "calc-agent", "calc.output": output,
				}},
				{Name: agl.SpanMessage, Parent: testserver.Ptr("calc-agent"), Attributes: map[string]any{
					agl.AttrMessageBody: strings.ReplaceAll(tmpl, "{question}", question),
				}},
				{Name: "calculator", Parent: testserver.Ptr("calc-agent"), Attributes: map[string]any{
					agl.AttrToolName: "calculator", "calculator.expression": "6 * 7", "calculator.result": map[string]any{"double": 42},
				}},
				{Name: agl.SpanReward, Parent: testserver.Ptr(agl.SpanRollout)},
			},
		}
	}
	testserver.VerifyRollout(t, server.Address, "", "ro-right", agentSpans("42", 1, template, "What is 6 * 7?"))
	testserver.VerifyRollout(t, server.Address, "", "ro-wrong", agentSpans("42", 0, template, "What is 6 * 7?"))
	testserver.VerifyRollout(t, server.Address, "", "ro-broken", testserver.Expect{
		Status: "failed", SpanCount: 2,
		Spans: []testserver.ExpectedSpan{
			{Name: agl.SpanRollout, Parent: testserver.Ptr("")},
			{Name: agl.SpanException, Parent: testserver.Ptr(agl.SpanRollout), Attributes: map[string]any{
				agl.AttrExceptionMessage: `task input needs "question" and "answer", got map[prompt:no question here]`,
			}},
		},
	})

	// A new prompt template becomes the latest resources; the next rollout runs with it.
	verbose := "Please answer: {question}"
	if _, err := client.AddResources(ctx, "verbose", prompt(verbose)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.EnqueueRollouts(ctx, task(t, "ro-verbose", map[string]any{"question": "What is 6 * 7?", "answer": 42})); err != nil {
		t.Fatal(err)
	}
	wait("ro-verbose")
	testserver.VerifyRollout(t, server.Address, "", "ro-verbose", agentSpans("The answer is 42.", 0.5, verbose, "What is 6 * 7?"))

	// Which way the work came: a Work-stream worker's record says so, with what the agent told.
	record, err := client.Store().GetWorker(ctx, &aglv1.GetWorkerRequest{WorkerId: "calc-go"})
	if err != nil {
		t.Fatal(err)
	}
	stats := record.GetWorker().GetHeartbeatStats().AsMap()
	if onStream := len(args) == 0; (stats["work_stream"] == true) != onStream ||
		(onStream && (stats["language"] != "go" || stats["agent"] != "calc-agent")) {
		t.Fatalf("worker record %v (work stream: %v)", stats, onStream)
	}

	if err := agent.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("calc-agent exited with %v after SIGTERM:\n%s", err, logs.String())
		}
	case <-ctx.Done():
		t.Fatalf("calc-agent did not stop after SIGTERM:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "calc-agent: stopped") || !strings.Contains(logs.String(), "succeeded=3 failed=1") {
		t.Fatalf("calc-agent did not report a clean stop:\n%s", logs.String())
	}
}
