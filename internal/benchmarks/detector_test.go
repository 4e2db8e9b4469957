package benchmarks

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/model/spike"
	"github.com/recoup-dunning/recoup/worker/workertest"
	"github.com/recoup-dunning/recoup/workflows"
)

// countingClient counts the signals to the spike detector.
type countingClient struct {
	client.Client
	signals, records atomic.Int64
}

func (c *countingClient) SignalWithStartWorkflow(ctx context.Context, id, signal string, arg any, opts client.StartWorkflowOptions,
	wf any, args ...any) (client.WorkflowRun, error) {
	run, err := c.Client.SignalWithStartWorkflow(ctx, id, signal, arg, opts, wf, args...)
	if err == nil && id == recoup.DetectorWorkflowID {
		c.signals.Add(1)
		if v, ok := arg.([]spike.Record); ok {
			c.records.Add(int64(len(v)))
		}
	}
	return run, err
}

// TestDetectorIngress (`make bench-detector`): BENCH_DETECTOR_RATE payment failures a
// second (default 500) for BENCH_DETECTOR_SECONDS (default 60) through the ingest path of
// `starter serve` (Ingestor.Record, the durable log, then Relay.Nudge: what its HTTP
// handler does, without HTTP), a relay feeding the spike detector (and starting the
// failures' dunning runs when BENCH_DETECTOR_RUNS=1), the worker running the detector, on
// a dev server. Every 100 ms it asks the detector how many records it received
// (DetectorStatus.Received): event j (in acceptance order) counts as received at the first
// sample that shows at least j records. Reports signal lag p50/p90/p99/max (sampling adds up
// to 100 ms), the feed's backlog over time (does it grow?) and signals a second.
func TestDetectorIngress(t *testing.T) {
	if os.Getenv("RECOUP_BENCH") != "1" {
		t.Skip("a benchmark: run it with `make bench-detector` (RECOUP_BENCH=1)")
	}
	rate := envInt(t, "BENCH_DETECTOR_RATE", 500)
	secs := envInt(t, "BENCH_DETECTOR_SECONDS", 60)
	runs := os.Getenv("BENCH_DETECTOR_RUNS") == "1"
	h := workertest.Start(t, workertest.Options{Schedule: []time.Duration{time.Hour, 24 * time.Hour}})
	cc := &countingClient{Client: h.Client}
	in := &eventlog.Ingestor{Store: h.Store, Temporal: cc}
	relay := eventlog.NewRelay(in, nil, nil)
	relay.NoRunDelivery = !runs
	ctx, cancel := context.WithCancel(context.Background())
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); relay.Run(ctx) }()
	defer func() { cancel(); <-relayDone }()

	// The detector running first (a fresh one recovers incidents from PostgreSQL).
	warm := time.Now().UTC()
	record(t, in, relay, 0, warm)
	received := func() int {
		qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
		defer qcancel()
		v, err := h.Client.QueryWorkflow(qctx, recoup.DetectorWorkflowID, "", recoup.QueryIncidents)
		if err != nil {
			return -1
		}
		var st workflows.DetectorStatus
		if err := v.Get(&st); err != nil {
			return -1
		}
		return st.Received
	}
	for received() < 1 {
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("detector-bench: %d failures/s for %d s, run delivery %v, %d cores, load %s\n", rate, secs, runs, runtime.NumCPU(), loadAverage())

	total := rate * secs
	accepted := make([]time.Time, total)
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				due := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
				time.Sleep(time.Until(due))
				record(t, in, relay, i+1, due)
				accepted[i] = time.Now()
			}
		}()
	}
	type sample struct {
		at       time.Time
		received int
	}
	var samples []sample
	var backlog []string
	loadDone := make(chan struct{})
	go func() { wg.Wait(); close(loadDone) }()
	lastBacklog := time.Now()
	drained := false
	deadline := time.Now().Add(time.Duration(secs)*time.Second + 5*time.Minute)
	for !drained && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		n := received()
		if n < 0 {
			continue
		}
		samples = append(samples, sample{time.Now(), n - 1})
		if time.Since(lastBacklog) >= 10*time.Second {
			lastBacklog = time.Now()
			b, age, _ := h.Store.DetectorFeedBacklog(ctx)
			backlog = append(backlog, fmt.Sprintf("t+%.0fs: log %d (oldest %.1fs), accepted %d, detector %d",
				time.Since(start).Seconds(), b, age.Seconds(), next.Load(), n-1))
		}
		select {
		case <-loadDone:
			drained = n-1 >= total
		default:
		}
	}
	<-loadDone
	if t.Failed() {
		t.FailNow()
	}
	acceptedIn := slices.MaxFunc(accepted, func(a, b time.Time) int { return a.Compare(b) }).Sub(start)
	if !drained {
		t.Fatalf("the detector received %d of %d records 5 minutes after the load", samples[len(samples)-1].received, total)
	}
	sorted := slices.Clone(accepted)
	slices.SortFunc(sorted, func(a, b time.Time) int { return a.Compare(b) })
	lags := make([]time.Duration, total)
	k := 0
	for j := range total {
		for samples[k].received < j+1 {
			k++
		}
		lags[j] = samples[k].at.Sub(sorted[j])
	}
	slices.Sort(lags)
	q := func(p float64) time.Duration {
		return lags[min(total-1, int(p*float64(total)))].Round(time.Millisecond)
	}
	wall := samples[len(samples)-1].at.Sub(start)
	for _, b := range backlog {
		fmt.Printf("detector-bench: backlog %s\n", b)
	}
	fmt.Printf("detector-bench: accepted %d failures in %.1f s (%.0f/s); the detector received all %.1f s after the start\n",
		total, acceptedIn.Seconds(), float64(total)/acceptedIn.Seconds(), wall.Seconds())
	fmt.Printf("detector-bench: signal lag (accepted → received by the detector) p50 %s p90 %s p99 %s max %s\n", q(0.5), q(0.9), q(0.99), lags[total-1].Round(time.Millisecond))
	fmt.Printf("detector-bench: %d signals to the detector (%.1f/s, %.0f records each); detector runs (continue-as-new) %d; load %s\n",
		cc.signals.Load(), float64(cc.signals.Load())/wall.Seconds(), float64(cc.records.Load())/float64(max(1, cc.signals.Load())), detectorRuns(t, h.Client), loadAverage())
}

// record records failure i (a few gateways, BINs and countries) and nudges the relay.
func record(t *testing.T, in *eventlog.Ingestor, relay *eventlog.Relay, i int, at time.Time) {
	ev := map[string]any{"type": recoup.EventPaymentFailed, "event_id": fmt.Sprintf("evt_det_%d", i),
		"invoice_id": fmt.Sprintf("inv_det_%d", i), "customer_id": fmt.Sprintf("cus_det_%d", i%5000),
		"amount_minor": 1000 + 100*(i%50), "currency": "USD", "occurred_at": at.UTC().Format(time.RFC3339Nano),
		"failure_code": []string{"card_declined", "insufficient_funds", "expired_card"}[i%3],
		"gateway":      []string{"stripe", "adyen"}[i%2], "card_bin": fmt.Sprintf("4%05d", i%40),
		"issuer_country": []string{"US", "DE", "FR", "GB", "NL"}[i%5],
		"customer":       map[string]any{"email": fmt.Sprintf("c%d@example.com", i%5000), "email_consent": true}}
	raw, _ := json.Marshal(ev)
	if _, _, err := in.Record(context.Background(), raw, "bench"); err != nil {
		t.Errorf("record event %d: %v", i, err)
		return
	}
	relay.Nudge()
}

// detectorRuns counts the detector's runs (it continues as new to bound its history).
func detectorRuns(t *testing.T, c client.Client) int64 {
	res, err := c.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowId = '%s'", recoup.DetectorWorkflowID)})
	if err != nil {
		t.Logf("count the detector's runs: %v", err)
		return -1
	}
	return res.GetCount()
}
