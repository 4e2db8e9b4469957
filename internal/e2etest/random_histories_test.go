package e2etest_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/events"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/model/spike"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// The end-to-end layer of the invariants (docs/INVARIANTS.md): random histories of billing
// events, sent at random moments through the real ingest path (some accepted and delivered
// at once, some only recorded and left to two relays delivering concurrently), to the real
// worker on a dev server, with PostgreSQL and a SendGrid fake that refuses some attempts
// with a 503. After every history has played out, each invariant is checked against what
// PostgreSQL recorded and what the provider accepted.
//
// E2E_HISTORIES (default 200) sets the number of histories, E2E_SEED the seed (printed on
// failure), E2E_PARALLEL how many play at once (default 16).
func TestRandomHistoriesThroughIngressKeepRunPromises(t *testing.T) {
	n := envInt(t, "E2E_HISTORIES", 200)
	parallel := envInt(t, "E2E_PARALLEL", 16)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("E2E_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("E2E_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("E2E_SEED=%d E2E_HISTORIES=%d", seed, n)

	// Steps of seconds: schedule 0, 2 s, 4 s; the run ends 3 s after its last step.
	schedule := []time.Duration{0, 2 * time.Second, 4 * time.Second}
	h := workertest.Start(t, workertest.Options{Schedule: schedule, FinalWait: 3 * time.Second})
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var refuseMu sync.Mutex
	h.Mail.Respond(func(fakes.Request) fakes.Response { // a fifth of the attempts: the provider is unavailable
		refuseMu.Lock()
		defer refuseMu.Unlock()
		if rng.IntN(5) == 0 {
			return fakes.Response{Status: http.StatusServiceUnavailable}
		}
		return fakes.Response{}
	})

	histories := make([]*history, n)
	for i := range histories {
		histories[i] = generate(rand.New(rand.NewPCG(seed, uint64(i))), i)
	}

	// Two relays deliver what ingress only recorded, concurrently (as two serve or consume
	// processes would).
	ctx, stop := context.WithCancel(context.Background())
	var relays sync.WaitGroup
	for range 2 {
		relays.Add(1)
		relay := &eventlog.Ingestor{Store: h.Store, Temporal: h.Client, Parallel: 2}
		go func() {
			defer relays.Done()
			for ctx.Err() == nil {
				if n, _ := relay.DeliverPending(ctx, 50, nil); n == 0 {
					select { // poll interval of an idle relay, as in `starter serve`
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		}()
	}
	defer func() { stop(); relays.Wait() }()

	// The histories' failures arrive in a burst the new detector has no baseline for, so a
	// failure-spike incident may open and hold runs (I10). An operator on duty releases
	// each one, as support would with `starter incidents release`; the held runs go on.
	released := map[string]bool{}
	operatorDone := make(chan struct{})
	go func() {
		defer close(operatorDone)
		for ctx.Err() == nil {
			releaseIncidents(t, h, released)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	defer func() { stop(); <-operatorDone }()

	p := &player{h: h}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, x := range histories {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			p.play(x)
		}()
	}
	wg.Wait()
	for _, v := range p.violations {
		t.Error(v)
	}

	h.Eventually("every recorded event delivered, parked or judged", func() bool {
		return scalar(t, h, `SELECT count(*) FROM events WHERE delivered_at IS NULL AND parked_at IS NULL`) == 0
	})
	if !within(3*time.Minute, func() bool {
		return scalar(t, h, `SELECT count(*) FROM invoice_runs WHERE status = 'open'`) == 0
	}) {
		rows, err := h.Store.Pool().Query(context.Background(), `SELECT invoice_id FROM invoice_runs WHERE status = 'open'`)
		if err != nil {
			t.Fatal(err)
		}
		open, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, inv := range open {
			if x := byInvoice(histories, inv); x != nil {
				t.Errorf("run of %s still open: history %d: %s\n%s", inv, x.i, x.describe(), recorded(t, h, x))
				dumpRun(t, h, inv)
			}
		}
		t.Fatalf("%d runs did not close; replay with E2E_SEED=%d E2E_HISTORIES=%d", len(open), seed, n)
	}
	results := runResults(t, h)
	check(t, h, histories, results, len(schedule))
	if t.Failed() {
		t.Logf("replay with E2E_SEED=%d E2E_HISTORIES=%d", seed, n)
		for _, x := range histories {
			if x.failed {
				t.Logf("history %d: %s\n%s", x.i, x.describe(), recorded(t, h, x))
			}
		}
	}
	coverage(t, histories, results)
	stop()
	<-operatorDone
	t.Logf("incidents released by the operator: %d", len(released))
}

// releaseIncidents releases every holding incident not released yet through the detector's
// incident-action Update.
func releaseIncidents(t testing.TB, h *workertest.Harness, released map[string]bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	incs, _, err := h.Store.Incidents(ctx, false, 100)
	if err != nil {
		t.Logf("list incidents: %v (tried again)", err)
		return
	}
	for _, inc := range incs {
		if released[inc.ID] || !spike.Holding(inc.Status) {
			continue
		}
		u, err := h.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID: recoup.DetectorWorkflowID, UpdateName: recoup.UpdateIncident,
			WaitForStage: client.WorkflowUpdateStageCompleted,
			Args:         []any{recoup.IncidentAction{IncidentID: inc.ID, Action: "release", By: "e2e-operator"}},
		})
		if err == nil {
			err = u.Get(ctx, nil)
		}
		if err != nil {
			t.Logf("release incident %s: %v (tried again)", inc.ID, err)
			continue
		}
		released[inc.ID] = true
	}
}

// recorded is what PostgreSQL holds of a history's invoices: events with their delivery,
// runs and sends.
func recorded(t *testing.T, h *workertest.Harness, x *history) string {
	t.Helper()
	var b strings.Builder
	q := func(sql string) {
		rows, err := h.Store.Pool().Query(context.Background(), sql, []string{x.invoice, x.invoice2})
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "  %v\n", vals)
		}
	}
	b.WriteString(" events (id, type, occurred_at, received_at, episode, delivery):\n")
	q(`SELECT event_id, type, occurred_at, received_at, episode, delivery_note FROM events WHERE invoice_id = ANY($1) ORDER BY received_at`)
	b.WriteString(" runs (key, created, opened_at, closed_at, note):\n")
	q(`SELECT run_key, created_at, opened_at, closed_at, close_note FROM invoice_runs WHERE invoice_id = ANY($1) ORDER BY episode`)
	b.WriteString(" sends (key, status, created_at):\n")
	q(`SELECT idempotency_key, status, created_at FROM sends WHERE invoice_id = ANY($1) ORDER BY created_at`)
	return b.String()
}

// settledBeforeDelivery reports whether the failure was judged settled when a relay came to
// deliver it: a settle of the invoice was recorded before it was delivered (an undelivered
// failure never starts a run once the invoice is paid, I9).
func settledBeforeDelivery(t *testing.T, h *workertest.Harness, failure string) bool {
	t.Helper()
	return scalar(t, h, `
		SELECT count(*) FROM events f JOIN events s ON f.delivery_note = 'the invoice was already settled by event ' || s.event_id || '; no dunning started'
		WHERE f.event_id = $1 AND s.invoice_id = f.invoice_id AND s.received_at < f.delivered_at
			AND s.type IN ('payment.recovered', 'payment.retry_succeeded', 'payment.succeeded', 'dunning.cancel')`, failure) == 1
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

// An action is one event of a history, sent at its offset from the history's start.
type action struct {
	at   time.Duration
	typ  string
	skew time.Duration // occurred_at = the moment it is sent + skew
	// relayed: only recorded by ingress, delivered by a relay; otherwise accepted and
	// delivered at once.
	relayed bool
	dup     bool // sent twice, the same body: the second must be a duplicate
	channel string
	withCus bool // an opt-out naming its customer (otherwise the invoice's is used)
	invalid bool // a payload the event schema refuses
	second  bool // for the customer's second invoice
	id      string
}

type history struct {
	i                 int
	invoice, invoice2 string
	customer          string
	actions           []action
	refail            bool // a failure after the first run ended opens a second run
	settledFirst      bool // the invoice is settled before its failure arrives: no run
	failed            bool // a check failed for this history
}

var otherTypes = []string{
	recoup.EventRetryFailed, recoup.EventRetryFailed, recoup.EventPause, recoup.EventResume,
	recoup.EventOptOut, recoup.EventRecovered, recoup.EventRetrySucceeded, recoup.EventCancel, recoup.EventPaymentSucceeded,
}

func skew(r *rand.Rand) time.Duration {
	switch r.IntN(6) {
	case 0:
		return -time.Duration(r.Int64N(int64(48 * time.Hour))) // an old value date
	case 1:
		return time.Duration(r.Int64N(int64(4 * time.Minute))) // a clock a little ahead
	case 2:
		return time.Hour + time.Duration(r.Int64N(int64(30*24*time.Hour))) // far future: clamped
	default:
		return 0
	}
}

func generate(r *rand.Rand, i int) *history {
	x := &history{i: i, invoice: fmt.Sprintf("inv_rh%d", i), customer: fmt.Sprintf("cus_rh%d", i)}
	id := 0
	add := func(a action) {
		id++
		a.id = fmt.Sprintf("evt_rh%d_%d", i, id)
		a.relayed = a.relayed || r.IntN(2) == 0
		a.dup = a.dup || r.IntN(8) == 0
		x.actions = append(x.actions, a)
	}
	if r.IntN(10) == 0 {
		// Settled before the failure reaches Recoup (a payment that went through at once,
		// or billing's hosts out of order): no run may start.
		x.settledFirst = true
		add(action{typ: []string{recoup.EventRecovered, recoup.EventRetrySucceeded, recoup.EventCancel, recoup.EventPaymentSucceeded}[r.IntN(4)], skew: skew(r)})
		add(action{at: time.Duration(r.Int64N(int64(time.Second))), typ: recoup.EventPaymentFailed, skew: -time.Hour})
		return x
	}
	add(action{typ: recoup.EventPaymentFailed, skew: skew(r)})
	paused := false // any pause at all
	for range r.IntN(7) {
		a := action{at: time.Duration(r.Int64N(int64(7 * time.Second))), typ: otherTypes[r.IntN(len(otherTypes))], skew: skew(r)}
		switch a.typ {
		case recoup.EventOptOut:
			a.channel = []string{"email", "sms"}[r.IntN(2)]
			a.withCus = r.IntN(2) == 0
			a.skew = 0 // newest statement wins: an opt-out is as new as its sending
		case recoup.EventPause:
			paused = true
		}
		if r.IntN(12) == 0 {
			a.invalid = true
		}
		add(a)
	}
	if paused {
		// Support resumes it in the end, so that the run ends: dated after every pause
		// (pauses and resumes apply in the order of their dates; a far-future date is
		// clamped to received + the allowed skew, later than any pause's).
		add(action{at: 8 * time.Second, typ: recoup.EventResume, skew: time.Hour})
	}
	if r.IntN(6) == 0 {
		// The same customer's next invoice fails meanwhile: consent carries over.
		x.invoice2 = x.invoice + "b"
		add(action{at: time.Duration(r.Int64N(int64(9 * time.Second))), typ: recoup.EventPaymentFailed, second: true})
	}
	x.refail = r.IntN(5) == 0
	return x
}

func (x *history) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invoice %s customer %s", x.invoice, x.customer)
	if x.refail {
		b.WriteString(" refail")
	}
	for _, a := range x.actions {
		fmt.Fprintf(&b, "\n  +%v %s %s skew %v relayed %v dup %v", a.at.Round(time.Millisecond), a.id, a.typ, a.skew, a.relayed, a.dup)
		if a.channel != "" {
			fmt.Fprintf(&b, " channel %s (names customer: %v)", a.channel, a.withCus)
		}
		if a.invalid {
			b.WriteString(" INVALID")
		}
		if a.second {
			b.WriteString(" (second invoice)")
		}
	}
	return b.String()
}

// event is the event's JSON as sent at now.
func (x *history) event(a action, now time.Time) map[string]any {
	invoice := x.invoice
	if a.second {
		invoice = x.invoice2
	}
	at := now.Add(a.skew).UTC().Format(time.RFC3339Nano)
	switch a.typ {
	case recoup.EventPaymentFailed:
		ev := workertest.Failed(a.id, invoice, x.customer, now.Add(a.skew))
		if a.second || strings.HasSuffix(a.id, "_refail") {
			// A later snapshot does not restate consent (an opt-out in between stands).
			c := ev["customer"].(map[string]any)
			delete(c, "email_consent")
			delete(c, "sms_consent")
		}
		return ev
	case recoup.EventRetryFailed, recoup.EventRetrySucceeded:
		return map[string]any{"type": a.typ, "event_id": a.id, "invoice_id": invoice, "attempt_id": "att_" + a.id,
			"failure_code": "card_declined", "occurred_at": at}
	case recoup.EventOptOut:
		ev := map[string]any{"type": a.typ, "event_id": a.id, "invoice_id": invoice, "channel": a.channel, "occurred_at": at}
		if a.withCus {
			ev["customer_id"] = x.customer
		}
		if a.invalid {
			ev["channel"] = "fax"
		}
		return ev
	default:
		return map[string]any{"type": a.typ, "event_id": a.id, "invoice_id": invoice, "occurred_at": at}
	}
}

// body is the event's JSON as sent at now, invalid where the action says so.
func (x *history) body(a action, now time.Time) map[string]any {
	ev := x.event(a, now)
	if a.invalid && a.typ != recoup.EventOptOut {
		ev["occurred_at"] = "yesterday"
	}
	return ev
}

type player struct {
	h          *workertest.Harness
	mu         sync.Mutex
	violations []string
}

func (p *player) violation(x *history, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	x.failed = true
	p.violations = append(p.violations, fmt.Sprintf("history %d (%s): ", x.i, x.invoice)+fmt.Sprintf(format, args...))
}

// send sends one event through ingress: recorded only (relayed) or accepted.
func (p *player) send(x *history, a action, raw []byte) (eventlog.Result, error) {
	ctx := context.Background()
	if a.relayed {
		res, _, err := p.h.Ingest.Record(ctx, raw, "random-histories")
		return res, err
	}
	return p.h.Ingest.Accept(ctx, raw, "random-histories")
}

func (p *player) play(x *history) {
	start := time.Now()
	for _, a := range sortedByTime(x.actions) {
		if d := time.Until(start.Add(a.at)); d > 0 {
			time.Sleep(d) // the history's own timing, not synchronisation
		}
		raw, _ := json.Marshal(x.body(a, time.Now()))
		_, err := p.send(x, a, raw)
		var verr *events.ValidationError
		switch {
		case a.invalid && !errors.As(err, &verr):
			p.violation(x, "invalid event %s: got %v, want a validation error", a.id, err)
			continue
		case a.invalid:
			continue
		case err != nil && !recordedOnly(err):
			p.violation(x, "event %s refused: %v", a.id, err)
			continue
		}
		if a.dup {
			again, err := p.send(x, a, raw)
			if err != nil && !recordedOnly(err) {
				p.violation(x, "the same event %s again: %v", a.id, err)
			} else if !again.Duplicate {
				p.violation(x, "the same event %s again was not reported as a duplicate: %+v", a.id, again)
			}
		}
	}
	if !x.refail || x.settledFirst {
		return
	}
	// Once the first run has ended, a new failure of the invoice opens its second run.
	if err := p.waitClosed(x.invoice, 1); err != nil {
		p.violation(x, "%v", err)
		return
	}
	a := action{id: fmt.Sprintf("evt_rh%d_refail", x.i), typ: recoup.EventPaymentFailed}
	raw, _ := json.Marshal(x.body(a, time.Now()))
	if _, err := p.h.Ingest.Accept(context.Background(), raw, "random-histories"); err != nil && !recordedOnly(err) {
		p.violation(x, "refail: %v", err)
	}
	x.actions = append(x.actions, a)
}

// recordedOnly: the event was recorded, and its delivery is left to the relay (e.g. the
// invoice's previous run is still finishing).
func recordedOnly(err error) bool {
	return strings.Contains(err.Error(), "recorded but not delivered yet")
}

// waitClosed waits until the invoice has a closed run numbered episode (or a run was never
// opened for it: a settled invoice).
func (p *player) waitClosed(invoice string, episode int) error {
	var err error
	if within(3*time.Minute, func() bool {
		var open, closed, pending int
		err = p.h.Store.Pool().QueryRow(context.Background(), `
			SELECT (SELECT count(*) FILTER (WHERE status = 'open') FROM invoice_runs WHERE invoice_id = $1),
				(SELECT count(*) FILTER (WHERE status = 'closed' AND episode = $2) FROM invoice_runs WHERE invoice_id = $1),
				(SELECT count(*) FROM events WHERE invoice_id = $1 AND type = 'payment.failed' AND delivered_at IS NULL)`,
			invoice, episode).Scan(&open, &closed, &pending)
		// closed, or its failure was judged without opening a run
		return err != nil || (open == 0 && (closed > 0 || pending == 0))
	}) {
		return err
	}
	return fmt.Errorf("run %d of %s did not close", episode, invoice)
}

// within polls cond until it holds or d has passed (a bound on a hang, not a speed
// assertion: generous, so that a loaded CI machine never reaches it).
func within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

func byInvoice(histories []*history, invoice string) *history {
	for _, x := range histories {
		if x.invoice == invoice || x.invoice2 == invoice {
			return x
		}
	}
	return nil
}

func sortedByTime(as []action) []action {
	out := slices.Clone(as)
	slices.SortStableFunc(out, func(a, b action) int { return cmp.Compare(a.at, b.at) })
	return out
}

func scalar(t *testing.T, h *workertest.Harness, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := h.Store.Pool().QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// runResult is a run of the test's invoices as Temporal and PostgreSQL record it.
type runResult struct {
	invoice, runKey, runID string
	episode                int
	status                 recoup.Status
	err                    error
	outcome                string
}

// runResults waits for every run any history started and reads its result.
func runResults(t *testing.T, h *workertest.Harness) []runResult {
	t.Helper()
	rows, err := h.Store.Pool().Query(context.Background(), `
		SELECT r.invoice_id, r.run_key, COALESCE(r.run_id, ''), r.episode, COALESCE(d.outcome, '')
		FROM invoice_runs r LEFT JOIN dunning_runs d ON d.workflow_id = r.run_key ORDER BY r.invoice_id, r.episode`)
	if err != nil {
		t.Fatal(err)
	}
	var out []runResult
	for rows.Next() {
		var r runResult
		if err := rows.Scan(&r.invoice, &r.runKey, &r.runID, &r.episode, &r.outcome); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for i := range out {
		r := &out[i]
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var res recoup.DunningResult
		var run client.WorkflowRun = h.Client.GetWorkflow(ctx, recoup.WorkflowID(r.invoice), r.runID)
		r.err = run.Get(ctx, &res)
		r.status = res.Status
		cancel()
	}
	return out
}

type sendRow struct {
	key, runKey, invoice, customer, channel, status string
	step                                            int
	createdAt                                       time.Time
}

func check(t *testing.T, h *workertest.Harness, histories []*history, results []runResult, steps int) {
	t.Helper()
	ctx := context.Background()
	byInvoice := map[string]*history{}
	for _, x := range histories {
		byInvoice[x.invoice] = x
		if x.invoice2 != "" {
			byInvoice[x.invoice2] = x
		}
	}
	fail := func(invoice, format string, args ...any) {
		t.Helper()
		if x := byInvoice[invoice]; x != nil {
			x.failed = true
		}
		t.Errorf("%s: "+format, append([]any{invoice}, args...)...)
	}

	// I5 / I7: every run ends with an outcome — never failed, never stuck — and billing's
	// record (dunning_runs) agrees with Temporal's.
	runsOf := map[string]int{}
	for _, r := range results {
		runsOf[r.invoice]++
		switch {
		case r.err != nil:
			fail(r.invoice, "run %s ended with an error: %v", r.runKey, r.err)
		case r.status != recoup.StatusRecovered && r.status != recoup.StatusExhausted && r.status != recoup.StatusCanceled:
			fail(r.invoice, "run %s ended %q", r.runKey, r.status)
		case string(r.status) != r.outcome:
			fail(r.invoice, "run %s ended %q but PostgreSQL records %q", r.runKey, r.status, r.outcome)
		}
	}
	// I9: a settle recorded before the failure starts no run; every other history runs, and
	// a refail opens exactly a second run.
	for _, x := range histories {
		want := 1
		switch {
		case x.settledFirst || settledBeforeDelivery(t, h, x.actions[0].id):
			want = 0
		case x.refail && scalar(t, h, `
			SELECT count(*) FROM events s JOIN invoice_runs r ON r.invoice_id = s.invoice_id AND r.episode = 1
			WHERE s.invoice_id = $1 AND s.occurred_at > r.closed_at
				AND s.type IN ('payment.recovered', 'payment.retry_succeeded', 'payment.succeeded', 'dunning.cancel')`, x.invoice) == 0:
			// A failure after the first run ended opens a second run, unless a settle dated
			// after that run ended says the invoice was paid meanwhile.
			want = 2
		}
		if runsOf[x.invoice] != want {
			fail(x.invoice, "%d runs, want %d", runsOf[x.invoice], want)
		}
		if x.invoice2 != "" && runsOf[x.invoice2] != 1 {
			fail(x.invoice2, "%d runs, want 1", runsOf[x.invoice2])
		}
	}

	rows, err := h.Store.Pool().Query(ctx, `
		SELECT idempotency_key, workflow_id, invoice_id, customer_id, channel, status, step, created_at FROM sends`)
	if err != nil {
		t.Fatal(err)
	}
	var sends []sendRow
	for rows.Next() {
		var s sendRow
		if err := rows.Scan(&s.key, &s.runKey, &s.invoice, &s.customer, &s.channel, &s.status, &s.step, &s.createdAt); err != nil {
			t.Fatal(err)
		}
		sends = append(sends, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	// I4: at most one message per run step, each accepted by the provider at most once, none
	// before its step's time.
	mail := h.Mail.AcceptedKeys()
	for key, n := range mail {
		if n > 1 {
			fail(strings.TrimPrefix(strings.SplitN(key, "/", 2)[0], "dunning-"), "the provider accepted %s %d times", key, n)
		}
	}
	perRun := map[string]int{}
	for _, s := range sends {
		perRun[s.runKey]++
		if s.status == "sent" && s.channel == "email" && mail[s.key] != 1 {
			fail(s.invoice, "send %s is recorded sent but the provider accepted it %d times", s.key, mail[s.key])
		}
		if s.status == "reserved" || s.status == "reconcile" {
			fail(s.invoice, "send %s left %s", s.key, s.status)
		}
	}
	for run, n := range perRun {
		if n > steps {
			fail(run, "%d sends, more than the schedule's %d steps", n, steps)
		}
	}
	early, err := h.Store.Pool().Query(ctx, `
		SELECT s.invoice_id, s.idempotency_key FROM sends s JOIN dunning_runs d ON d.workflow_id = s.workflow_id
		WHERE s.created_at < d.started_at + make_interval(secs => 2 * (s.step - 1))`)
	if err != nil {
		t.Fatal(err)
	}
	for early.Next() {
		var inv, key string
		if err := early.Scan(&inv, &key); err != nil {
			t.Fatal(err)
		}
		fail(inv, "send %s before its step's time", key)
	}
	early.Close()

	// I1: once ingress has recorded a settle (recovered, retry succeeded, cancel), whatever
	// its value date and whether or not it has reached the run, no message of the run is
	// claimed for sending (claimed_at: the first attempt's, or a retry's after a 503).
	after, err := h.Store.Pool().Query(ctx, `
		SELECT s.invoice_id, s.idempotency_key, e.event_id, e.type FROM sends s
		JOIN invoice_runs r ON r.run_key = s.workflow_id
		JOIN events e ON e.invoice_id = r.invoice_id AND e.received_at >= r.created_at
			AND e.type IN ('payment.recovered', 'payment.retry_succeeded', 'payment.succeeded', 'dunning.cancel')
		WHERE s.claimed_at > e.received_at AND s.status IN ('sent', 'logged')`)
	if err != nil {
		t.Fatal(err)
	}
	for after.Next() {
		var inv, key, ev, typ string
		if err := after.Scan(&inv, &key, &ev, &typ); err != nil {
			t.Fatal(err)
		}
		fail(inv, "send %s claimed after %s %s was recorded", key, typ, ev)
	}
	after.Close()
	// Nor does billing hear "exhausted" for a run whose invoice it reported settled before
	// the run ended.
	exhausted, err := h.Store.Pool().Query(ctx, `
		SELECT r.invoice_id, r.run_key, e.event_id FROM invoice_runs r
		JOIN dunning_runs d ON d.workflow_id = r.run_key AND d.outcome = 'exhausted'
		JOIN events e ON e.invoice_id = r.invoice_id AND e.received_at >= r.created_at AND e.received_at < r.closed_at
			AND e.type IN ('payment.recovered', 'payment.retry_succeeded', 'payment.succeeded', 'dunning.cancel')`)
	if err != nil {
		t.Fatal(err)
	}
	for exhausted.Next() {
		var inv, run, ev string
		if err := exhausted.Scan(&inv, &run, &ev); err != nil {
			t.Fatal(err)
		}
		fail(inv, "run %s ended exhausted although %s settled the invoice before it ended", run, ev)
	}
	exhausted.Close()

	// I2: once an opt-out is in force for the customer, no message on that channel is
	// claimed, for this invoice or the customer's next.
	optedOut, err := h.Store.Pool().Query(ctx, `
		SELECT s.invoice_id, s.idempotency_key, l.evidence_event_id FROM sends s
		JOIN consent_ledger l ON l.customer_id = s.customer_id AND l.channel = s.channel AND NOT l.consent AND l.applied
		WHERE s.claimed_at > l.recorded_at AND s.status IN ('sent', 'logged')`)
	if err != nil {
		t.Fatal(err)
	}
	for optedOut.Next() {
		var inv, key, ev string
		if err := optedOut.Scan(&inv, &key, &ev); err != nil {
			t.Fatal(err)
		}
		fail(inv, "send %s claimed after opt-out %s", key, ev)
	}
	optedOut.Close()

	// I8: the second run of an invoice is a real run: its own keys, its own first message
	// unless it was barred.
	for _, r := range results {
		if r.episode > 1 && !strings.Contains(r.runKey, "#") {
			fail(r.invoice, "run %d has the key %s of a first run", r.episode, r.runKey)
		}
	}
}

func coverage(t *testing.T, histories []*history, results []runResult) {
	count := map[string]int{}
	for _, x := range histories {
		kinds := map[string]bool{}
		for _, a := range x.actions {
			kinds[a.typ] = true
			if a.relayed {
				kinds["relayed"] = true
			}
			if a.dup {
				kinds["duplicate"] = true
			}
			if a.invalid {
				kinds["invalid"] = true
			}
			if a.skew < 0 {
				kinds["old value date"] = true
			}
			if a.skew > 5*time.Minute {
				kinds["future beyond skew (clamped)"] = true
			}
		}
		if x.settledFirst {
			kinds["settled before failure"] = true
		}
		if x.refail {
			kinds["second run of the invoice"] = true
		}
		if x.invoice2 != "" {
			kinds["customer's next invoice"] = true
		}
		for k := range kinds {
			count[k]++
		}
	}
	outcomes := map[recoup.Status]int{}
	for _, r := range results {
		outcomes[r.status]++
	}
	var parts []string
	for k, n := range count {
		parts = append(parts, fmt.Sprintf("%s=%d", k, n))
	}
	slices.Sort(parts)
	t.Logf("e2e-coverage: %d histories; %s", len(histories), strings.Join(parts, " "))
	t.Logf("e2e-outcomes: recovered=%d exhausted=%d canceled=%d", outcomes[recoup.StatusRecovered], outcomes[recoup.StatusExhausted], outcomes[recoup.StatusCanceled])
}

// dumpRun logs the open run's state and history events (debugging a stuck run).
func dumpRun(t *testing.T, h *workertest.Harness, invoice string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wfID := recoup.WorkflowID(invoice)
	if v, err := h.Client.QueryWorkflow(ctx, wfID, "", recoup.QueryStatus); err == nil {
		var st recoup.State
		_ = v.Get(&st)
		b, _ := json.MarshalIndent(st, "", " ")
		t.Logf("state of %s: %s", wfID, b)
	} else {
		t.Logf("query %s: %v", wfID, err)
	}
	if d, err := h.Client.DescribeWorkflowExecution(ctx, wfID, ""); err == nil {
		t.Logf("describe %s: status %v pending activities %v pending workflow task %v", wfID, d.WorkflowExecutionInfo.Status, d.PendingActivities, d.PendingWorkflowTask)
	}
	it := h.Client.GetWorkflowHistory(ctx, wfID, "", false, 0)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Logf("history: %v", err)
			return
		}
		t.Logf("  %d %s %s %v", e.EventId, e.EventTime.AsTime().Format("15:04:05.000"), e.EventType, e.Attributes)
	}
}
