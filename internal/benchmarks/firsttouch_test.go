// Package benchmarks holds Recoup's throughput benchmarks. They measure and report; they do
// not assert on speed. Run them with `make bench` (RECOUP_BENCH=1); without it they skip.
package benchmarks

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/grpc"

	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/openai"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

const baselineQueue = "recoup-bench-baseline"

// Baseline is the same shape as a dunning run's first touch (plan, history, decide, send:
// four activities) with activities that do nothing.
func Baseline(ctx workflow.Context, n int) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	for i := range 4 {
		if err := workflow.ExecuteActivity(ctx, Noop, i).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// Noop does nothing.
func Noop(ctx context.Context, i int) (int, error) { _ = activity.GetInfo(ctx); return i, nil }

// fixedModel is the OpenAI fake answering every decision with one valid answer.
func fixedModel(t *testing.T) *fakes.OpenAI {
	answer, _ := json.Marshal(map[string]any{"channel": "email", "tone": "friendly",
		"incentive": map[string]any{"kind": "none", "value": 0}, "subject": "Your payment did not go through",
		"message": "We could not charge your card. Updating it takes a minute.", "rationale": "First reminder."})
	return fakes.NewOpenAI(t, string(answer))
}

// TestFirstTouchThroughput: N payment.failed events through the starter's ingest path to a
// fresh dev server; time until every run has sent its first message (model: a local fake
// with a fixed answer; email: the SendGrid fake). Then, on the same server, N baseline
// workflows with four no-op activities. Reports both rates and their ratio.
func TestFirstTouchThroughput(t *testing.T) {
	if os.Getenv("RECOUP_BENCH") != "1" {
		t.Skip("a benchmark: run it with `make bench` (RECOUP_BENCH=1)")
	}
	n := 500
	if v, err := strconv.Atoi(os.Getenv("BENCH_RUNS")); err == nil && v > 0 {
		n = v
	}
	model := fixedModel(t)
	calls := &callCounter{} // the harness client's: the ingest's and the in-process worker's
	h, setup := startFirstTouch(t, model.BaseURL(), workertest.Options{Schedule: []time.Duration{0, 24 * time.Hour},
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any,
			cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return calls.intercept(ctx, method, req, reply, cc, invoker, opts...)
		})}, Configure: func(a *activities.Activities) {
			c, err := openai.New(openai.Config{APIKey: "sk-bench", BaseURL: model.BaseURL(), Model: "fixed"})
			if err != nil {
				t.Fatal(err)
			}
			a.Dunning.LLM = c
		}})
	defer setup.baselineWorkers()() // in this process, or in BENCH_WORKERS processes (external_test.go)
	// The ingest runs in the ingress process, with its own pool, as deployed (not on the
	// harness's 8-connection test pool, which the worker's activities use).
	h.Ingest.Store = fakes.StoreBeside(t, h.Store)

	ctx := context.Background()
	calls.reset()                         // what the harness did before the phase
	endPhase := setup.phase("firsttouch") // CPU split and profiles (external_test.go)
	start := time.Now()
	ids := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				ev := workertest.Failed(fmt.Sprintf("evt_ft_%d", i), fmt.Sprintf("inv_ft_%d", i), fmt.Sprintf("cus_ft_%d", i%200), time.Now().UTC())
				raw, _ := json.Marshal(ev)
				if _, err := h.Ingest.Accept(ctx, raw, "bench"); err != nil {
					t.Errorf("event %d: %v", i, err)
				}
			}
		}()
	}
	for i := range n {
		ids <- i
	}
	close(ids)
	wg.Wait()
	accepted := time.Since(start)
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var sent int
		if err := h.Store.Pool().QueryRow(ctx, `SELECT count(*) FROM sends WHERE status = 'sent' AND step = 1`).Scan(&sent); err != nil {
			t.Fatal(err)
		}
		if sent >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d first messages after 10 minutes", sent, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	recoup := time.Since(start)
	endPhase()
	calls.report("firsttouch", n)
	if got := h.Mail.AcceptedTotal(); got != n {
		t.Fatalf("the provider accepted %d messages, want exactly %d", got, n)
	}

	// Baseline: start all N (as the events above started all N runs), then wait for all.
	bc := setup.baselineClient() // the SDK's defaults, as the baseline's worker
	setup.baselineCalls.reset()  // its worker's polls during Recoup's phase
	endPhase = setup.phase("baseline")
	start = time.Now()
	runs := make(chan int)
	started := make([]client.WorkflowRun, n)
	var bwg sync.WaitGroup
	for range 8 {
		bwg.Add(1)
		go func() {
			defer bwg.Done()
			for i := range runs {
				run, err := bc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("baseline-%d", i), TaskQueue: baselineQueue}, Baseline, i)
				if err != nil {
					t.Errorf("baseline %d: %v", i, err)
				}
				started[i] = run
			}
		}()
	}
	for i := range n {
		runs <- i
	}
	close(runs)
	bwg.Wait()
	for i, run := range started {
		if run == nil {
			continue
		}
		if err := run.Get(ctx, nil); err != nil {
			t.Errorf("baseline %d: %v", i, err)
		}
	}
	baseline := time.Since(start)
	endPhase()
	setup.baselineCalls.report("baseline", n)

	rRate, bRate := float64(n)/recoup.Seconds(), float64(n)/baseline.Seconds()
	line := fmt.Sprintf("first-touch: %d runs; Recoup %.1f runs/s (%s; events accepted in %s), baseline %.1f wf/s (%s), ratio %.2f",
		n, rRate, recoup.Round(time.Millisecond), accepted.Round(time.Millisecond), bRate, baseline.Round(time.Millisecond), rRate/bRate)
	t.Log(line)
	fmt.Println(line)
}
