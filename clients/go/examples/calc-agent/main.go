// Command calc-agent is an example agl runner in Go: it serves rollouts from an agl-server until
// it gets SIGINT or SIGTERM.
//
// Each task input is {"question": "What is 17 * 23?", "answer": 391}. The agent fills the prompt
// template resource with the task input, works out the arithmetic (rule-based, offline), words its
// answer the way the prompt asks, and reports spans (the agent, the rendered prompt, a calculator
// tool call) and a reward: 1 for exactly the expected number, 0.5 when the number is there among
// other words, 0 otherwise.
//
// It takes work on agl-server's Work stream (pushed as soon as it is queued; a killed agent's
// attempts are retried at once), or with DequeueRollout long polls given -poll. -namespace,
// -queue (repeatable) and -selector say which work it takes, as `agl runner` does: the rollouts of
// that namespace (experiment), from those queues, whose labels match the selector.
//
//	go run ./examples/calc-agent -server 127.0.0.1:4747 -concurrency 4
//	go run ./examples/calc-agent -namespace exp-a -queue default -queue math -selector lang=go
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/agl-dev/agl/clients/go/agl"
)

type input struct {
	Question string   `json:"question"`
	Answer   *float64 `json:"answer"`
}

type agent struct {
	promptResource string
}

func (a *agent) handle(ctx context.Context, task *agl.Task) error {
	var in input
	if err := task.DecodeInput(&in); err != nil {
		return err
	}
	if in.Question == "" || in.Answer == nil {
		return fmt.Errorf("task input needs \"question\" and \"answer\", got %v", task.Input())
	}
	template, err := task.PromptTemplate(ctx, a.promptResource)
	if err != nil {
		return err
	}
	vars, _ := task.Input().(map[string]any)
	prompt, err := agl.FormatPrompt(template, vars)
	if err != nil {
		return err
	}

	root := task.StartSpan("calc-agent", agl.Attr(agl.AttrOperation, agl.OperationAgent), agl.Attr(agl.AttrAgentName, "calc-agent"))
	message := agl.NewSpan(agl.SpanMessage, agl.Attr(agl.AttrMessageBody, prompt))
	message.ParentSpanId = root.SpanId
	if err := task.Emit(ctx, message); err != nil {
		return err
	}

	tool := task.StartSpan("calculator", agl.Attr(agl.AttrOperation, agl.OperationTool), agl.Attr(agl.AttrToolName, "calculator"))
	tool.ParentSpanId = root.SpanId
	expression, err := extractExpression(in.Question)
	if err != nil {
		return err
	}
	value, err := evaluate(expression)
	if err != nil {
		return err
	}
	if err := task.End(ctx, tool, agl.Attr("calculator.expression", expression), agl.Attr("calculator.result", value)); err != nil {
		return err
	}

	output := respond(prompt, value)
	if err := task.End(ctx, root, agl.Attr("calc.output", output)); err != nil {
		return err
	}
	return task.EmitReward(ctx, grade(output, *in.Answer))
}

func main() {
	server := flag.String("server", agl.DefaultAddressFromEnv(), "agl-server address (env AGL_SERVER_ADDRESS)")
	workerID := flag.String("worker-id", fmt.Sprintf("calc-agent-go-%d", os.Getpid()), "worker id")
	poll := flag.Bool("poll", false, "take work with DequeueRollout long polls instead of the Work stream")
	wait := flag.Duration("wait", 10*time.Second, "long-poll wait of one dequeue (with -poll)")
	concurrency := flag.Int("concurrency", 1, "attempts run at once")
	prompt := flag.String("prompt-resource", "", "name of the prompt template resource (empty: the only one)")
	namespace := flag.String("namespace", os.Getenv("AGL_NAMESPACE"), "namespace (experiment) to serve (env AGL_NAMESPACE; empty: default)")
	var queues []string
	flag.Func("queue", "a queue to take work from (repeatable; default: the 'default' queue)", func(name string) error {
		queues = append(queues, name)
		return nil
	})
	var selector string
	const selectorUsage = `label selector of the work to take, e.g. "lang=go" or "lang in (go,ts),!gpu" (empty: any)`
	flag.StringVar(&selector, "selector", "", selectorUsage)
	flag.StringVar(&selector, "label-selector", "", "the same as -selector")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	slog.SetDefault(logger)

	// The token comes from $AGL_TOKEN (agl.NewClient reads it), never from the command line.
	client, err := agl.NewClient(*server, agl.WithNamespace(*namespace))
	if err != nil {
		logger.Error("calc-agent: cannot create the client", "error", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a := &agent{promptResource: *prompt}
	var source agl.WorkSource
	var stream *agl.WorkStreamSource
	if *poll {
		source = agl.NewDequeueSource(client, *workerID, *wait, agl.WithQueues(queues...), agl.WithLabelSelector(selector))
	} else {
		stream = agl.NewWorkStreamSource(client, agl.WorkStreamConfig{
			WorkerID: *workerID, Capacity: *concurrency, Queues: queues, LabelSelector: selector,
			Info: map[string]any{"agent": "calc-agent"}, Logger: logger,
		})
		source = stream
	}
	runner := agl.NewRunner(client, source, agl.WithConcurrency(*concurrency))
	logger.Info("calc-agent: serving", "server", client.Address(), "worker_id", *workerID, "work_stream", !*poll,
		"namespace", *namespace, "queues", queues, "selector", selector)
	serveErr := runner.Serve(ctx, a.handle)

	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var closeErr error
	if stream != nil {
		// Before the client: the final reports' acks are waited for on the stream.
		closeErr = stream.Close(closeCtx)
	}
	closeErr = errors.Join(closeErr, client.Close(closeCtx))
	stats := runner.Stats()
	logger.Info("calc-agent: stopped", "succeeded", stats.Succeeded, "failed", stats.Failed)
	if err := errors.Join(serveErr, closeErr); err != nil {
		logger.Error("calc-agent: stopped with an error", "error", err)
		os.Exit(1)
	}
}
