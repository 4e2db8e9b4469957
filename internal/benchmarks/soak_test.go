package benchmarks

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// TestSoak runs the shipped worker at a steady event rate for SOAK_DURATION (default 1h) and
// samples, every SOAK_SAMPLE (default 15s), what would grow if something leaked or fell
// behind: the worker's RSS and Go heap, the dev server's RSS, open runs, the event log's
// undelivered backlog, the task queues' backlogs, the spike detector's history and
// PostgreSQL's size. The real worker binary runs in its own process with its shipped
// defaults (the sticky cache sized from its memory); a dev server, PostgreSQL and the ingest
// path (the events are recorded and delivered as `starter serve` does, with its relay
// running) are in this process.
//
// Every second SOAK_RATE (default 2) payment.failed arrive, each a new invoice; half the
// runs get a payment.retry_succeeded 20 s to 2.5 min later, the other half exhaust their
// schedule (RECOUP_SCHEDULE=0s,90s,3m, RECOUP_FINAL_WAIT=1m): runs end at the rate they
// start. After SOAK_DURATION the failures stop and sampling goes on until every run has
// ended (at most SOAK_DRAIN, default 7m). The samples go to SOAK_OUT/soak.csv (default
// docs/soak), written as they are taken; the growth of each series over the steady part
// (after SOAK_WARMUP, default 10m) is reported, never asserted: speed and memory are
// measured, not tested. `make soak` draws docs/soak/soak.svg from the CSV.
func TestSoak(t *testing.T) {
	if os.Getenv("RECOUP_BENCH") != "1" {
		t.Skip("a benchmark: run it with `make soak` (RECOUP_BENCH=1)")
	}
	duration := soakDur(t, "SOAK_DURATION", time.Hour)
	sample := soakDur(t, "SOAK_SAMPLE", 15*time.Second)
	drain := soakDur(t, "SOAK_DRAIN", 7*time.Minute)
	warmup := soakDur(t, "SOAK_WARMUP", 10*time.Minute)
	rate := 2.0
	if v := os.Getenv("SOAK_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 {
			t.Fatalf("SOAK_RATE=%q: want events per second, like 2", v)
		}
		rate = r
	}
	out := filepath.Join(fakes.RepoRoot(), "docs", "soak")
	if v := os.Getenv("SOAK_OUT"); v != "" {
		out = v
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir := t.TempDir()
	bin := filepath.Join(dir, "worker")
	if err := fakes.BuildWorker(bin); err != nil {
		t.Fatalf("build the worker: %v", err)
	}
	h := workertest.Start(t, workertest.Options{NoWorker: true})
	serverPID, err := parkedServerPID()
	if err != nil {
		t.Fatalf("find the dev server process: %v", err)
	}
	var schema string
	if err := h.Store.Pool().QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	dbURL, err := fakes.WithSearchPath(fakes.DatabaseURL(), schema)
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := soakFreeAddr(t)
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	// The shipped configuration, but for the schedule (runs that end within minutes) and the
	// quiet hours and contact cap (a soak runs at any hour; customers are new anyway). No
	// model: the rules policy decides, as without OPENAI_API_KEY.
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + dir,
		"DATABASE_URL=" + dbURL,
		"TEMPORAL_ADDRESS=" + h.HostPort(), "TEMPORAL_NAMESPACE=default",
		"SENDGRID_API_KEY=SG.soak", "SENDGRID_BASE_URL=" + h.MailURL, "EMAIL_FROM=billing@shop.example",
		"RECOUP_SCHEDULE=0s,90s,3m", "RECOUP_FINAL_WAIT=1m", "RECOUP_IGNORE_QUIET_HOURS=true", "RECOUP_CONTACT_CAP=100/7",
		"METRICS_ADDR=" + metricsAddr, "LOG_LEVEL=warn", "LOG_FORMAT=text",
	}
	for _, kv := range os.Environ() { // worker tuning and RECOUP_WORKER_MEMORY pass through
		if strings.HasPrefix(kv, "WORKER_") || strings.HasPrefix(kv, "RECOUP_WORKER_MEMORY=") || strings.HasPrefix(kv, "GOMEMLIMIT=") {
			env = append(env, kv)
		}
	}
	logPath := filepath.Join(dir, "worker.log")
	if d := os.Getenv("BENCH_LOG_DIR"); d != "" {
		logPath = filepath.Join(d, "soak-worker.log")
	}
	workerPID, exited := startWorkerProcess(t, bin, env, logPath)
	parkedPoll(t, exited, time.Minute, "the worker polling", func() bool {
		resp, err := h.Client.DescribeTaskQueue(ctx, recoup.TaskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
		return err == nil && len(resp.Pollers) > 0
	})

	// The relay, as `starter serve` runs it: it delivers whatever Accept could not.
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); eventlog.NewRelay(h.Ingest, nil, nil).Run(relayCtx) }()
	defer func() { stopRelay(); <-relayDone }()

	csvFile, err := os.Create(filepath.Join(out, "soak.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer csvFile.Close()
	w := csv.NewWriter(csvFile)
	_ = w.Write(soakColumns)
	w.Flush()

	report := func(format string, args ...any) { fmt.Println("soak: " + fmt.Sprintf(format, args...)) }
	report("SOAK_DURATION=%s SOAK_RATE=%g/s SOAK_SAMPLE=%s, WORKER_STICKY_CACHE_SIZE=%q (%s), %d CPUs, load average %s",
		duration, rate, sample, os.Getenv("WORKER_STICKY_CACHE_SIZE"), parkedCacheChoice(), runtime.NumCPU(), parkedLoad())

	gen := newSoakLoad(h)
	start := time.Now()
	genCtx, stopGen := context.WithTimeout(ctx, duration)
	defer stopGen()
	genDone := make(chan struct{})
	go func() { defer close(genDone); gen.run(genCtx, rate) }()

	s := &soakSampler{h: h, workerPID: workerPID, serverPID: serverPID, metrics: "http://" + metricsAddr + "/metrics"}
	var rows [][]float64
	tick := time.NewTicker(sample)
	defer tick.Stop()
	generating := true
	for {
		row := s.take(t, time.Since(start), gen)
		rows = append(rows, row)
		_ = w.Write(soakFormat(row))
		w.Flush()
		if generating {
			select {
			case <-genDone:
				generating = false
				report("the load stopped after %s (the last recoveries come 2.5 min after the last failure): %d payment.failed, %d payment.retry_succeeded accepted, %d accepts left to the relay",
					parkedRound(time.Since(start)), gen.failed.Load(), gen.recovered.Load(), gen.errors.Load())
			default:
			}
		} else if row[soakCol("open_runs")] == 0 && row[soakCol("events_undelivered")] == 0 {
			break
		} else if time.Since(start) > duration+drain {
			report("drain: %g runs still open after %s", row[soakCol("open_runs")], drain)
			break
		}
		select {
		case <-exited:
			t.Fatal("the worker exited during the soak")
		case <-tick.C:
		}
	}
	if err := w.Error(); err != nil {
		t.Fatal(err)
	}
	report("%d samples in %s, load average %s at the end; CSV %s", len(rows), parkedRound(time.Since(start)), parkedLoad(), filepath.Join(out, "soak.csv"))
	steady := soakWindow(rows, warmup.Seconds(), duration.Seconds())
	for _, c := range []string{"worker_rss_mb", "worker_heap_inuse_mb", "worker_goroutines", "server_rss_mb", "open_runs",
		"events_undelivered", "tq_workflow_backlog", "tq_activity_backlog", "tq_email_backlog", "detector_history_events", "pg_mb", "load1"} {
		g := soakGrowth(steady, soakCol(c))
		report("%-24s minutes %.0f–%.0f: mean %8.1f, min %8.1f, max %8.1f, slope %+9.2f per hour (%+.1f%% of the mean)",
			c, warmup.Minutes(), duration.Minutes(), g.mean, g.min, g.max, g.slope, g.relative)
	}
	last := rows[len(rows)-1]
	report("at the end: %g runs started, %g closed, %g open; %g messages sent; worker RSS %.1f MB (peak %.1f MB)",
		last[soakCol("runs_started")], last[soakCol("runs_closed")], last[soakCol("open_runs")], last[soakCol("sends")],
		last[soakCol("worker_rss_mb")], last[soakCol("worker_hwm_mb")])

	// Nothing accepted is lost, nothing is sent twice.
	dup := 0
	for _, c := range h.Mail.AcceptedKeys() {
		if c > 1 {
			dup++
		}
	}
	if dup > 0 {
		t.Errorf("%d emails sent more than once", dup)
	}
	if int64(last[soakCol("runs_started")]) != gen.failed.Load() {
		t.Errorf("%d payment.failed accepted, %g runs recorded", gen.failed.Load(), last[soakCol("runs_started")])
	}
}

// soakColumns are the CSV's columns, one row per sample.
var soakColumns = []string{"elapsed_s", "load1", "worker_rss_mb", "worker_hwm_mb", "worker_heap_inuse_mb", "worker_goroutines",
	"server_rss_mb", "failed_accepted", "recoveries_accepted", "accept_queue", "runs_started", "runs_closed", "open_runs",
	"sends", "events_undelivered", "events_oldest_undelivered_s", "tq_workflow_backlog", "tq_activity_backlog",
	"tq_email_backlog", "tq_sms_backlog", "detector_history_events", "pg_mb"}

func soakCol(name string) int {
	for i, c := range soakColumns {
		if c == name {
			return i
		}
	}
	panic("no soak column " + name)
}

func soakFormat(row []float64) []string {
	out := make([]string, len(row))
	for i, v := range row {
		out[i] = strconv.FormatFloat(v, 'f', -1, 64)
	}
	return out
}

// soakLoad sends the soak's events through the ingest path, 8 at a time.
type soakLoad struct {
	h                         *workertest.Harness
	queue                     chan map[string]any
	failed, recovered, errors atomic.Int64
}

func newSoakLoad(h *workertest.Harness) *soakLoad {
	l := &soakLoad{h: h, queue: make(chan map[string]any, 100000)}
	for range 8 {
		go func() {
			for ev := range l.queue {
				raw, _ := json.Marshal(ev)
				_, err := h.Ingest.Accept(context.Background(), raw, "soak")
				if err != nil {
					l.errors.Add(1)
					if !strings.Contains(err.Error(), "recorded but not delivered") {
						fmt.Println("soak: accept:", err) // not recorded
						continue
					} // recorded: the relay delivers it
				}
				if ev["type"] == recoup.EventPaymentFailed {
					l.failed.Add(1)
				} else {
					l.recovered.Add(1)
				}
			}
		}()
	}
	return l
}

// run queues rate payment.failed a second until ctx ends, and for every other invoice a
// payment.retry_succeeded 20 s to 2.5 min later (spread evenly).
func (l *soakLoad) run(ctx context.Context, rate float64) {
	interval := time.Duration(float64(time.Second) / rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var timers sync.WaitGroup
	defer timers.Wait()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		inv, cus := fmt.Sprintf("inv_soak_%d", i), fmt.Sprintf("cus_soak_%d", i)
		l.queue <- workertest.Failed(fmt.Sprintf("evt_soak_%d", i), inv, cus, time.Now().UTC())
		if i%2 == 1 {
			continue
		}
		after := 20*time.Second + time.Duration(i/2%131)*time.Second
		timers.Add(1)
		time.AfterFunc(after, func() {
			defer timers.Done()
			l.queue <- map[string]any{"type": recoup.EventRetrySucceeded, "event_id": fmt.Sprintf("evt_soak_r_%d", i),
				"invoice_id": inv, "customer_id": cus, "attempt_id": "att_2", "occurred_at": time.Now().UTC().Format(time.RFC3339Nano)}
		})
	}
}

// soakSampler takes one sample of everything the soak watches.
type soakSampler struct {
	h                    *workertest.Harness
	workerPID, serverPID int
	metrics              string
}

func (s *soakSampler) take(t *testing.T, elapsed time.Duration, gen *soakLoad) []float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	row := make([]float64, len(soakColumns))
	set := func(name string, v float64) { row[soakCol(name)] = v }
	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	set("elapsed_s", elapsed.Round(time.Second).Seconds())
	load, _ := strconv.ParseFloat(strings.Fields(parkedLoad() + " 0")[0], 64)
	set("load1", load)
	wm, sm := parkedReadMem(t, s.workerPID), parkedReadMem(t, s.serverPID)
	set("worker_rss_mb", mb(wm.rss))
	set("worker_hwm_mb", mb(wm.hwm))
	set("server_rss_mb", mb(sm.rss))
	gauges := soakScrape(s.metrics, "go_memstats_heap_inuse_bytes", "go_goroutines")
	set("worker_heap_inuse_mb", gauges["go_memstats_heap_inuse_bytes"]/(1<<20))
	set("worker_goroutines", gauges["go_goroutines"])
	set("failed_accepted", float64(gen.failed.Load()))
	set("recoveries_accepted", float64(gen.recovered.Load()))
	set("accept_queue", float64(len(gen.queue)))
	pool := s.h.Store.Pool()
	var started, closed, sends int64
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE outcome IS NOT NULL) FROM dunning_runs`).Scan(&started, &closed); err != nil {
		t.Logf("runs: %v", err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM sends WHERE status IN ('sent', 'logged')`).Scan(&sends); err != nil {
		t.Logf("sends: %v", err)
	}
	set("runs_started", float64(started))
	set("runs_closed", float64(closed))
	set("sends", float64(sends))
	if resp, err := s.h.Client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", recoup.WorkflowType)}); err == nil {
		set("open_runs", float64(resp.Count))
	} else {
		set("open_runs", -1)
		t.Logf("open runs: %v", err)
	}
	n, age, err := s.h.Store.Backlog(ctx)
	if err != nil {
		t.Logf("event backlog: %v", err)
	}
	set("events_undelivered", float64(n))
	set("events_oldest_undelivered_s", age.Seconds())
	set("tq_workflow_backlog", s.backlog(ctx, recoup.TaskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW))
	set("tq_activity_backlog", s.backlog(ctx, recoup.TaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY))
	set("tq_email_backlog", s.backlog(ctx, recoup.EmailTaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY))
	set("tq_sms_backlog", s.backlog(ctx, recoup.SMSTaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY))
	if d, err := s.h.Client.DescribeWorkflowExecution(ctx, recoup.DetectorWorkflowID, ""); err == nil {
		set("detector_history_events", float64(d.GetWorkflowExecutionInfo().GetHistoryLength()))
	}
	var pg int64
	if err := pool.QueryRow(ctx, `SELECT COALESCE(sum(pg_total_relation_size(format('%I.%I', schemaname, tablename))), 0)::bigint
		FROM pg_tables WHERE schemaname = current_schema()`).Scan(&pg); err != nil {
		t.Logf("PostgreSQL size: %v", err)
	}
	set("pg_mb", mb(pg))
	return row
}

// backlog is the task queue's approximate backlog (DescribeTaskQueue with its stats), -1
// when the server does not report it.
func (s *soakSampler) backlog(ctx context.Context, queue string, typ enumspb.TaskQueueType) float64 {
	resp, err := s.h.Client.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
		Namespace: "default", TaskQueue: &taskqueuepb.TaskQueue{Name: queue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
		TaskQueueType: typ, ReportStats: true})
	if err != nil || resp.GetStats() == nil {
		return -1
	}
	return float64(resp.GetStats().GetApproximateBacklogCount())
}

// soakScrape reads the named gauges from a Prometheus text endpoint (unlabelled series).
func soakScrape(url string, names ...string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		for _, n := range names {
			if f[0] == n {
				out[n], _ = strconv.ParseFloat(f[1], 64)
			}
		}
	}
	return out
}

func soakFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func soakDur(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a duration like 1h or 15s", name, v)
	}
	return d
}

// soakWindow keeps the rows whose elapsed time lies in [from, to] seconds.
func soakWindow(rows [][]float64, from, to float64) [][]float64 {
	var out [][]float64
	for _, r := range rows {
		if e := r[0]; e >= from && e <= to {
			out = append(out, r)
		}
	}
	return out
}

type growth struct{ mean, min, max, slope, relative float64 }

// soakGrowth fits column col against elapsed time (column 0) by least squares: the mean, the
// extremes, the slope per hour and the slope as a share of the mean.
func soakGrowth(rows [][]float64, col int) growth {
	if len(rows) < 2 {
		return growth{}
	}
	var sx, sy, sxx, sxy float64
	g := growth{min: rows[0][col], max: rows[0][col]}
	for _, r := range rows {
		x, y := r[0]/3600, r[col]
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
		g.min, g.max = min(g.min, y), max(g.max, y)
	}
	n := float64(len(rows))
	g.mean = sy / n
	if d := n*sxx - sx*sx; d != 0 {
		g.slope = (n*sxy - sx*sy) / d
	}
	if g.mean != 0 {
		g.relative = 100 * g.slope / g.mean
	}
	return g
}
