// Command agl-loadgen puts agl-server under the load of many lightweight workers (issue 16).
//
// Every worker is a goroutine with its own Work stream, spread over -conns gRPC connections, and
// speaks the protocol through the raw generated stubs rather than the high-level Runner: the
// client's own cost stays small, so what is measured is the server. The agent does no work: a
// worker reports RUNNING (unless -running-report=false) and SUCCEEDED back to back, as the runners
// do when the agent's work outlasts RUNNING's round trip (they send RUNNING without waiting for
// its ack and wait for it only before the final report), and counts the attempt done at the final
// ack. -running-wait makes it wait for RUNNING's ack before reporting SUCCEEDED (the runners
// before they sent RUNNING without a round trip). Both acks are timed from their report's send.
// With -start-on-assignment (the default, as the runners do) the hello asks for attempts claimed
// RUNNING; an assignment that arrives RUNNING gets its final report alone (no RUNNING report).
// -hold makes the agent take that long on average (uniform between half and one and a half times
// it): the final report goes that long after the assignment (and after RUNNING, when one is sent),
// so each worker holds up to -capacity attempts at a time and its heartbeats carry them, as a fleet
// of real agents does.
//
// Scenarios (-scenario):
//
//	welcome      open -workers streams at once and time the welcomes; then, with all of them open,
//	             enqueue single rollouts at -rate for -duration and time each from just before its
//	             EnqueueRollouts call to its assignment's arrival at a worker (dispatch latency).
//	large-batch  -workers workers connect; -tasks rollouts are enqueued in batches of -batch; the
//	             run ends when every one is reported with its ack. Checks exactly-once: each rollout
//	             assigned once, every ack code 0, and (QueryRollouts) each SUCCEEDED after one attempt.
//	lifecycle    -workers workers; a backlog of -backlog rollouts is kept queued for -duration;
//	             completed rollouts/s and the report-ack latency of RUNNING and final reports.
//	span-ack     -writers closed-loop span writers, an IngestSpans stream each, send the batches of
//	             -batches (fresh span ids each time) for -duration after -warmup; the ack latency
//	             of each batch, from its send to its ack, and batches/s. -latencies FILE also
//	             writes each one (writer, send time, latency), to see when the slow ones came.
//	             -encode once serializes each writer's batch once and writes the new ids into its
//	             bytes (less client CPU per batch); each (the default) marshals every send.
//
// Each run uses a namespace of its own (-namespace), so runs against one server do not mix.
// Progress goes to stderr; with -json, one JSON object with the figures goes to stdout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"
)

type config struct {
	server         string
	token          string
	namespace      string
	scenario       string
	workers        int
	capacity       int
	conns          int
	tasks          int
	batch          int
	backlog        int
	rate           float64
	duration       time.Duration
	warmup         time.Duration
	heartbeat      time.Duration
	welcomeTimeout time.Duration
	timeout        time.Duration
	runningReport  bool
	runningWait    bool
	hold           time.Duration
	startOnAssign  bool
	json           bool
	writers        int
	batches        string
	latencies      string
	encode         string
}

func main() {
	cfg := config{}
	flag.StringVar(&cfg.server, "server", "127.0.0.1:4747", "agl-server address (host:port)")
	flag.StringVar(&cfg.token, "token", os.Getenv("AGL_TOKEN"), "bearer token (agl-server --token); default env AGL_TOKEN")
	flag.StringVar(&cfg.namespace, "namespace", "", "namespace of the run's rollouts and workers (default: lg-<scenario>-<time>)")
	flag.StringVar(&cfg.scenario, "scenario", "lifecycle", "welcome, large-batch, lifecycle or span-ack")
	flag.IntVar(&cfg.workers, "workers", 1000, "workers (one Work stream each)")
	flag.IntVar(&cfg.capacity, "capacity", 1, "attempts each worker holds at once")
	flag.IntVar(&cfg.conns, "conns", 8, "gRPC connections the streams are spread over")
	flag.IntVar(&cfg.tasks, "tasks", 50000, "large-batch: rollouts to enqueue")
	flag.IntVar(&cfg.batch, "batch", 8192, "rollouts per EnqueueRollouts call (large-batch, lifecycle)")
	flag.IntVar(&cfg.backlog, "backlog", 0, "lifecycle: rollouts kept queued ahead of the workers (default 2 x workers x capacity, at least 64)")
	flag.Float64Var(&cfg.rate, "rate", 50, "welcome: single-rollout enqueues per second while the streams are open")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "welcome: how long to enqueue at -rate; lifecycle: the measured window")
	flag.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "lifecycle, span-ack: run this long before the measured window")
	flag.DurationVar(&cfg.heartbeat, "heartbeat", 10*time.Second, "heartbeat interval each worker announces and keeps")
	flag.DurationVar(&cfg.welcomeTimeout, "welcome-timeout", 120*time.Second, "how long to wait for every welcome before going on with those that came")
	flag.DurationVar(&cfg.timeout, "timeout", 300*time.Second, "large-batch: give up waiting for the last ack after this long (the result says timed_out)")
	flag.BoolVar(&cfg.runningReport, "running-report", true, "report RUNNING before the final report")
	flag.BoolVar(&cfg.startOnAssign, "start-on-assignment", true,
		"say start_on_assignment in hello: attempts arrive RUNNING and get no RUNNING report")
	flag.BoolVar(&cfg.runningWait, "running-wait", false,
		"wait for RUNNING's ack before the final report (default: send both back to back, pipelined)")
	flag.DurationVar(&cfg.hold, "hold", 0, "how long the agent works on each attempt, on average, before its final report (default: no work)")
	flag.IntVar(&cfg.writers, "writers", 8, "span-ack: closed-loop span writers (an IngestSpans stream each)")
	flag.StringVar(&cfg.batches, "batches", "", "span-ack: JSON list of base64 IngestSpansRequest messages; writer i sends the (i mod n)th")
	flag.StringVar(&cfg.latencies, "latencies", "",
		"span-ack: write each batch acked in the window to this file, one line each: writer, send time (unix ns), latency (ns)")
	flag.StringVar(&cfg.encode, "encode", "each",
		"span-ack: marshal each batch for every send (each), or serialize it once and write new span ids into its bytes (once)")
	flag.BoolVar(&cfg.json, "json", false, "print one JSON object with the figures on stdout")
	flag.Parse()
	if cfg.workers < 1 || cfg.capacity < 1 || cfg.conns < 1 || cfg.batch < 1 || cfg.writers < 1 {
		fail(fmt.Errorf("-workers, -capacity, -conns, -batch and -writers must be at least 1"))
	}
	if cfg.namespace == "" {
		cfg.namespace = "lg-" + cfg.scenario + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	if cfg.backlog <= 0 {
		cfg.backlog = max(64, 2*cfg.workers*cfg.capacity)
	}

	f, err := newFleet(cfg)
	if err != nil {
		fail(err)
	}
	defer f.closeConns()
	ctx := context.Background()
	var result map[string]any
	switch cfg.scenario {
	case "welcome":
		result, err = runWelcome(ctx, f)
	case "large-batch":
		result, err = runLargeBatch(ctx, f)
	case "lifecycle":
		result, err = runLifecycle(ctx, f)
	case "span-ack":
		result, err = runSpanAck(ctx, f)
	default:
		err = fmt.Errorf("unknown -scenario %q (welcome, large-batch, lifecycle, span-ack)", cfg.scenario)
	}
	if err != nil {
		fail(err)
	}
	result["scenario"] = cfg.scenario
	result["conns"] = cfg.conns
	if cfg.scenario != "span-ack" { // span writers have no namespace, workers or reports
		result["namespace"] = cfg.namespace
		result["workers"] = cfg.workers
		result["capacity"] = cfg.capacity
		result["running_report"] = cfg.runningReport
		result["running_wait"] = cfg.runningReport && cfg.runningWait
		result["start_on_assignment"] = cfg.startOnAssign
		result["assigned_running"] = f.assignedRunning.Load()
	}
	if cfg.json {
		out, err := json.Marshal(result)
		if err != nil {
			fail(err)
		}
		fmt.Println(string(out))
	} else {
		out, _ := json.MarshalIndent(result, "", "  ")
		fmt.Println(string(out))
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "agl-loadgen: "+format+"\n", args...)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "agl-loadgen:", err)
	os.Exit(1)
}
