package benchmarks

// The first-touch benchmark beyond one dev server and one in-process worker (`make
// bench-server`, scripts/bench-server.sh):
//
//	BENCH_TEMPORAL_ADDRESS  an existing Temporal server (namespace "default" with Recoup's
//	                        search attributes) instead of a fresh dev server
//	BENCH_WORKERS=N         N real worker processes (./worker, or BENCH_WORKER_BIN) instead
//	                        of the in-process worker; the baseline then runs in N processes
//	                        too (this test binary, re-executed as TestBaselineWorkerProcess)
//	BENCH_SERVER_PID        the server's process, for the CPU split (a dev server started by
//	                        the test is found by itself)
//	BENCH_SERVER_PPROF      the server's pprof address (global.pprof.port), for its profile
//	BENCH_BASELINE_AUTOSCALE=1  the in-process baseline worker scales its pollers, as
//	                        Recoup's worker does by default (else the SDK's 2 fixed pollers)
//	BENCH_BASELINE_LIKE_RECOUP=1  that, and the baseline's client does not gzip, as
//	                        Recoup's does not by default (else the SDK's gzip)
//	BENCH_PROFILE_DIR       write CPU profiles of each phase there: the server, every worker
//	                        process (RECOUP_PPROF=1) and this process (ingest and fakes)
//	BENCH_PROFILE_SECONDS   length of each profile, from the start of the phase (default 30)
//	BENCH_LABEL             prefix of the profiles' file names (default "bench")
//
// Whatever the mode, each phase prints the CPU time every part of the machine used during
// it (from /proc; PostgreSQL backends are told apart with pg_stat_activity).

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"google.golang.org/grpc"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// benchSetup is how TestFirstTouchThroughput runs: where the server is, where the workers
// are, and what it measures besides the two rates.
type benchSetup struct {
	t          *testing.T
	h          *workertest.Harness
	addr       string // external server, "" for the dev server
	workers    int    // worker processes, 0 for the in-process worker
	serverPID  int
	pprofAddr  string
	profileDir string
	profileFor time.Duration
	label      string
	dir        string
	runs       int // workflows per phase (BENCH_RUNS), for the CPU per run

	mu sync.Mutex
	bc client.Client // the baseline's (baselineClient)

	baselineCalls callCounter  // the baseline client's gRPC calls
	procs         []*benchProc // running worker processes (Recoup's, then the baseline's)
}

type benchProc struct {
	role  string // "worker1", "baseline-worker2", …
	cmd   *exec.Cmd
	pprof string // host:port serving /debug/pprof/
	done  chan struct{}
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q is not a number", name, v)
	}
	return n
}

// startFirstTouch starts the harness of the first-touch benchmark as the BENCH_* variables
// say, with the fixed model at modelURL, and the Recoup worker processes if any.
func startFirstTouch(t *testing.T, modelURL string, o workertest.Options) (*workertest.Harness, *benchSetup) {
	s := &benchSetup{t: t, addr: os.Getenv("BENCH_TEMPORAL_ADDRESS"), workers: envInt(t, "BENCH_WORKERS", 0),
		serverPID: envInt(t, "BENCH_SERVER_PID", 0), pprofAddr: os.Getenv("BENCH_SERVER_PPROF"),
		profileDir: os.Getenv("BENCH_PROFILE_DIR"), profileFor: time.Duration(envInt(t, "BENCH_PROFILE_SECONDS", 30)) * time.Second,
		label: os.Getenv("BENCH_LABEL"), dir: t.TempDir(), runs: envInt(t, "BENCH_RUNS", 500)}
	if s.label == "" {
		s.label = "bench"
	}
	if s.profileDir != "" {
		if err := os.MkdirAll(s.profileDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Recoup's PostgreSQL sessions, told apart from the server's and anyone else's.
	t.Setenv("PGAPPNAME", "recoup-bench")
	o.HostPort, o.NoWorker = s.addr, s.workers > 0
	s.h = workertest.Start(t, o)
	server := "a fresh dev server (in-memory SQLite)"
	if s.addr != "" {
		server = "the server at " + s.addr
		s.checkFresh()
	}
	where := "one in-process worker"
	if s.workers > 0 {
		where = fmt.Sprintf("%d worker process(es)", s.workers)
		s.startWorkers(modelURL)
	}
	fmt.Printf("first-touch-setup: %s, %s; load average %s\n", server, where, loadAverage())
	return s.h, s
}

// checkFresh refuses a server that still runs the first-touch runs of an earlier benchmark:
// the events would signal those runs instead of starting new ones.
func (s *benchSetup) checkFresh() {
	d, err := s.h.Client.DescribeWorkflowExecution(context.Background(), recoup.WorkflowID("inv_ft_0"), "")
	if err == nil && d.WorkflowExecutionInfo.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		s.t.Fatalf("the server at %s still runs an earlier benchmark's runs: reset it (scripts/temporal-server-pg.sh reset)", s.addr)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startWorkers builds ./worker (unless BENCH_WORKER_BIN names a binary) and starts
// s.workers processes of it configured like the in-process worker of the harness.
func (s *benchSetup) startWorkers(modelURL string) {
	t := s.t
	bin := os.Getenv("BENCH_WORKER_BIN")
	if bin == "" {
		bin = filepath.Join(s.dir, "worker")
		goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
		cmd := exec.Command(goBin, "build", "-o", bin, "./worker")
		cmd.Dir = fakes.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build the worker: %v\n%s", err, out)
		}
	}
	var schema string
	if err := s.h.Store.Pool().QueryRow(context.Background(), `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(fakes.DatabaseURL())
	if err != nil {
		t.Fatalf("the database URL must be a URL here: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	home := filepath.Join(s.dir, "home") // no Temporal profile from the real $HOME
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + s.dir, "PGAPPNAME=recoup-bench-worker",
		"DATABASE_URL=" + u.String(), "TEMPORAL_ADDRESS=" + s.h.HostPort(), "TEMPORAL_NAMESPACE=default",
		"OPENAI_API_KEY=sk-bench", "OPENAI_BASE_URL=" + modelURL, "OPENAI_MODEL=fixed",
		"SENDGRID_API_KEY=SG.bench", "SENDGRID_BASE_URL=" + s.h.MailURL, "EMAIL_FROM=billing@shop.example",
		// As the harness configures the in-process worker (first step now, the next a day later).
		"RECOUP_SCHEDULE=0s,24h", "RECOUP_FINAL_WAIT=1h", "RECOUP_IGNORE_QUIET_HOURS=true", "RECOUP_CONTACT_CAP=100/7",
		"PAYMENT_URL_TEMPLATE=https://pay.example/{invoice_id}", "UNSUBSCRIBE_URL_TEMPLATE=https://pay.example/u/{customer_id}",
		"LOG_LEVEL=warn", "LOG_FORMAT=text", "RECOUP_PPROF=1",
	}
	for _, kv := range os.Environ() { // worker tuning, if the run sets any
		if strings.HasPrefix(kv, "WORKER_") || strings.HasPrefix(kv, "GOMAXPROCS=") || strings.HasPrefix(kv, "GOGC=") {
			env = append(env, kv)
		}
	}
	for i := range s.workers {
		addr := freeAddr(t)
		s.start(fmt.Sprintf("worker%d", i+1), addr, exec.Command(bin), append(env, "METRICS_ADDR="+addr))
	}
	s.waitPolling(recoup.TaskQueue, "worker")
}

// startBaselineWorkers runs the baseline's worker in s.workers processes of this test
// binary (TestBaselineWorkerProcess), so that it is deployed as Recoup's worker is.
func (s *benchSetup) startBaselineWorkers() {
	self, err := os.Executable()
	if err != nil {
		s.t.Fatal(err)
	}
	for i := range s.workers {
		addr := freeAddr(s.t)
		cmd := exec.Command(self, "-test.run", "^TestBaselineWorkerProcess$", "-test.count=1")
		env := append(os.Environ(), "BENCH_BASELINE_WORKER="+s.h.HostPort(), "BENCH_BASELINE_PPROF="+addr)
		s.start(fmt.Sprintf("baseline-worker%d", i+1), addr, cmd, env)
	}
	s.waitPolling(baselineQueue, "baseline-worker")
}

func (s *benchSetup) start(role, pprofAddr string, cmd *exec.Cmd, env []string) {
	t := s.t
	logf, err := os.Create(filepath.Join(s.dir, role+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", role, err)
	}
	p := &benchProc{role: role, cmd: cmd, pprof: pprofAddr, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil && len(b) > 0 {
				t.Logf("%s output:\n%s", role, tailLines(string(b), 40))
			}
		}
	})
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitPolling waits until every process whose role starts with prefix polls queue.
func (s *benchSetup) waitPolling(queue, prefix string) {
	ctx := context.Background()
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := s.h.Client.DescribeTaskQueue(ctx, queue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
		polling := map[string]bool{}
		if err == nil {
			for _, p := range resp.GetPollers() {
				polling[strings.SplitN(p.GetIdentity(), "@", 2)[0]] = true
			}
		}
		missing := 0
		s.mu.Lock()
		for _, p := range s.procs {
			if !strings.HasPrefix(p.role, prefix) {
				continue
			}
			select {
			case <-p.done:
				s.mu.Unlock()
				s.t.Fatalf("%s exited before polling", p.role)
			default:
			}
			if !polling[strconv.Itoa(p.cmd.Process.Pid)] {
				missing++
			}
		}
		s.mu.Unlock()
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d %s process(es) not polling %s after 90 s (last error: %v)", missing, prefix, queue, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// baselineWorkers starts the baseline's worker where Recoup's runs: in this process, or in
// as many processes. It returns the function that stops it.
func (s *benchSetup) baselineWorkers() func() {
	if s.workers > 0 {
		s.startBaselineWorkers()
		return func() {}
	}
	// The obvious way keeps the SDK's defaults; BENCH_BASELINE_AUTOSCALE=1 (or
	// BENCH_BASELINE_LIKE_RECOUP=1) gives the baseline the poller autoscaling Recoup's worker
	// ships with, to compare like for like.
	var bo worker.Options
	if os.Getenv("BENCH_BASELINE_AUTOSCALE") == "1" || likeRecoup() {
		bo.WorkflowTaskPollerBehavior = worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{})
		bo.ActivityTaskPollerBehavior = worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{})
	}
	bw := worker.New(s.baselineClient(), baselineQueue, bo)
	bw.RegisterWorkflow(Baseline)
	bw.RegisterActivity(Noop)
	if err := bw.Start(); err != nil {
		s.t.Fatal(err)
	}
	return bw.Stop
}

// callCounter counts a client's gRPC calls to the Temporal server by method: what the server
// serves per workflow, whatever the machine.
type callCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *callCounter) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[method[strings.LastIndex(method, "/")+1:]]++
	c.mu.Unlock()
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (c *callCounter) reset() {
	c.mu.Lock()
	c.calls = nil
	c.mu.Unlock()
}

// report prints the calls made since the last report, per workflow of the phase (the
// in-process worker's and the phase's starts; worker processes are not counted), and resets.
func (c *callCounter) report(phase string, runs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.calls))
	total := 0
	for name, n := range c.calls {
		names = append(names, fmt.Sprintf("%s %d", name, n))
		total += n
	}
	sort.Strings(names)
	fmt.Printf("first-touch-calls: %s phase, %.1f gRPC calls per workflow (%d runs): %s\n", phase, float64(total)/float64(max(runs, 1)), runs, strings.Join(names, ", "))
	c.calls = nil
}

// likeRecoup is BENCH_BASELINE_LIKE_RECOUP=1: the baseline connects and polls as Recoup's
// worker ships (no gzip, autoscaling pollers) instead of with the SDK's defaults.
func likeRecoup() bool { return os.Getenv("BENCH_BASELINE_LIKE_RECOUP") == "1" }

// baselineClient is the baseline's client, for its starts and its in-process worker: the
// SDK's defaults (gzip), as written the obvious way, or Recoup's connection (likeRecoup).
func (s *benchSetup) baselineClient() client.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bc != nil {
		return s.bc
	}
	o := client.Options{HostPort: s.h.HostPort(), Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	o.ConnectionOptions.DialOptions = []grpc.DialOption{grpc.WithChainUnaryInterceptor(s.baselineCalls.intercept)}
	if likeRecoup() {
		o.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
	}
	c, err := client.Dial(o)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(c.Close)
	s.bc = c
	return c
}

// TestBaselineWorkerProcess is the baseline's worker as a process of its own, started by
// TestFirstTouchThroughput with BENCH_WORKERS set; it runs until SIGTERM.
func TestBaselineWorkerProcess(t *testing.T) {
	addr := os.Getenv("BENCH_BASELINE_WORKER")
	if addr == "" {
		t.Skip("a helper process of TestFirstTouchThroughput (BENCH_WORKERS)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	c, err := client.Dial(client.Options{HostPort: addr, Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if a := os.Getenv("BENCH_BASELINE_PPROF"); a != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/profile", func(w http.ResponseWriter, r *http.Request) {
			// runtime/pprof directly: net/http/pprof would also register on the default mux.
			secs, _ := strconv.Atoi(r.URL.Query().Get("seconds"))
			if err := pprof.StartCPUProfile(w); err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			select {
			case <-time.After(time.Duration(max(secs, 1)) * time.Second):
			case <-r.Context().Done():
			}
			pprof.StopCPUProfile()
		})
		srv := &http.Server{Addr: a, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.ListenAndServe() }()
		defer srv.Close()
	}
	w := worker.New(c, baselineQueue, worker.Options{})
	w.RegisterWorkflow(Baseline)
	w.RegisterActivity(Noop)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
	w.Stop()
}

// phase starts measuring one phase of the benchmark: CPU profiles (BENCH_PROFILE_DIR) and
// the CPU time of every part of the machine. The returned function ends the phase: it waits
// for the profiles and prints the CPU split.
func (s *benchSetup) phase(name string) func() {
	before := s.cpuSample()
	began := time.Now()
	var wg sync.WaitGroup
	if s.profileDir != "" {
		prefix := filepath.Join(s.profileDir, s.label+"-"+name+"-")
		targets := map[string]string{}
		if s.pprofAddr != "" {
			targets["server"] = s.pprofAddr
		}
		s.mu.Lock()
		for _, p := range s.procs {
			if p.pprof != "" && strings.HasPrefix(p.role, map[bool]string{true: "baseline-", false: "worker"}[name == "baseline"]) {
				targets[p.role] = p.pprof
			}
		}
		s.mu.Unlock()
		for role, addr := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := fetchProfile(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(s.profileFor.Seconds())), prefix+role+".pprof"); err != nil {
					s.t.Errorf("CPU profile of %s: %v", role, err)
				}
			}()
		}
		f, err := os.Create(prefix + "bench.pprof")
		if err == nil && pprof.StartCPUProfile(f) == nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(s.profileFor)
				pprof.StopCPUProfile()
				f.Close()
			}()
		}
	}
	return func() {
		wall := time.Since(began)
		after := s.cpuSample()
		s.printSplit(name, wall, before, after)
		wg.Wait()
	}
}

func fetchProfile(u, path string) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s %s", u, resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cpuSample is the CPU time (clock ticks, USER_HZ = 100) of every process, and of the
// whole machine, at one moment, with each process's part of the benchmark.
type cpuSample struct {
	busy  int64            // all CPUs, /proc/stat
	procs map[int]procTime // by pid
}

type procTime struct {
	ticks int64
	part  string
}

// Parts of the machine, in the order they are printed.
var cpuParts = []string{"Temporal server", "PostgreSQL: Temporal's databases", "Recoup worker process(es)",
	"baseline worker process(es)", "PostgreSQL: Recoup's store", "bench process (ingest, fakes, in-process worker)",
	"PostgreSQL: other sessions and background", "rest of the machine (other jobs, exited processes)"}

func (s *benchSetup) cpuSample() cpuSample {
	out := cpuSample{procs: map[int]procTime{}}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		for i, v := range f[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			if i != 3 && i != 4 && i < 8 { // not idle, iowait, guest
				out.busy += n
			}
		}
	}
	// Which PostgreSQL backend serves whom.
	backends := map[int]string{}
	rows, err := s.h.Store.Pool().Query(context.Background(), `SELECT pid, coalesce(datname, ''), coalesce(application_name, '') FROM pg_stat_activity`)
	if err == nil {
		for rows.Next() {
			var pid int
			var db, app string
			if rows.Scan(&pid, &db, &app) == nil {
				switch {
				case strings.HasPrefix(db, "temporal"):
					backends[pid] = cpuParts[1]
				case strings.HasPrefix(app, "recoup-bench"):
					backends[pid] = cpuParts[4]
				}
			}
		}
		rows.Close()
	}
	workers := map[int]string{}
	s.mu.Lock()
	for _, p := range s.procs {
		if strings.HasPrefix(p.role, "baseline-") {
			workers[p.cmd.Process.Pid] = cpuParts[3]
		} else {
			workers[p.cmd.Process.Pid] = cpuParts[2]
		}
	}
	s.mu.Unlock()
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		st := string(b)
		open, closing := strings.IndexByte(st, '('), strings.LastIndexByte(st, ')')
		if open < 0 || closing < open {
			continue
		}
		comm := st[open+1 : closing]
		f := strings.Fields(st[closing+1:]) // f[0] is the state (field 3); utime is field 14
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		stt, _ := strconv.ParseInt(f[12], 10, 64)
		part := ""
		switch {
		case pid == self:
			part = cpuParts[5]
		case workers[pid] != "":
			part = workers[pid]
		case pid == s.serverPID || (s.addr == "" && ppid == self && comm == "temporal"):
			part = cpuParts[0]
		case comm == "postgres":
			part = backends[pid]
			if part == "" {
				part = cpuParts[6]
			}
		}
		if part != "" {
			out.procs[pid] = procTime{ticks: ut + stt, part: part}
		}
	}
	return out
}

// printSplit prints the CPU each part used between two samples, in cores (CPU seconds per
// second of the phase) and as a share of what the machine did.
func (s *benchSetup) printSplit(name string, wall time.Duration, a, b cpuSample) {
	used := map[string]int64{}
	var known int64
	for pid, p := range b.procs {
		d := p.ticks
		if q, ok := a.procs[pid]; ok && q.part == p.part {
			d -= q.ticks // a process that appeared during the phase counts whole
		}
		used[p.part] += d
		known += d
	}
	busy := b.busy - a.busy
	used[cpuParts[7]] = max(busy-known, 0)
	secs := wall.Seconds()
	var parts []string
	for _, part := range cpuParts {
		if used[part] == 0 {
			continue
		}
		share := 0.0
		if busy > 0 {
			share = 100 * float64(used[part]) / float64(busy)
		}
		perRun := ""
		if part != cpuParts[7] && s.runs > 0 {
			perRun = fmt.Sprintf(", %.1f ms/run", float64(used[part])*10/float64(s.runs)) // ticks are 10 ms
		}
		parts = append(parts, fmt.Sprintf("%s %.2f cores (%.0f%%%s)", part, float64(used[part])/100/secs, share, perRun))
	}
	fmt.Printf("first-touch-cpu: %s phase, %.1f s, machine busy %.2f of %d cores (%d runs): %s\n",
		name, secs, float64(busy)/100/secs, runtime.NumCPU(), s.runs, strings.Join(parts, "; "))
}

// loadAverage is /proc/loadavg's first three fields.
func loadAverage() string {
	f, err := os.Open("/proc/loadavg")
	if err != nil {
		return "?"
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	fields := strings.Fields(line)
	if len(fields) < 3 {
		return "?"
	}
	return strings.Join(fields[:3], " ")
}
