package chaos_test

// Chaos scenario "worker killed mid-send": the real worker binary runs as a separate OS
// process and is SIGKILLed 20 times at random points of its sends — while the provider
// holds a request it has not accepted, after the provider accepted a message but before
// the worker heard the answer, just after the answer reached the worker, and at random
// moments — and restarted each time. The provider reports what it accepted through its
// events (SendGrid's processed and delivered, recorded as the Event Webhook would) late,
// duplicated and out of order. Afterwards every run must have ended and every step must
// have been accepted exactly once, by evidence: a send whose outcome was cut is settled
// from the events (accepted: sent, never resent) or, when none named it within the
// reconcile window, resent once under its resend key (never accepted: superseded); no
// 'reconcile' row is left.
//
// Kills start once the first worker has made every run's first decision, so that they
// land on sends rather than on the initial burst of decisions. CHAOS_SEED replays a kill
// plan; CHAOS_LOG_DIR keeps the workers' output (kill-mid-send-worker.log).
//
// Recovery: every activity a kill cut (started on the killed worker, found through
// Temporal right after the kill) must complete on a later attempt; the time from the start
// of the worker that replaced the killed one to that completion is reported as a
// distribution (line kill-recovery), not asserted.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// Shape of the scenario. Every run has two email steps; the provider's send queue is rate
// limited by the server so that sends keep arriving one by one across the 20 worker
// lifetimes instead of all at once in the first.
const (
	kmsKills        = 20
	kmsRuns         = 32
	kmsSendsPerSec  = "3"
	kmsWaitForSend  = 5 * time.Second // longest wait for a send to cut before killing anyway
	kmsFinishWithin = 150 * time.Second
	// The reconcile window, and the longest delay of a provider event (well inside it: an
	// event later than the window would prove nothing, and the step would be resent).
	kmsReconcileWindow = 5 * time.Second
	kmsMaxEventDelay   = 1500 * time.Millisecond
)

// How a kill is placed relative to a send.
type kmsMode int

const (
	// The provider received the request and holds it without accepting: nothing is sent,
	// but the worker cannot know that.
	kmsBeforeAccept kmsMode = iota
	// The provider accepted the message and holds the answer: the worker dies before it
	// hears that the message went out.
	kmsAfterAccept
	// The answer (202) was written to the worker; the kill follows 0–5 ms later, before or
	// after the worker recorded it.
	kmsAfterAnswer
	// A random moment: after 1–3 more accepted sends or 50–1500 ms, whichever comes first.
	kmsRandom
)

func (m kmsMode) String() string {
	return [...]string{"held-before-accept", "held-after-accept", "just-after-answer", "random-moment"}[m]
}

func TestKillMidSend(t *testing.T) {
	chaosOnly(t)
	began := time.Now()
	seed := kmsSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x6b696c6c))
	t.Logf("seed %d (set CHAOS_SEED to replay the same kill plan)", seed)
	r := newKmsRig(t, seed, "kill-mid-send-worker.log", "EMAIL_SENDS_PER_SECOND="+kmsSendsPerSec, "SENDGRID_TIMEOUT=2s")
	h, prov := r.h, r.prov
	ctx := context.Background()

	// The runs: every customer consents to email only, so both steps go to the provider.
	invoices := make([]string, kmsRuns)
	for i := range kmsRuns {
		invoices[i] = fmt.Sprintf("inv_kms_%02d", i)
		r.startRun(invoices[i], fmt.Sprintf("evt_kms_%02d", i), fmt.Sprintf("cus_kms_%02d", i), nil)
	}
	r.waitBuilt()
	t.Logf("setup (build, dev server, %d runs started) took %s", kmsRuns, time.Since(began).Round(time.Millisecond))

	// The kill plan: a fixed mix of kill placements in a random order.
	var plan []kmsMode
	for mode, n := range map[kmsMode]int{kmsAfterAccept: 8, kmsBeforeAccept: 2, kmsAfterAnswer: 4, kmsRandom: 6} {
		for range n {
			plan = append(plan, mode)
		}
	}
	if len(plan) != kmsKills {
		t.Fatalf("the kill plan has %d kills, want %d", len(plan), kmsKills)
	}
	sort.Slice(plan, func(i, j int) bool { return plan[i] < plan[j] })
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })

	var cuts []kmsCut
	idle := 0 // kills with no send to cut within kmsWaitForSend
	killPhase := time.Now()
	for i, mode := range plan {
		w := r.start(i)
		if i == 0 {
			// The first worker makes every run's first decision before the kills begin, so
			// that the kills land on sends rather than on the initial burst of decisions
			// (a decision a kill cuts is retried after its heartbeat timeout, like a send).
			fakes.EventuallyWithin(t, 30*time.Second, func() bool {
				var n int
				err := h.Store.Pool().QueryRow(ctx, `SELECT count(DISTINCT workflow_id) FROM decisions WHERE step = 1`).Scan(&n)
				return err == nil && n >= kmsRuns
			}, "every run's first decision")
		}
		switch mode {
		case kmsRandom:
			if !w.waitReady(30 * time.Second) {
				t.Fatalf("worker %d did not start polling (exited: %v)", i, w.exited())
			}
			target := prov.total() + 1 + rng.IntN(3)
			deadline := time.NewTimer(time.Duration(50+rng.IntN(1450)) * time.Millisecond)
		wait:
			for {
				n, changed := prov.watch()
				if n >= target {
					break
				}
				select {
				case <-changed:
				case <-deadline.C:
					break wait
				}
			}
			deadline.Stop()
			if w.exited() {
				t.Fatalf("worker %d exited by itself", i)
			}
			w.kill()
			r.noteCut(w, i, invoices)
			cuts = append(cuts, kmsCut{mode: mode})
		default:
			arm := prov.arm(mode)
			var held kmsHeld
			var ok bool
			select {
			case held = <-arm.held:
				ok = true
			case <-time.After(kmsWaitForSend):
			case <-w.done:
				t.Fatalf("worker %d exited by itself", i)
			}
			if !ok {
				if !prov.disarm(arm) { // a request took the arm meanwhile
					held, ok = <-arm.held, true
				}
			}
			if ok && mode == kmsAfterAnswer {
				<-time.After(time.Duration(rng.IntN(5000)) * time.Microsecond) // the kill point, not synchronisation
			}
			w.kill() // SIGKILL, and the process is reaped
			r.noteCut(w, i, invoices)
			if held.release != nil {
				close(held.release) // answer a dead connection
			}
			if ok {
				cuts = append(cuts, kmsCut{key: held.key, mode: mode})
			} else {
				idle++
				cuts = append(cuts, kmsCut{mode: mode})
			}
		}
	}
	t.Logf("%d kills in %s (%d found no send to cut within %s)", len(plan), time.Since(killPhase).Round(time.Millisecond), idle, kmsWaitForSend)

	// The last restart: the worker runs until every run has ended.
	final := r.start(len(plan))
	lastKill := time.Now()
	results, states, lost := r.awaitRuns(invoices, kmsFinishWithin)
	t.Logf("%d of %d runs ended, the last %s after the last restart", len(results), kmsRuns, time.Since(lastKill).Round(time.Millisecond))
	// How the activities the kills cut recovered (asserted: every one completed; the times
	// are reported, not asserted).
	cutActs, recoveries := r.recoveries()
	for i, rec := range recoveries {
		c := cutActs[i]
		t.Logf("cut by kill %d (worker %d started %s after the test began): %s %s activity %s; attempt %d timed out %s, the completing attempt started %s and completed %s after that worker's start (by it: %v)",
			c.kill, c.kill+1, r.starts[c.kill+1].Sub(began).Round(time.Millisecond), c.wfID, c.activityType, c.activityID,
			c.attempt, rec.timedOut.Round(time.Millisecond), rec.resumed.Round(time.Millisecond), rec.fromNext.Round(time.Millisecond), rec.byNext)
	}
	recoveryLine := kmsRecoveryLine(recoveries)
	t.Log(recoveryLine)
	if testing.Verbose() {
		fmt.Println(recoveryLine)
	}
	if err := final.terminate(45 * time.Second); err != nil {
		t.Errorf("worker on SIGTERM: %v", err)
	}

	s := r.checkSends(invoices, results, states, cuts)
	line := fmt.Sprintf("kill-mid-send: %d kills, %d steps, %d duplicates, %d lost, %d reconcile left; %d settled by evidence, %d resent once; events %s",
		len(plan), len(s.steps), s.duplicates, lost+s.lostSteps, s.reconcile, s.byEvidence, s.superseded, prov.events.summary())
	t.Log(line)
	if testing.Verbose() {
		fmt.Println(line)
	}
	var perMode []string
	for _, mode := range []kmsMode{kmsAfterAccept, kmsBeforeAccept, kmsAfterAnswer} {
		perMode = append(perMode, s.perMode(cuts, mode))
	}
	random := 0
	for _, c := range cuts {
		if c.mode == kmsRandom {
			random++
		}
	}
	perMode = append(perMode, fmt.Sprintf("%d %s", random, kmsRandom))
	t.Logf("kills: %s, %d with no send in reach; sends: %d accepted by the provider, %d sent (%d by evidence), %d superseded; %d runs exhausted; total %s",
		strings.Join(perMode, ", "), idle, len(s.accepted), s.sent, s.byEvidence, s.superseded, s.exhausted, time.Since(began).Round(time.Millisecond))
	if lost != 0 || !s.clean() {
		t.Error(line)
	}
}

// kmsSeed is CHAOS_SEED, or a new seed.
func kmsSeed(t *testing.T) uint64 {
	t.Helper()
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", v, err)
		}
		return s
	}
	return uint64(time.Now().UnixNano())
}

// kmsRig is what the worker-kill scenarios share: the real worker binary (built while the
// dev server starts), a dev server without an in-process worker and the schema the workers
// use, the SendGrid endpoint (kmsProvider) with its events, the workers' environment and
// output, and the workers started and the activities each kill cut.
type kmsRig struct {
	t       *testing.T
	h       *workertest.Harness
	prov    *kmsProvider
	bin     string
	env     []string
	built   chan error
	logFile *os.File
	logMu   sync.Mutex        // the workers' output, one after the other, in one file
	starts  map[int]time.Time // worker index → its start
	pids    map[int]int       // pid → worker index

	// The activities each kill cut, asked of Temporal beside the next worker's start.
	cutMu   sync.Mutex
	cutActs []kmsCutActivity
	cutWG   sync.WaitGroup
}

// newKmsRig sets the scenario up; env is added to the workers' common environment (a later
// value of a variable wins). CHAOS_LOG_DIR keeps the workers' output in logName.
func newKmsRig(t *testing.T, seed uint64, logName string, env ...string) *kmsRig {
	t.Helper()
	dir := t.TempDir()
	r := &kmsRig{t: t, bin: filepath.Join(dir, "worker"), built: make(chan error, 1), starts: map[int]time.Time{}, pids: map[int]int{}}
	buildDone := make(chan struct{})
	go func() { defer close(buildDone); r.built <- fakes.BuildWorker(r.bin) }()
	t.Cleanup(func() { <-buildDone }) // before the temporary directory is removed

	// Dev server (the pinned CLI, with Recoup's search attributes), a migrated schema, and
	// the ingest path; no in-process worker.
	r.h = workertest.Start(t, workertest.Options{NoWorker: true})
	var schema string
	if err := r.h.Store.Pool().QueryRow(context.Background(), `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatalf("current schema: %v", err)
	}
	dbURL, err := fakes.WithSearchPath(fakes.DatabaseURL(), schema)
	if err != nil {
		t.Fatal(err)
	}
	r.prov = newKmsProvider(t)
	r.prov.events = newKmsEvents(r.h.Store, seed)
	r.prov.events.traffic()
	t.Cleanup(r.prov.events.wait) // before the store closes
	fake := httptest.NewServer(r.prov)
	t.Cleanup(fake.Close)
	t.Cleanup(r.prov.releaseAll) // before fake.Close, which waits for held handlers

	home := filepath.Join(dir, "home") // no stray Temporal profile from the real $HOME
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	r.env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + dir,
		"DATABASE_URL=" + dbURL,
		"TEMPORAL_ADDRESS=" + r.h.HostPort(), "TEMPORAL_NAMESPACE=default",
		"SENDGRID_API_KEY=SG.chaos", "SENDGRID_BASE_URL=" + fake.URL,
		"EMAIL_FROM=billing@shop.example",
		"RECOUP_SCHEDULE=0s,2s", "RECOUP_FINAL_WAIT=1s", "RECOUP_IGNORE_QUIET_HOURS=true",
		"RECOUP_CONTACT_CAP=100/7", "METRICS_ADDR=127.0.0.1:0", "LOG_FORMAT=text",
		"RECOUP_RECONCILE_WINDOW=" + kmsReconcileWindow.String(),
		// The deployment hears SendGrid's events (kmsEvents records them as the verified
		// webhook would): only then may a send no event named be resent after the window.
		// The worker only checks that the key is set; serve verifies with it.
		"SENDGRID_WEBHOOK_PUBLIC_KEY=chaos-events-are-recorded-directly",
	}, env...)
	logPath := filepath.Join(dir, "worker.log")
	if d := os.Getenv("CHAOS_LOG_DIR"); d != "" { // keep the workers' output after the test
		logPath = filepath.Join(d, logName)
	}
	r.logFile, err = os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.logFile.Close()
		if t.Failed() {
			kmsTail(t, logPath, 60)
		}
	})
	return r
}

// startRun delivers a payment failure for invoice; its customer consents to email only, so
// every step goes to the provider. set, when not nil, changes the event first.
func (r *kmsRig) startRun(invoice, eventID, customer string, set func(ev map[string]any)) {
	r.t.Helper()
	ev := workertest.Failed(eventID, invoice, customer, time.Now().UTC())
	ev["customer"].(map[string]any)["sms_consent"] = false
	if set != nil {
		set(ev)
	}
	if res := r.h.Event(ev); !res.Delivered {
		r.t.Fatalf("event for %s not delivered: %+v", invoice, res)
	}
}

// waitBuilt waits for the worker binary.
func (r *kmsRig) waitBuilt() {
	r.t.Helper()
	if err := <-r.built; err != nil {
		r.t.Fatalf("build the worker: %v", err)
	}
}

// start starts worker n (stopped at the end of the test).
func (r *kmsRig) start(n int) *kmsWorker {
	r.t.Helper()
	w, err := startKmsWorker(r.bin, r.env, n, r.logFile, &r.logMu)
	if err != nil {
		r.t.Fatalf("start worker %d: %v", n, err)
	}
	r.starts[n], r.pids[w.cmd.Process.Pid] = time.Now(), n
	r.t.Cleanup(w.kill)
	return w
}

// noteCut asks Temporal, beside the next worker's start, which of the runs' activities the
// killed worker w was running (kill is the kill's index: worker kill+1 replaced it).
func (r *kmsRig) noteCut(w *kmsWorker, kill int, invoices []string) {
	r.cutWG.Add(1)
	go func() {
		defer r.cutWG.Done()
		c, err := kmsCutBy(context.Background(), r.h.Client, invoices, w.cmd.Process.Pid, kill)
		r.cutMu.Lock()
		defer r.cutMu.Unlock()
		if err != nil {
			r.t.Errorf("activities cut by kill %d: %v", kill, err)
		}
		r.cutActs = append(r.cutActs, c...)
	}()
}

// awaitRuns waits up to within for every run to end, then queries what each ended one
// recorded (while a worker is up to answer); lost counts the runs that did not end.
func (r *kmsRig) awaitRuns(invoices []string, within time.Duration) (results map[string]recoup.DunningResult, states map[string]recoup.State, lost int) {
	r.t.Helper()
	ctx := context.Background()
	waitCtx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	results, states = map[string]recoup.DunningResult{}, map[string]recoup.State{}
	for _, inv := range invoices {
		var res recoup.DunningResult
		if err := r.h.Client.GetWorkflow(waitCtx, recoup.WorkflowID(inv), "").Get(waitCtx, &res); err != nil {
			lost++
			r.t.Errorf("run %s did not finish within %s of the last restart: %v", inv, within, err)
			continue
		}
		results[inv] = res
	}
	for inv := range results {
		qctx, qcancel := context.WithTimeout(ctx, 20*time.Second)
		v, err := r.h.Client.QueryWorkflow(qctx, recoup.WorkflowID(inv), "", recoup.QueryStatus)
		var st recoup.State
		if err == nil {
			err = v.Get(&st)
		}
		qcancel()
		if err != nil {
			r.t.Errorf("query %s: %v", inv, err)
			continue
		}
		states[inv] = st
	}
	return results, states, lost
}

// recoveries reads how the activities the kills cut recovered; every one must have
// completed on a later attempt (asserted; the times are reported, not asserted).
func (r *kmsRig) recoveries() ([]kmsCutActivity, []kmsRecovery) {
	r.t.Helper()
	r.cutWG.Wait()
	recoveries, err := kmsRecoveries(context.Background(), r.h.Client, r.cutActs, r.starts, r.pids)
	if err != nil {
		r.t.Errorf("recoveries: %v", err)
	}
	for i, rec := range recoveries {
		if !rec.closed || !rec.completed {
			c := r.cutActs[i]
			r.t.Errorf("%s %s (activity %s) cut by kill %d: closed %v, completed %v; want completed by a later attempt", c.wfID, c.activityType, c.activityID, c.kill, rec.closed, rec.completed)
		}
	}
	return r.cutActs, recoveries
}

// kmsCut is a send a kill was placed at (key "" when none was in reach).
type kmsCut struct {
	key  string
	mode kmsMode
}

// kmsSends is what the provider accepted and what PostgreSQL says about every send.
type kmsSends struct {
	accepted map[string]int        // by the provider, per key
	rows     map[string]kmsSendRow // the sends table, per key
	steps    map[string]int        // per step (the key and its resend key): acceptances

	duplicates, lostSteps, reconcile, superseded, byEvidence, sent, exhausted int
}

type kmsSendRow struct{ status, providerID, err, evidence string }

// clean reports whether every step was accepted exactly once and none is left to reconcile.
func (s kmsSends) clean() bool { return s.duplicates == 0 && s.lostSteps == 0 && s.reconcile == 0 }

// perMode summarises how the sends cut in mode ended.
func (s kmsSends) perMode(cuts []kmsCut, mode kmsMode) string {
	n, outcomes := 0, map[string]int{}
	for _, c := range cuts {
		if c.mode == mode && c.key != "" {
			n++
			outcomes[s.rows[c.key].status]++
		}
	}
	return fmt.Sprintf("%d %s (%d sent, %d superseded and resent)", n, mode, outcomes[postgres.SendSent], outcomes[postgres.SendSuperseded])
}

// checkSends stops the provider's events, then holds what the provider accepted against
// the sends table, each run's result and recorded messages, and each cut send's outcome
// (its mode's): every step accepted exactly once, each run exhausted after 2 steps. The
// last worker must have stopped (the rows are final).
func (r *kmsRig) checkSends(invoices []string, results map[string]recoup.DunningResult, states map[string]recoup.State, cuts []kmsCut) kmsSends {
	t := r.t
	t.Helper()
	ctx := context.Background()
	r.prov.events.wait()
	s := kmsSends{accepted: r.prov.snapshot(), rows: map[string]kmsSendRow{}, steps: map[string]int{}}
	rows, err := r.h.Store.Pool().Query(ctx, `SELECT idempotency_key, status, provider_message_id, error, evidence FROM sends WHERE workflow_id <> $1 ORDER BY idempotency_key`, kmsTraffic)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		var row kmsSendRow
		if err := rows.Scan(&k, &row.status, &row.providerID, &row.err, &row.evidence); err != nil {
			t.Fatal(err)
		}
		s.rows[k] = row
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	// Per step (the key and its resend key): accepted exactly once.
	for k, n := range s.accepted {
		s.steps[strings.TrimSuffix(k, "/resend")] += n
		if row, ok := s.rows[k]; !ok || row.status != postgres.SendSent {
			t.Errorf("key %s was accepted by the provider but its send row is %+v (found %v), want sent", k, row, ok)
		}
	}
	for k, row := range s.rows {
		switch row.status {
		case postgres.SendSent:
			s.sent++
			if row.evidence != "" {
				s.byEvidence++
			}
			if s.accepted[k] != 1 {
				t.Errorf("send %s is 'sent' but the provider accepted it %d times", k, s.accepted[k])
			}
		case postgres.SendSuperseded:
			s.superseded++
			if s.accepted[k] != 0 {
				t.Errorf("send %s was superseded (resent) although the provider accepted it", k)
			}
		case postgres.SendReconcile:
			s.reconcile++
			t.Errorf("send %s is still 'reconcile' after the window (%s)", k, row.err)
		default:
			t.Errorf("send %s ended %q (%s), want sent or superseded", k, row.status, row.err)
		}
		if !strings.HasSuffix(k, "/resend") {
			if _, ok := s.steps[k]; !ok {
				s.steps[k] = 0
			}
		}
	}
	for k, n := range s.steps {
		switch {
		case n > 1:
			s.duplicates++
			t.Errorf("step %s was accepted %d times (key and resend key)", k, n)
		case n == 0:
			s.lostSteps++
			t.Errorf("step %s was never accepted: lost", k)
		}
	}
	afterAccept := 0
	for _, c := range cuts {
		if c.key == "" {
			continue
		}
		row := s.rows[c.key]
		switch c.mode {
		case kmsAfterAccept:
			afterAccept++
			if row.status != postgres.SendSent || row.evidence == "" {
				t.Errorf("send %s was cut %s but is %+v, want sent by evidence", c.key, c.mode, row)
			}
		case kmsBeforeAccept:
			if row.status != postgres.SendSuperseded && row.status != postgres.SendSent {
				t.Errorf("send %s was cut %s but is %q, want superseded (resent) or sent", c.key, c.mode, row.status)
			}
		case kmsAfterAnswer:
			if row.status != postgres.SendSent {
				t.Errorf("send %s was cut %s but is %q, want sent", c.key, c.mode, row.status)
			}
		}
	}
	if s.byEvidence < afterAccept {
		t.Errorf("%d sends settled by evidence, want at least the %d cut after the provider accepted them", s.byEvidence, afterAccept)
	}
	for _, inv := range invoices {
		res, ok := results[inv]
		if !ok {
			continue
		}
		if res.Status != recoup.StatusExhausted || res.Steps != 2 {
			t.Errorf("run %s ended %+v, want exhausted after 2 steps", inv, res)
		}
		st, ok := states[inv]
		if !ok {
			continue
		}
		last := map[int]recoup.MessageRecord{} // a step whose outcome was unknown has two records
		for _, m := range st.Messages {
			last[m.Step] = m
		}
		if len(last) != 2 {
			t.Errorf("run %s recorded messages for %d steps, want 2: %+v", inv, len(last), st.Messages)
		}
		for _, m := range last {
			if row, ok := s.rows[m.IdempotencyKey]; !ok || row.status != m.Delivery {
				t.Errorf("run %s step %d: the run recorded delivery %q (%s), the sends table %q", inv, m.Step, m.Delivery, m.Error, row.status)
			}
		}
	}
	if err := r.h.Store.Pool().QueryRow(ctx, `SELECT count(*) FROM dunning_runs WHERE outcome = 'exhausted'`).Scan(&s.exhausted); err != nil {
		t.Fatal(err)
	}
	if s.exhausted != len(invoices) {
		t.Errorf("dunning_runs records %d exhausted runs, want %d", s.exhausted, len(invoices))
	}
	return s
}

// kmsTail logs the last n lines of the workers' output.
func kmsTail(t *testing.T, path string, n int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	t.Logf("last %d lines of the workers' output (%s):\n%s", len(lines), path, strings.Join(lines, "\n"))
}

// kmsWorker is one worker process.
type kmsWorker struct {
	cmd       *exec.Cmd
	ready     chan struct{} // closed when the worker logs that it is polling
	done      chan struct{} // closed when the process has exited and been reaped
	waitErr   error
	readyOnce sync.Once
}

func startKmsWorker(bin string, env []string, n int, log *os.File, mu *sync.Mutex) (*kmsWorker, error) {
	w := &kmsWorker{ready: make(chan struct{}), done: make(chan struct{})}
	out := &kmsLines{prefix: fmt.Sprintf("[worker %02d] ", n), file: log, mu: mu, onLine: func(l string) {
		if strings.Contains(l, "worker polling") {
			w.readyOnce.Do(func() { close(w.ready) })
		}
	}}
	w.cmd = exec.Command(bin)
	w.cmd.Env = env
	w.cmd.Stdout, w.cmd.Stderr = out, out
	if err := w.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		w.waitErr = w.cmd.Wait()
		out.flush()
		close(w.done)
	}()
	return w, nil
}

func (w *kmsWorker) waitReady(d time.Duration) bool {
	select {
	case <-w.ready:
		return true
	case <-w.done:
		return false
	case <-time.After(d):
		return false
	}
}

func (w *kmsWorker) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to the worker (by its pid) and waits until it has been reaped.
func (w *kmsWorker) kill() {
	if w.exited() {
		return
	}
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
}

// terminate asks the worker to shut down (SIGTERM) and reports how it exited.
func (w *kmsWorker) terminate(within time.Duration) error {
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-w.done:
		return w.waitErr
	case <-time.After(within):
		w.kill()
		return fmt.Errorf("still running %s after SIGTERM; killed", within)
	}
}

// kmsLines writes a process's output to the shared log file line by line.
type kmsLines struct {
	prefix string
	file   *os.File
	mu     *sync.Mutex
	onLine func(string)
	buf    []byte
}

func (l *kmsLines) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *kmsLines) flush() {
	if len(l.buf) > 0 {
		l.line(string(l.buf))
		l.buf = nil
	}
}

func (l *kmsLines) line(s string) {
	l.onLine(s)
	l.mu.Lock()
	fmt.Fprintln(l.file, l.prefix+s)
	l.mu.Unlock()
}

// kmsProvider is a SendGrid /v3/mail/send endpoint (each request checked against the
// contract by fakes.CheckSendGrid) that counts accepted messages per
// personalizations[0].custom_args.idempotency_key. Armed, it holds the next request — before
// or after accepting it, or reports it once answered — so that the test can kill the
// worker at that point of the send; hold does the same for the first request of given keys.
type kmsProvider struct {
	tb       testing.TB
	events   *kmsEvents // reports what it accepted, as SendGrid's Event Webhook would
	mu       sync.Mutex
	accepted map[string]int
	count    int
	changed  chan struct{} // closed and replaced on every acceptance
	armed    *kmsArm
	planned  map[string]*kmsArm // per key (hold), taken by the key's first request
	holds    []chan struct{}
}

type kmsArm struct {
	mode kmsMode
	held chan kmsHeld // receives the request the arm caught
}

type kmsHeld struct {
	key     string
	release chan struct{} // nil when nothing is held (kmsAfterAnswer)
}

func newKmsProvider(tb testing.TB) *kmsProvider {
	return &kmsProvider{tb: tb, accepted: map[string]int{}, changed: make(chan struct{})}
}

func (p *kmsProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, ok := fakes.CheckSendGrid(p.tb, r) // it holds requests mid-send: more than the SendGrid fake does
	if !ok {
		http.Error(w, `{"errors":[{"message":"bad request"}]}`, http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	arm, ok := p.planned[key]
	if ok {
		delete(p.planned, key)
	} else {
		arm, p.armed = p.armed, nil
	}
	var release chan struct{}
	if arm != nil && arm.mode != kmsAfterAnswer {
		release = make(chan struct{})
		p.holds = append(p.holds, release)
	}
	p.mu.Unlock()

	if arm != nil && arm.mode == kmsBeforeAccept {
		arm.held <- kmsHeld{key: key, release: release}
		<-release
		http.Error(w, `{"errors":[{"message":"unavailable"}]}`, http.StatusServiceUnavailable)
		return
	}
	p.mu.Lock()
	p.accepted[key]++
	p.count++
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	if p.events != nil {
		p.events.accepted(key)
	}
	if arm != nil && arm.mode == kmsAfterAccept {
		arm.held <- kmsHeld{key: key, release: release}
		<-release
	}
	w.Header().Set("X-Message-Id", "sg-"+key)
	w.WriteHeader(http.StatusAccepted)
	if arm != nil && arm.mode == kmsAfterAnswer {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		arm.held <- kmsHeld{key: key}
	}
}

// arm makes the next request a cut point of the given mode.
func (p *kmsProvider) arm(mode kmsMode) *kmsArm {
	a := &kmsArm{mode: mode, held: make(chan kmsHeld, 1)}
	p.mu.Lock()
	p.armed = a
	p.mu.Unlock()
	return a
}

// hold makes the first request of each key a cut point of the given mode (kmsBeforeAccept
// or kmsAfterAccept), whatever is armed; the returned arm receives each request it holds.
func (p *kmsProvider) hold(mode kmsMode, keys ...string) *kmsArm {
	a := &kmsArm{mode: mode, held: make(chan kmsHeld, len(keys))}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.planned == nil {
		p.planned = map[string]*kmsArm{}
	}
	for _, k := range keys {
		p.planned[k] = a
	}
	return a
}

// disarm withdraws a; false when a request took it first.
func (p *kmsProvider) disarm(a *kmsArm) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.armed == a {
		p.armed = nil
		return true
	}
	return false
}

// releaseAll lets every held request finish.
func (p *kmsProvider) releaseAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.holds {
		select {
		case <-c:
		default:
			close(c)
		}
	}
	p.holds = nil
}

func (p *kmsProvider) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// watch returns the number of acceptances and a channel closed at the next one.
func (p *kmsProvider) watch() (int, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count, p.changed
}

func (p *kmsProvider) snapshot() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]int, len(p.accepted))
	for k, v := range p.accepted {
		m[k] = v
	}
	return m
}

// kmsEvents plays SendGrid's Event Webhook: for every accepted message it records a
// processed and a delivered event, each after a random delay up to kmsMaxEventDelay, so
// they arrive late and in either order; a third of the messages get one event twice
// (redelivered). Recording goes through postgres.RecordProviderEvent, the store call the
// ingress makes once it has verified a request.
type kmsEvents struct {
	st       *postgres.Store
	wg       sync.WaitGroup
	stop     chan struct{}
	stopOnce sync.Once

	mu                        sync.Mutex
	rng                       *rand.Rand
	recorded, dups, reordered int
	failed                    []string
}

func newKmsEvents(st *postgres.Store, seed uint64) *kmsEvents {
	return &kmsEvents{st: st, rng: rand.New(rand.NewPCG(seed, 0x6576656e74)), stop: make(chan struct{})}
}

func (e *kmsEvents) accepted(key string) {
	e.mu.Lock()
	dProcessed := time.Duration(e.rng.Int64N(int64(kmsMaxEventDelay)))
	dDelivered := time.Duration(e.rng.Int64N(int64(kmsMaxEventDelay)))
	dup := e.rng.IntN(3) == 0
	if dDelivered < dProcessed {
		e.reordered++
	}
	e.mu.Unlock()
	at := time.Now().UTC()
	e.later(dProcessed, key, "processed", recoup.DeliveryAccepted, at)
	e.later(dDelivered, key, "delivered", recoup.DeliveryDelivered, at.Add(time.Second))
	if dup {
		e.later(dDelivered+100*time.Millisecond, key, "delivered", recoup.DeliveryDelivered, at.Add(time.Second))
	}
}

// later records one event after d (the provider's delay, not synchronisation).
func (e *kmsEvents) later(d time.Duration, key, event, kind string, at time.Time) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		time.Sleep(d)
		res, err := e.st.RecordProviderEvent(context.Background(), postgres.ProviderEvent{Provider: "sendgrid",
			ProviderEventID: key + "/" + event, IdempotencyKey: key, Kind: kind, ProviderMessageID: "sg-" + key,
			OccurredAt: at, Body: []byte(`{"event":"` + event + `"}`)})
		e.mu.Lock()
		defer e.mu.Unlock()
		switch {
		case err != nil:
			e.failed = append(e.failed, fmt.Sprintf("%s %s: %v", key, event, err))
		case res.Duplicate:
			e.dups++
		default:
			e.recorded++
		}
	}()
}

// wait stops the traffic and waits for every event to be recorded.
func (e *kmsEvents) wait() {
	e.stopOnce.Do(func() { close(e.stop) })
	e.wg.Wait()
}

// kmsTraffic is the workflow id of the traffic's sends (not the runs'; left out of the
// counts).
const kmsTraffic = "kms-traffic"

// traffic plays the rest of the deployment's mail until wait: every 500ms a message of
// another customer is claimed and SendGrid reports it, so SendGrid's events flow past every
// reconcile window, the watermark without which a send no event named is never resent.
func (e *kmsEvents) traffic() {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-e.stop:
				return
			case <-tick.C:
			}
			ctx := context.Background()
			key := fmt.Sprintf("%s/step-%d/email", kmsTraffic, n)
			_, _, err := e.st.ReserveSend(ctx, postgres.Reservation{Key: key, WorkflowID: kmsTraffic, Step: n, Channel: "email",
				CustomerID: "cus_kms_traffic", InvoiceID: "inv_kms_traffic", Body: "traffic"})
			if err == nil {
				err = e.st.CompleteSend(ctx, key, postgres.SendSent, "sg-"+key)
			}
			if err == nil {
				_, err = e.st.RecordProviderEvent(ctx, postgres.ProviderEvent{Provider: "sendgrid", ProviderEventID: key + "/processed",
					IdempotencyKey: key, Kind: recoup.DeliveryAccepted, OccurredAt: time.Now().UTC(), Body: []byte(`{"event":"processed"}`)})
			}
			if err != nil {
				e.mu.Lock()
				e.failed = append(e.failed, fmt.Sprintf("traffic %s: %v", key, err))
				e.mu.Unlock()
			}
		}
	}()
}

func (e *kmsEvents) summary() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := fmt.Sprintf("%d recorded, %d redelivered duplicates, %d messages' delivered before processed", e.recorded, e.dups, e.reordered)
	if len(e.failed) > 0 {
		s += fmt.Sprintf(", %d failed to record (first: %s)", len(e.failed), e.failed[0])
	}
	return s
}
