package benchmarks

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/memlimit"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// TestParkedScale: N runs (BENCH_PARKED_RUNS, default 10,000) each send their first message
// and then park, their second step 30 days away. The real worker binary runs as a separate
// process (so that its memory is its own), configured as shipped: it sizes its sticky
// cache itself (internal/memlimit) unless WORKER_STICKY_CACHE_SIZE or RECOUP_WORKER_MEMORY
// is given. With every run parked it reports the worker's and the dev server's memory (VmRSS, and VmHWM for the peak, from /proc) and
// PostgreSQL's rows and sizes per table; then it sends every run a payment.retry_succeeded
// through the ingest path and reports the signals per second and the time until every run
// has recorded its recovery.
func TestParkedScale(t *testing.T) {
	if os.Getenv("RECOUP_BENCH") != "1" {
		t.Skip("a benchmark: run it with `make bench-parked` (RECOUP_BENCH=1)")
	}
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("BENCH_PARKED_RUNS")); err == nil && v > 0 {
		n = v
	}
	cache := os.Getenv("WORKER_STICKY_CACHE_SIZE") // unset: the worker sizes it (the shipped default)
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
	mail := fakes.NewSendGrid(t)
	model := fixedModel(t)

	home := filepath.Join(dir, "home") // no stray Temporal profile from the real $HOME
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + dir,
		"DATABASE_URL=" + dbURL,
		"TEMPORAL_ADDRESS=" + h.HostPort(), "TEMPORAL_NAMESPACE=default",
		"SENDGRID_API_KEY=SG.bench", "SENDGRID_BASE_URL=" + mail.URL, "EMAIL_FROM=billing@shop.example",
		"OPENAI_API_KEY=sk-bench", "OPENAI_BASE_URL=" + model.BaseURL(), "OPENAI_MODEL=fixed",
		"RECOUP_SCHEDULE=0s,720h", "RECOUP_IGNORE_QUIET_HOURS=true", "RECOUP_CONTACT_CAP=100/7",
		"METRICS_ADDR=127.0.0.1:0", "LOG_LEVEL=warn", "LOG_FORMAT=text",
	}
	for _, kv := range os.Environ() { // worker tuning and RECOUP_WORKER_MEMORY pass through
		if strings.HasPrefix(kv, "WORKER_") || strings.HasPrefix(kv, "RECOUP_WORKER_MEMORY=") || strings.HasPrefix(kv, "GOMEMLIMIT=") {
			env = append(env, kv)
		}
	}
	logPath := filepath.Join(dir, "worker.log")
	if d := os.Getenv("BENCH_LOG_DIR"); d != "" {
		logPath = filepath.Join(d, "parked-worker.log")
	}
	workerPID, exited := startWorkerProcess(t, bin, env, logPath)
	parkedPoll(t, exited, time.Minute, "the worker polling", func() bool {
		resp, err := h.Client.DescribeTaskQueue(ctx, recoup.TaskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
		return err == nil && len(resp.Pollers) > 0
	})
	startRSS := parkedReadMem(t, workerPID)

	// Phase 1: N payment.failed through the ingest path; wait until every first message is
	// sent and every run has recorded it (LastChannel set) and parked.
	start := time.Now()
	parkedAccept(t, h, n, func(i int) map[string]any {
		return workertest.Failed(fmt.Sprintf("evt_pk_%d", i), fmt.Sprintf("inv_pk_%d", i), fmt.Sprintf("cus_pk_%d", i), time.Now().UTC())
	})
	accepted := time.Since(start)
	parkedPoll(t, exited, time.Hour, "every first message", func() bool {
		var sent int
		err := h.Store.Pool().QueryRow(ctx, `SELECT count(*) FROM sends WHERE status = 'sent' AND step = 1`).Scan(&sent)
		return err == nil && sent >= n
	})
	firstTouch := time.Since(start)
	parkedPoll(t, exited, 30*time.Minute, "every run parked", func() bool {
		resp, err := h.Client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
			Query: recoup.SearchAttrLastChannel + " = 'email' AND ExecutionStatus = 'Running'"})
		return err == nil && resp.Count >= int64(n)
	})
	parkedAt := time.Since(start)
	parkedWorker, parkedServer := parkedReadMem(t, workerPID), parkedReadMem(t, serverPID)
	parkedTables := parkedTableStats(t, h)
	if got := mail.AcceptedTotal(); got != n {
		t.Fatalf("the provider accepted %d messages, want exactly %d", got, n)
	}
	report := func(format string, args ...any) { // printed at once: a long run keeps what it measured
		fmt.Println("parked: " + fmt.Sprintf(format, args...))
	}
	if cache == "" {
		cache = "unset (" + parkedCacheChoice() + ")"
	}
	report("%d runs, WORKER_STICKY_CACHE_SIZE=%s, %d CPUs, load average %s", n, cache, runtime.NumCPU(), parkedLoad())
	report("first touch: %d events accepted in %s; every first message sent after %s (%.1f runs/s); every run parked after %s",
		n, parkedRound(accepted), parkedRound(firstTouch), float64(n)/firstTouch.Seconds(), parkedRound(parkedAt))
	report("worker RSS %s at start, %s with %d runs parked (peak so far %s)",
		parkedSize(startRSS.rss), parkedSize(parkedWorker.rss), n, parkedSize(parkedWorker.hwm))
	report("Temporal dev server RSS %s with %d runs parked (peak so far %s)", parkedSize(parkedServer.rss), n, parkedSize(parkedServer.hwm))
	for _, name := range slices.Sorted(maps.Keys(parkedTables)) {
		ts := parkedTables[name]
		report("PostgreSQL with the runs parked: %-18s %7d rows %9s", ts.name, ts.rows, parkedSize(ts.bytes))
	}

	// Phase 2: a payment.retry_succeeded to every run through the ingest path (recorded,
	// then signaled); wait until every run has recorded its recovery in PostgreSQL.
	start = time.Now()
	parkedAccept(t, h, n, func(i int) map[string]any {
		return map[string]any{"type": recoup.EventRetrySucceeded, "event_id": fmt.Sprintf("evt_pk_r_%d", i),
			"invoice_id": fmt.Sprintf("inv_pk_%d", i), "customer_id": fmt.Sprintf("cus_pk_%d", i),
			"attempt_id": "att_2", "occurred_at": time.Now().UTC().Format(time.RFC3339Nano)}
	})
	signaled := time.Since(start)
	report("recovery: %d payment.retry_succeeded accepted and signaled in %s (%.1f signals/s)",
		n, parkedRound(signaled), float64(n)/signaled.Seconds())
	parkedPoll(t, exited, time.Hour, "every run recovered", func() bool {
		var done int
		err := h.Store.Pool().QueryRow(ctx, `SELECT count(*) FROM dunning_runs WHERE outcome = 'recovered'`).Scan(&done)
		return err == nil && done >= n
	})
	recovered := time.Since(start)
	endWorker, endServer := parkedReadMem(t, workerPID), parkedReadMem(t, serverPID)
	endTables := parkedTableStats(t, h)
	if got := mail.AcceptedTotal(); got != n {
		t.Fatalf("the provider accepted %d messages after the recoveries, want still %d", got, n)
	}
	report("recovery: every run recovered %s after the first signal (%.1f runs/s)", parkedRound(recovered), float64(n)/recovered.Seconds())
	report("worker RSS %s after the recoveries, peak %s; dev server RSS %s, peak %s; load average %s",
		parkedSize(endWorker.rss), parkedSize(endWorker.hwm), parkedSize(endServer.rss), parkedSize(endServer.hwm), parkedLoad())
	for _, name := range slices.Sorted(maps.Keys(endTables)) {
		ts := endTables[name]
		report("PostgreSQL with the runs recovered: %-18s %7d rows %9s", ts.name, ts.rows, parkedSize(ts.bytes))
	}
}

// parkedAccept sends n events built by ev through the ingest path, 8 at a time.
func parkedAccept(t *testing.T, h *workertest.Harness, n int, ev func(int) map[string]any) {
	ids := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				raw, _ := json.Marshal(ev(i))
				res, err := h.Ingest.Accept(context.Background(), raw, "bench")
				if err != nil {
					t.Errorf("event %d: %v", i, err)
				} else if !res.Delivered {
					t.Errorf("event %d not delivered: %+v", i, res)
				}
			}
		}()
	}
	for i := range n {
		ids <- i
	}
	close(ids)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// parkedPoll waits until cond holds, failing after d or when the worker exited.
func parkedPoll(t *testing.T, exited <-chan struct{}, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		select {
		case <-exited:
			t.Fatalf("the worker exited while waiting for %s", what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

type parkedMem struct{ rss, hwm int64 } // bytes

// parkedReadMem reads a process's resident set (VmRSS) and its peak (VmHWM).
func parkedReadMem(t *testing.T, pid int) parkedMem {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("memory of process %d: %v", pid, err)
	}
	defer f.Close()
	var m parkedMem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			m.rss = kb * 1024
		case "VmHWM:":
			m.hwm = kb * 1024
		}
	}
	return m
}

// parkedServerPID finds the Temporal dev server the harness started: a child of this process
// running `server start-dev`.
func parkedServerPID() (int, error) {
	self := os.Getpid()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces, so parse after the last ')'.
		rest := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(rest) < 2 || rest[1] != strconv.Itoa(self) {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(cmdline), "start-dev") {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no child process of %d runs `server start-dev`", self)
}

type parkedTable struct {
	name        string
	rows, bytes int64
}

// parkedTableStats counts the rows of every table in the benchmark's schema and their total size
// (pg_total_relation_size: table, indexes and TOAST).
func parkedTableStats(t *testing.T, h *workertest.Harness) map[string]parkedTable {
	t.Helper()
	ctx := context.Background()
	rows, err := h.Store.Pool().Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	out := map[string]parkedTable{}
	for _, name := range names {
		ts := parkedTable{name: name}
		q := fmt.Sprintf(`SELECT count(*), pg_total_relation_size('%[1]s') FROM %[1]s`, name)
		if err := h.Store.Pool().QueryRow(ctx, q).Scan(&ts.rows, &ts.bytes); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = ts
	}
	return out
}

func parkedLoad() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func parkedSize(b int64) string {
	if b < 1<<20 {
		return fmt.Sprintf("%d kB", b>>10)
	}
	return fmt.Sprintf("%.1f MB", float64(b)/(1<<20))
}

func parkedRound(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }

// parkedCacheChoice is how the worker sizes its sticky cache here (worker/memory.go, from the
// same inputs: RECOUP_WORKER_MEMORY, this machine's cgroup limit, GOMEMLIMIT); the worker
// logs it at info level, which the benchmark's LOG_LEVEL=warn leaves out.
func parkedCacheChoice() string {
	k := memlimit.Known{GoMemLimit: debug.SetMemoryLimit(-1)}
	k.Cgroup, _ = memlimit.ReadCgroup("/sys/fs/cgroup")
	if v := os.Getenv("RECOUP_WORKER_MEMORY"); v != "" {
		k.Setting, _ = memlimit.ParseSize(v)
	}
	c := memlimit.StickyCache(k)
	return fmt.Sprintf("the worker sizes it: %d runs for %s, %s", c.Size, memlimit.Format(c.Memory), c.Source)
}

// startWorkerProcess starts the worker binary bin with env (and nothing else of this
// process's environment), its output to logPath; the test's cleanup stops it with SIGINT
// (killing it after 40 s). exited closes when it exits.
func startWorkerProcess(t *testing.T, bin string, env []string, logPath string) (pid int, exited <-chan struct{}) {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logFile.Close() })
	cmd := exec.Command(bin)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the worker: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return cmd.Process.Pid, done
}
