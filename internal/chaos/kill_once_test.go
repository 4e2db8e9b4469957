package chaos_test

// Chaos scenario "worker killed once": how long a killed worker's activities take to resume
// from the start of the worker that replaces it, without what stretches TestKillMidSend's
// figures (20 kills, later kills cutting the same work again, an email queue limited to 3
// sends/s with sends waiting behind it). The real worker binary starts kmoRuns runs and is
// SIGKILLed once, at a moment when it has work in flight of each kind:
//   - decisions: the model (an OpenAI-compatible fake) holds its answer to the first
//     decision of kmoPerKind runs. A run with "lean-run" decides in a local activity, inside
//     its workflow task, so the killed worker's workflow task is what has to time out;
//   - sends held by the provider before it accepted them (kmoPerKind runs' first email);
//   - sends held by the provider after it accepted them (kmoPerKind more).
// A replacement starts at once, then the provider's holds are released (answering dead
// connections; the model's held calls end with the connection). From the runs' histories
// the test reads when each cut send's next attempt completed (its outcome recorded), when
// each cut decision was recorded (the workflow task that completed with its marker), and
// when the run's next workflow task after a cut send completed, and reports them from the
// replacement's start (line kill-once-recovery), split by kind. It asserts exactly-once —
// every step accepted by the provider once, one decision per step recorded once, every run
// exhausted after its two steps — and asserts no time.

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/fakes"
)

const (
	kmoPerKind = 8              // runs per kind of work in flight at the kill
	kmoRuns    = 3 * kmoPerKind // decisions held, sends held before accept, sends held after accept
	// kmoAmountBase: run i owes (kmoAmountBase + i) dollars, which names the run in the model's prompt.
	kmoAmountBase = 300
	// The longest wait for every hold to be reached: a bound on a hang, not a measurement.
	kmoHoldWithin = 60 * time.Second
)

func TestKillOnce(t *testing.T) {
	chaosOnly(t)
	began := time.Now()
	seed := kmsSeed(t)
	t.Logf("seed %d (the provider's event delays; set CHAOS_SEED to replay them)", seed)

	// The model: it holds its answer to the first call of runs 0..kmoPerKind-1 until the kill
	// (the client's timeout is far longer, so the call is in flight when the worker dies),
	// and answers every other call at once.
	model := fakes.NewOpenAI(t, goodEmailAnswer)
	decisionHeld := make(chan int, kmoPerKind)
	var modelMu sync.Mutex
	holding, asked, unknown := true, map[int]int{}, 0
	model.Respond(func(req fakes.Request) fakes.Response {
		run := -1
		if m := amountDueRe.FindStringSubmatch(req.UserMessage()); m != nil {
			if n, err := strconv.Atoi(strings.ReplaceAll(m[1], ",", "")); err == nil && n >= kmoAmountBase && n-kmoAmountBase < kmoRuns {
				run = n - kmoAmountBase
			}
		}
		modelMu.Lock()
		defer modelMu.Unlock()
		if run < 0 {
			unknown++
			return fakes.Response{Status: http.StatusBadRequest, Body: `{"error":{"message":"unrecognised request","type":"invalid_request_error","param":null,"code":null}}`}
		}
		asked[run]++
		if holding && run < kmoPerKind && asked[run] == 1 {
			return fakes.Response{Hang: true, Before: func() { decisionHeld <- run }} // until the caller's connection closes
		}
		return fakes.Reply(goodEmailAnswer)
	})

	// No send rate limit; the clients' timeouts far longer than the holds, so that every held
	// call is still in flight when the worker dies.
	r := newKmsRig(t, seed, "kill-once-worker.log", "SENDGRID_TIMEOUT=60s",
		"OPENAI_API_KEY=sk-chaos", "OPENAI_BASE_URL="+model.BaseURL(), "OPENAI_MODEL=chaos-model", "OPENAI_TIMEOUT=60s")
	ctx := context.Background()
	invoices := make([]string, kmoRuns)
	var beforeKeys, afterKeys []string
	for i := range kmoRuns {
		invoices[i] = fmt.Sprintf("inv_kmo_%02d", i)
		key := activities.IdempotencyKey(recoup.WorkflowID(invoices[i]), 1, recoup.ChannelEmail)
		switch i / kmoPerKind {
		case 1:
			beforeKeys = append(beforeKeys, key)
		case 2:
			afterKeys = append(afterKeys, key)
		}
	}
	beforeAccept, afterAccept := r.prov.hold(kmsBeforeAccept, beforeKeys...), r.prov.hold(kmsAfterAccept, afterKeys...)
	for i, inv := range invoices {
		r.startRun(inv, fmt.Sprintf("evt_kmo_%02d", i), fmt.Sprintf("cus_kmo_%02d", i), func(ev map[string]any) {
			ev["amount_minor"] = (kmoAmountBase + i) * 100
		})
	}
	r.waitBuilt()
	t.Logf("setup (build, dev server, %d runs started) took %s", kmoRuns, time.Since(began).Round(time.Millisecond))

	// The first worker runs until every hold is reached.
	first := r.start(0)
	var cuts []kmsCut
	var decisionRuns []int
	deadline := time.NewTimer(kmoHoldWithin)
	defer deadline.Stop()
	for len(decisionRuns) < kmoPerKind || len(cuts) < 2*kmoPerKind {
		select {
		case run := <-decisionHeld:
			decisionRuns = append(decisionRuns, run)
		case h := <-beforeAccept.held:
			cuts = append(cuts, kmsCut{key: h.key, mode: kmsBeforeAccept})
		case h := <-afterAccept.held:
			cuts = append(cuts, kmsCut{key: h.key, mode: kmsAfterAccept})
		case <-first.done:
			t.Fatalf("worker 0 exited by itself")
		case <-deadline.C:
			t.Fatalf("within %s only %d decisions and %d sends were held, want %d and %d", kmoHoldWithin, len(decisionRuns), len(cuts), kmoPerKind, 2*kmoPerKind)
		}
	}
	t.Logf("every hold reached %s after the first worker started", time.Since(r.starts[0]).Round(time.Millisecond))

	// The kill: the model answers the replacement's calls; the replacement starts at once,
	// then the provider answers the dead connections.
	modelMu.Lock()
	holding = false
	modelMu.Unlock()
	first.kill() // SIGKILL, and the process is reaped
	killed := time.Now()
	final := r.start(1)
	r.noteCut(first, 0, invoices)
	r.prov.releaseAll()
	t.Logf("the replacement started %s after the kill", r.starts[1].Sub(killed).Round(time.Millisecond))

	results, states, lost := r.awaitRuns(invoices, kmsFinishWithin)
	t.Logf("%d of %d runs ended, the last %s after the replacement started", len(results), kmoRuns, time.Since(r.starts[1]).Round(time.Millisecond))

	// The sends the kill cut (regular activities, found through Temporal after the kill) and
	// the decisions it cut (local activities, known from the model's holds).
	cutActs, sendRecoveries := r.recoveries()
	cutSends := map[string]bool{}
	for _, c := range cutActs {
		cutSends[c.wfID] = true
	}
	for _, c := range cuts {
		if wf, _, _ := strings.Cut(c.key, "/"); !cutSends[wf] {
			t.Errorf("the send %s held %s was not found started on the killed worker", c.key, c.mode)
		}
	}
	var decisionRecoveries []kmsRecovery
	decisionMarkers := map[string]int{}
	for i, inv := range invoices {
		wf := recoup.WorkflowID(inv)
		events, err := kmsHistory(ctx, r.h.Client, wf, "")
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		markers, err := kmsLocalActivities(events, "DecideStrategy")
		if err != nil {
			t.Errorf("%s: %v", wf, err)
		}
		decisionMarkers[wf] = len(markers)
		if i >= kmoPerKind {
			continue
		}
		rec, err := kmsDecisionRecovery(events, 0, r.starts, r.pids)
		if err != nil {
			t.Errorf("%s: %v", wf, err)
		}
		if !rec.closed || !rec.completed || !rec.byNext {
			t.Errorf("%s: the decision the kill cut: recorded %v, succeeded %v, by the replacement %v", wf, rec.closed, rec.completed, rec.byNext)
		}
		decisionRecoveries = append(decisionRecoveries, rec)
	}
	for i, rec := range sendRecoveries {
		c := cutActs[i]
		t.Logf("cut send: %s %s activity %s attempt %d; from the replacement's start: timed out %s, the next attempt started %s, completed %s (by the replacement: %v), the run's next workflow task completed %s (workflow task timeouts before it: %v)",
			c.wfID, c.activityType, c.activityID, c.attempt, rec.timedOut.Round(time.Millisecond), rec.resumed.Round(time.Millisecond),
			rec.fromNext.Round(time.Millisecond), rec.byNext, rec.handled.Round(time.Millisecond), rec.waited)
	}
	for i, rec := range decisionRecoveries {
		t.Logf("cut decision: %s; from the replacement's start: the killed worker's workflow task timed out %s (%v), the task that decided started %s and completed %s (by the replacement: %v)",
			recoup.WorkflowID(invoices[i]), rec.timedOut.Round(time.Millisecond), rec.waited, rec.resumed.Round(time.Millisecond), rec.fromNext.Round(time.Millisecond), rec.byNext)
	}
	recoveryLine := kmoRecoveryLine(sendRecoveries, decisionRecoveries)
	t.Log(recoveryLine)
	if testing.Verbose() {
		fmt.Println(recoveryLine)
	}
	if err := final.terminate(45 * time.Second); err != nil {
		t.Errorf("worker on SIGTERM: %v", err)
	}

	// Exactly once: every step's message (checkSends), and every step's decision — one row
	// per step in PostgreSQL, one in the run's state, one marker in its history (a
	// decision the kill cut is made again, never recorded twice).
	s := r.checkSends(invoices, results, states, cuts)
	rows, err := r.h.Store.Pool().Query(ctx, `SELECT workflow_id, count(*), count(*) FILTER (WHERE decided_by = 'llm') FROM decisions GROUP BY workflow_id`)
	if err != nil {
		t.Fatal(err)
	}
	decisionRows, byModel := map[string]int{}, 0
	for rows.Next() {
		var wf string
		var n, llm int
		if err := rows.Scan(&wf, &n, &llm); err != nil {
			t.Fatal(err)
		}
		decisionRows[wf], byModel = n, byModel+llm
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	decisionDups := 0
	for _, inv := range invoices {
		wf := recoup.WorkflowID(inv)
		if decisionMarkers[wf] > 2 {
			decisionDups++
		}
		if n := decisionRows[wf]; n != 2 || decisionMarkers[wf] != 2 {
			t.Errorf("%s: %d decisions stored, %d recorded in the history; want 2 (one per step)", wf, n, decisionMarkers[wf])
		}
		if st, ok := states[inv]; ok && len(st.Decisions) != 2 {
			t.Errorf("%s: the run's state has %d decisions, want 2", wf, len(st.Decisions))
		}
	}
	if unknown > 0 {
		t.Errorf("%d model requests could not be matched to a run", unknown)
	}
	modelCalls := 0
	for _, n := range asked {
		modelCalls += n
	}

	line := fmt.Sprintf("kill-once: %d runs, 1 kill cutting %d decisions and %d sends (%s, %s); %d steps, %d duplicates, %d lost, %d reconcile left; %d decisions (%d by the model, %d model calls), %d recorded twice; events %s",
		kmoRuns, len(decisionRuns), len(cuts), s.perMode(cuts, kmsBeforeAccept), s.perMode(cuts, kmsAfterAccept),
		len(s.steps), s.duplicates, lost+s.lostSteps, s.reconcile, 2*kmoRuns, byModel, modelCalls, decisionDups, r.prov.events.summary())
	t.Log(line)
	if testing.Verbose() {
		fmt.Println(line)
	}
	t.Logf("total %s", time.Since(began).Round(time.Millisecond))
	if lost != 0 || !s.clean() || decisionDups != 0 {
		t.Error(line)
	}
}

// kmoRecoveryLine summarises, from the replacement's start, how the cut sends and decisions
// recovered.
func kmoRecoveryLine(sends, decisions []kmsRecovery) string {
	type dists struct {
		completed, timedOut, resumed, handled []time.Duration
		waited                                map[string]int // workflow task timeouts by type
	}
	collect := func(rs []kmsRecovery) dists {
		d := dists{waited: map[string]int{}}
		for _, r := range rs {
			if !r.closed {
				continue
			}
			d.completed, d.timedOut = append(d.completed, r.fromNext), append(d.timedOut, r.timedOut)
			d.resumed, d.handled = append(d.resumed, r.resumed), append(d.handled, r.handled)
			for _, w := range r.waited {
				d.waited[w]++
			}
		}
		return d
	}
	s, d := collect(sends), collect(decisions)
	return fmt.Sprintf("kill-once-recovery: from the replacement's start: "+
		"sends (%d cut) completed %s (the cut attempt timed out on its heartbeat %s; the next attempt started %s; the run's next workflow task completed %s after workflow task timeouts %v); "+
		"decisions (%d cut, local activities) recorded %s (the killed worker's workflow task timed out %s, timeouts %v; the task that decided started %s)",
		len(sends), kmsDistribution(s.completed), kmsDistribution(s.timedOut), kmsDistribution(s.resumed), kmsDistribution(s.handled), s.waited,
		len(decisions), kmsDistribution(d.completed), kmsDistribution(d.timedOut), d.waited, kmsDistribution(d.resumed))
}
