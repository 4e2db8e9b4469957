package eventlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/model/spike"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// call is one dunning call a fake Temporal received.
type call struct {
	Kind       string // start (SignalWithStart) or signal
	WorkflowID string
	Signal     string
	EventID    string
	OccurredAt time.Time
	Input      recoup.DunningInput
	Opts       client.StartWorkflowOptions
	RunID      string
	Arg        any // the signal's payload
}

func (c call) String() string { return c.Kind + " " + c.Signal + " " + c.EventID }

// fakeTemporal models the workflow executions of dunning runs: SignalWithStart starts one or
// joins the running one, Signal reaches only a running one. onStart, when set, runs inside
// SignalWithStart before it answers (once), as if the call were slow.
type fakeTemporal struct {
	client.Client
	mu      sync.Mutex
	calls   []call
	running map[string]string // workflow id -> run id
	runs    int
	onStart func(call)
	down    error // when set, SignalWorkflow fails with it (Temporal unreachable)
	// detector holds the record batches signalled to the spike detector; detectorDown,
	// when set, fails the next such signal (once).
	detector     [][]spike.Record
	detectorDown error
}

// recordIn records an event from a goroutine other than the test's.
func recordIn(t *testing.T, in *eventlog.Ingestor, raw []byte) {
	if _, _, err := in.Record(context.Background(), raw, "test"); err != nil {
		t.Errorf("Record: %v", err)
	}
}

type fakeRun struct {
	client.WorkflowRun
	id, runID string
}

func (r fakeRun) GetID() string    { return r.id }
func (r fakeRun) GetRunID() string { return r.runID }

func newFake() *fakeTemporal { return &fakeTemporal{running: map[string]string{}} }

func describe(arg any) (eventID string, at time.Time) {
	switch v := arg.(type) {
	case recoup.PaymentFailed:
		return v.EventID, v.OccurredAt
	case recoup.RetryResult:
		return v.EventID, v.OccurredAt
	case recoup.Recovered:
		return v.EventID, v.OccurredAt
	case recoup.Cancel:
		return v.EventID, v.OccurredAt
	case recoup.Pause:
		return v.EventID, v.OccurredAt
	case recoup.Resume:
		return v.EventID, v.OccurredAt
	case recoup.OptOut:
		return v.EventID, v.OccurredAt
	case recoup.Reply:
		return v.EventID, v.ReceivedAt
	case recoup.PaymentMethodUpdated:
		return v.EventID, v.OccurredAt
	}
	panic(fmt.Sprintf("unexpected signal payload %T", arg))
}

func (f *fakeTemporal) SignalWithStartWorkflow(_ context.Context, id, signal string, arg any, opts client.StartWorkflowOptions,
	_ any, args ...any) (client.WorkflowRun, error) {
	if id == recoup.DetectorWorkflowID {
		f.mu.Lock()
		defer f.mu.Unlock()
		if err := f.detectorDown; err != nil {
			f.detectorDown = nil
			return nil, err
		}
		f.detector = append(f.detector, arg.([]spike.Record))
		return fakeRun{id: id, runID: "detector"}, nil
	}
	c := call{Kind: "start", WorkflowID: id, Signal: signal, Opts: opts, Input: args[0].(recoup.DunningInput)}
	c.EventID, c.OccurredAt = describe(arg)
	f.mu.Lock()
	hook := f.onStart
	f.onStart = nil // once
	f.mu.Unlock()
	if hook != nil {
		hook(c)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	runID, ok := f.running[id]
	if !ok {
		f.runs++
		runID = fmt.Sprintf("run-%d", f.runs)
		f.running[id] = runID
	}
	c.RunID = runID
	f.calls = append(f.calls, c)
	return fakeRun{id: id, runID: runID}, nil
}

func (f *fakeTemporal) SignalWorkflow(_ context.Context, id, runID, signal string, arg any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down != nil {
		return f.down
	}
	running, ok := f.running[id]
	if !ok || (runID != "" && runID != running) {
		return serviceerror.NewNotFound("workflow execution not found or already completed")
	}
	c := call{Kind: "signal", WorkflowID: id, Signal: signal, RunID: running, Arg: arg}
	c.EventID, c.OccurredAt = describe(arg)
	f.calls = append(f.calls, c)
	return nil
}

// end ends the invoice's run, as Temporal would see it.
func (f *fakeTemporal) end(invoice string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.running, recoup.WorkflowID(invoice))
}

func (f *fakeTemporal) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.calls))
	for i, c := range f.calls {
		out[i] = c.String()
	}
	return out
}

func (f *fakeTemporal) call(i int) call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[i]
}

// secondProcess opens another pool on the test's schema: a relay of another process.
func secondProcess(t *testing.T, st *postgres.Store) *postgres.Store {
	t.Helper()
	var schema string
	if err := st.Pool().QueryRow(context.Background(), `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	other, err := postgres.Open(context.Background(), fakes.DatabaseURL(), postgres.Options{Schema: schema, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	return other
}

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

func ev(typ, id, invoice string, at time.Time, extra ...string) []byte {
	m := map[string]any{"type": typ, "event_id": id, "invoice_id": invoice, "occurred_at": at.Format(time.RFC3339Nano)}
	switch typ {
	case recoup.EventPaymentFailed:
		m["customer_id"], m["amount_minor"], m["currency"] = "cus_1", 4900, "USD"
		m["customer"] = map[string]any{"email": "ada@example.com", "phone": "+14155552671", "email_consent": true, "sms_consent": true}
	case "dunning.opt_out":
		m["channel"] = "sms"
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	b, _ := json.Marshal(m)
	return b
}

func mustRecord(t *testing.T, in *eventlog.Ingestor, raw []byte) eventlog.Result {
	t.Helper()
	res, _, err := in.Record(context.Background(), raw, "test")
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	return res
}

func deliver(t *testing.T, in *eventlog.Ingestor) int {
	t.Helper()
	n, err := in.DeliverPending(context.Background(), 100, nil)
	if err != nil {
		t.Fatalf("DeliverPending: %v", err)
	}
	return n
}

// Two relays (two processes) deliver one invoice's events in the log's order: while one is
// inside the slow start of the run, the other does not touch the invoice, and the events
// recorded meanwhile reach the run after the start.
func TestTwoRelaysDeliverAnInvoicesEventsInOrder(t *testing.T) {
	st := fakes.MustStore(t)
	fake := newFake()
	a := &eventlog.Ingestor{Store: st, Temporal: fake}
	b := &eventlog.Ingestor{Store: secondProcess(t, st), Temporal: fake}
	mustRecord(t, a, ev(recoup.EventPaymentFailed, "evt_f", "inv_1", t0))
	bDelivered := -1
	fake.onStart = func(call) {
		recordIn(t, b, ev("dunning.pause", "evt_p", "inv_1", t0.Add(time.Minute), "reason", "disputed"))
		recordIn(t, b, ev("dunning.resume", "evt_r", "inv_1", t0.Add(2*time.Minute)))
		// Relay b runs while relay a is inside the start.
		n, err := b.DeliverPending(context.Background(), 100, nil)
		if err != nil {
			t.Error(err)
		}
		bDelivered = n
	}
	if n := deliver(t, a); n != 3 {
		t.Errorf("relay a delivered %d events, want 3", n)
	}
	if bDelivered != 0 {
		t.Errorf("relay b delivered %d events of an invoice relay a was delivering", bDelivered)
	}
	want := []string{"start payment-failed evt_f", "signal pause evt_p", "signal resume evt_r"}
	if got := fake.got(); !slices.Equal(got, want) {
		t.Errorf("Temporal got %q, want %q", got, want)
	}
	if n := deliver(t, b); n != 0 || len(fake.got()) != 3 {
		t.Errorf("a later round delivered %d more", n)
	}
}

// A settlement recorded while a relay is starting the invoice's run (after it decided to
// start) reaches the run right after the start, whichever relay looks at it; one recorded
// before the decision prevents the start.
func TestSettlementNeverMissesTheRunItSettles(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	fake := newFake()
	a := &eventlog.Ingestor{Store: st, Temporal: fake}
	b := &eventlog.Ingestor{Store: secondProcess(t, st), Temporal: fake}
	mustRecord(t, a, ev(recoup.EventPaymentFailed, "evt_f", "inv_1", t0))
	fake.onStart = func(call) {
		recordIn(t, b, ev(recoup.EventRecovered, "evt_paid", "inv_1", t0.Add(time.Minute)))
		if _, err := b.DeliverPending(context.Background(), 100, nil); err != nil {
			t.Error(err)
		}
	}
	deliver(t, a)
	want := []string{"start payment-failed evt_f", "signal recovered evt_paid"}
	if got := fake.got(); !slices.Equal(got, want) {
		t.Fatalf("Temporal got %q, want %q", got, want)
	}

	// Settled first: whichever of two relays running at once delivers the failure, no run.
	for i := range 10 {
		inv := fmt.Sprintf("inv_s%d", i)
		mustRecord(t, a, ev(recoup.EventPaymentFailed, "evt_f_"+inv, inv, t0))
		mustRecord(t, a, ev(recoup.EventCancel, "evt_c_"+inv, inv, t0.Add(time.Minute)))
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, in := range []*eventlog.Ingestor{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := in.DeliverPending(ctx, 100, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	for {
		if n := deliver(t, a); n == 0 {
			break
		}
	}
	if got := fake.got(); len(got) != 2 {
		t.Errorf("Temporal got %q; want no run for the settled invoices", got[2:])
	}
	d, err := st.EventDelivery(ctx, "evt_f_inv_s3")
	if err != nil {
		t.Fatal(err)
	}
	if !d.Delivered || !strings.Contains(d.Note, "settled by event evt_c_inv_s3") {
		t.Errorf("settled failure: %+v", d)
	}
}

// A pause and an opt-out that arrive before the invoice has a run wait for it and reach it
// right after it starts, in order; the opt-out is on the customer at once.
func TestEventsBeforeTheRunWaitForIt(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	fake := newFake()
	in := &eventlog.Ingestor{Store: st, Temporal: fake}
	// The customer is known from an earlier invoice.
	if _, err := in.Accept(ctx, ev(recoup.EventPaymentFailed, "evt_old", "inv_0", t0.Add(-30*24*time.Hour)), "test"); err != nil {
		t.Fatal(err)
	}
	fake.end("inv_0")
	fake.calls = nil

	res, err := in.Accept(ctx, ev("dunning.pause", "evt_p", "inv_1", t0.Add(-2*time.Minute), "reason", "disputed"), "test")
	if err != nil || res.Delivered || !res.Parked || !strings.Contains(res.Note, "no dunning run") {
		t.Fatalf("pause before the run: %+v, %v; want parked", res, err)
	}
	mustRecord(t, in, ev("dunning.opt_out", "evt_o", "inv_1", t0.Add(-time.Minute), "customer_id", "cus_1"))
	deliver(t, in)
	if got := fake.got(); len(got) != 0 {
		t.Fatalf("Temporal got %q before any run", got)
	}
	if c, err := st.GetCustomer(ctx, "cus_1"); err != nil || c.SMSConsent {
		t.Fatalf("customer after the opt-out = %+v, %v; want no sms consent", c, err)
	}
	if n, _, err := st.Backlog(ctx); err != nil || n != 0 {
		t.Errorf("Backlog = %d, %v; parked events are not a delivery backlog", n, err)
	}
	mustRecord(t, in, ev(recoup.EventPaymentFailed, "evt_f", "inv_1", t0))
	deliver(t, in)
	want := []string{"start payment-failed evt_f", "signal pause evt_p", "signal opt-out evt_o"}
	if got := fake.got(); !slices.Equal(got, want) {
		t.Errorf("Temporal got %q, want %q", got, want)
	}
	if d, err := st.EventDelivery(ctx, "evt_o"); err != nil || !d.Delivered || d.Parked || d.Episode != 1 {
		t.Errorf("opt-out delivery = %+v, %v", d, err)
	}
}

// After an invoice's run ended (and Temporal may have dropped it), a failure that occurred
// after the end starts the invoice's second run, with episode 2, and a failure that occurred
// before the end starts nothing.
func TestFailureAfterTheRunEndedStartsTheSecondRun(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	fake := newFake()
	in := &eventlog.Ingestor{Store: st, Temporal: fake}
	first := time.Now().Add(-48 * time.Hour).UTC()
	if res, err := in.Accept(ctx, ev(recoup.EventPaymentFailed, "evt_f1", "inv_1", first), "test"); err != nil || !res.Delivered {
		t.Fatalf("first failure: %+v, %v", res, err)
	}
	if c := fake.call(0); c.Input.Episode != 1 || c.Opts.WorkflowIDReusePolicy != enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE {
		t.Fatalf("first start: episode %d, reuse policy %v", c.Input.Episode, c.Opts.WorkflowIDReusePolicy)
	}
	ended := time.Now().Add(-time.Hour).UTC()
	if err := st.FinishRun(ctx, recoup.RunKey(recoup.WorkflowID("inv_1"), 1), "inv_1", "cus_1", "recovered", "paid", 2, ended); err != nil {
		t.Fatal(err)
	}
	fake.end("inv_1")

	res, err := in.Accept(ctx, ev(recoup.EventPaymentFailed, "evt_stale", "inv_1", ended.Add(-time.Minute)), "test")
	if err != nil || !res.Delivered || !strings.Contains(res.Note, "belongs to dunning run 1") {
		t.Fatalf("a failure from before the end: %+v, %v", res, err)
	}
	res, err = in.Accept(ctx, ev(recoup.EventPaymentFailed, "evt_f2", "inv_1", ended.Add(time.Minute)), "test")
	if err != nil || !res.Delivered {
		t.Fatalf("a failure after the end: %+v, %v", res, err)
	}
	want := []string{"start payment-failed evt_f1", "start payment-failed evt_f2"}
	if got := fake.got(); !slices.Equal(got, want) {
		t.Fatalf("Temporal got %q, want %q", got, want)
	}
	if c := fake.call(1); c.Input.Episode != 2 || c.Input.Failure.EventID != "evt_f2" || c.RunID == fake.call(0).RunID {
		t.Errorf("second start: %+v", c)
	}
	if runs, err := st.InvoiceRuns(ctx, "inv_1"); err != nil || len(runs) != 2 || !runs[1].Open || runs[1].RunKey != "dunning-inv_1#2" {
		t.Errorf("invoice runs = %+v, %v", runs, err)
	}
}

// An event dated beyond the allowed clock skew reaches the run with the clamped time.
func TestFutureDatedFailureReachesTheRunClamped(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	fake := newFake()
	in := &eventlog.Ingestor{Store: st, Temporal: fake}
	future := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	res, err := in.Accept(ctx, ev(recoup.EventPaymentFailed, "evt_f", "inv_1", future), "test")
	if err != nil || !res.Delivered || !res.ClampedFrom.Equal(future) || !res.OccurredAt.Before(future) {
		t.Fatalf("Accept = %+v, %v; want delivered, clamped", res, err)
	}
	if c := fake.call(0); !c.Input.Failure.OccurredAt.Equal(res.OccurredAt) || !c.OccurredAt.Equal(res.OccurredAt) {
		t.Errorf("the run was told %v (input) / %v (signal); want the clamped %v", c.Input.Failure.OccurredAt, c.OccurredAt, res.OccurredAt)
	}
}

// Redelivering an event, or delivering one again after its delivery was not recorded, starts
// no second run.
func TestRedeliveredEventsStartOneRun(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	fake := newFake()
	in := &eventlog.Ingestor{Store: st, Temporal: fake}
	raw := ev(recoup.EventPaymentFailed, "evt_f", "inv_1", t0)
	for range 3 {
		if _, err := in.Accept(ctx, raw, "test"); err != nil {
			t.Fatal(err)
		}
	}
	// The process died after the start, before recording the delivery.
	if _, err := st.Pool().Exec(ctx, `UPDATE events SET delivered_at = NULL WHERE event_id = 'evt_f'`); err != nil {
		t.Fatal(err)
	}
	deliver(t, in)
	if fake.runs != 1 {
		t.Errorf("%d runs started, want 1 (calls %q)", fake.runs, fake.got())
	}
	if runs, err := st.InvoiceRuns(ctx, "inv_1"); err != nil || len(runs) != 1 || runs[0].RunID != "run-1" {
		t.Errorf("invoice runs = %+v, %v", runs, err)
	}
}

// A run Temporal no longer has (terminated without recording its end) is closed, and the
// event for it is recorded as having no run to reach rather than failing forever.
func TestEventForAVanishedRunIsRecordedOnly(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	fake := newFake()
	in := &eventlog.Ingestor{Store: st, Temporal: fake}
	now := time.Now().UTC()
	if _, err := in.Accept(ctx, ev(recoup.EventPaymentFailed, "evt_f", "inv_1", now.Add(-time.Hour)), "test"); err != nil {
		t.Fatal(err)
	}
	fake.end("inv_1")
	res, err := in.Accept(ctx, ev("dunning.pause", "evt_p", "inv_1", now.Add(-time.Minute)), "test")
	if err != nil || !res.Delivered || !strings.Contains(res.Note, "ended") {
		t.Fatalf("pause for a vanished run: %+v, %v", res, err)
	}
	if runs, err := st.InvoiceRuns(ctx, "inv_1"); err != nil || len(runs) != 1 || runs[0].Open {
		t.Errorf("invoice runs = %+v, %v; want run 1 closed", runs, err)
	}
}

// Events kept for the invoice's next run reach it in the log's order, before the events
// after them that the same delivery pass had already listed: a pause kept after the first
// run ended reaches the second run before a resume dated after it, which arrived just before
// the failure that started that run (a resume delivered first would be refused, "not
// paused", and the pause would hold the run for ever).
func TestEventsKeptForTheNextRunReachItInOrder(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	fake := newFake()
	in := &eventlog.Ingestor{Store: st, Temporal: fake}
	first := time.Now().Add(-48 * time.Hour).UTC()
	if res, err := in.Accept(ctx, ev(recoup.EventPaymentFailed, "evt_f1", "inv_1", first), "test"); err != nil || !res.Delivered {
		t.Fatalf("first failure: %+v, %v", res, err)
	}
	ended := time.Now().Add(-time.Hour).UTC()
	if err := st.FinishRun(ctx, recoup.RunKey(recoup.WorkflowID("inv_1"), 1), "inv_1", "cus_1", "recovered", "paid", 1, ended); err != nil {
		t.Fatal(err)
	}
	fake.end("inv_1")
	mustRecord(t, in, ev("dunning.pause", "evt_p", "inv_1", ended.Add(time.Minute), "reason", "disputed"))
	deliver(t, in) // kept for the next run
	if d, err := st.EventDelivery(ctx, "evt_p"); err != nil || !d.Parked {
		t.Fatalf("pause after the run ended: %+v, %v", d, err)
	}
	// The resume is only recorded when the failure that starts the second run is accepted.
	mustRecord(t, in, ev("dunning.resume", "evt_r", "inv_1", ended.Add(3*time.Minute)))
	if res, err := in.Accept(ctx, ev(recoup.EventPaymentFailed, "evt_f2", "inv_1", ended.Add(2*time.Minute)), "test"); err != nil || !res.Delivered {
		t.Fatalf("second failure: %+v, %v", res, err)
	}
	want := []string{"start payment-failed evt_f1", "start payment-failed evt_f2", "signal pause evt_p", "signal resume evt_r"}
	if got := fake.got(); !slices.Equal(got, want) {
		t.Errorf("Temporal got %q, want %q", got, want)
	}
}

// A card update (payment_method.updated) reaches the invoice's open run as a signal, with
// billing's retry_requested.
func TestCardUpdateReachesTheInvoicesRun(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	fake := newFake()
	in := &eventlog.Ingestor{Store: st, Temporal: fake}
	if _, err := in.Accept(ctx, ev(recoup.EventPaymentFailed, "evt_f", "inv_1", t0), "test"); err != nil {
		t.Fatal(err)
	}
	upd := fmt.Sprintf(`{"type":"payment_method.updated","event_id":"evt_u","invoice_id":"inv_1","customer_id":"cus_1","retry_requested":true,"occurred_at":%q}`,
		t0.Add(time.Hour).Format(time.RFC3339))
	if res, err := in.Accept(ctx, []byte(upd), "test"); err != nil || !res.Delivered {
		t.Fatalf("card update: %+v, %v; want delivered", res, err)
	}
	want := []string{"start payment-failed evt_f", "signal payment-method-updated evt_u"}
	if got := fake.got(); !slices.Equal(got, want) {
		t.Fatalf("Temporal got %q, want %q", got, want)
	}
	if p, ok := fake.call(1).Arg.(recoup.PaymentMethodUpdated); !ok || !p.RetryRequested || !p.OccurredAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("signal payload = %#v, want retry_requested at %s", fake.call(1).Arg, t0.Add(time.Hour))
	}
}

// A later payment.failed for an invoice whose run is open (billing's own retry failed and it
// reports a failure rather than payment.retry_failed) reaches the run as a failure, without
// the customer's contact data: it was delivered as an opt-out of no channel, which the run
// ignored, so the failure was never advised on nor brought the next step forward.
func TestALaterFailureReachesTheOpenRunAsAFailure(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	fake := newFake()
	in := &eventlog.Ingestor{Store: st, Temporal: fake}
	if _, err := in.Accept(ctx, ev(recoup.EventPaymentFailed, "evt_f1", "inv_1", t0), "test"); err != nil {
		t.Fatal(err)
	}
	if res, err := in.Accept(ctx, ev(recoup.EventPaymentFailed, "evt_f2", "inv_1", t0.Add(time.Hour)), "test"); err != nil || !res.Delivered {
		t.Fatalf("second failure: %+v, %v; want delivered", res, err)
	}
	want := []string{"start payment-failed evt_f1", "signal payment-failed evt_f2"}
	if got := fake.got(); !slices.Equal(got, want) {
		t.Fatalf("Temporal got %q, want %q", got, want)
	}
	pf, ok := fake.call(1).Arg.(recoup.PaymentFailed)
	if !ok || pf.Customer != nil || !pf.OccurredAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("signal payload = %#v, want the failure at %s without contact data", fake.call(1).Arg, t0.Add(time.Hour))
	}
}

// Accept reports what the log records of its event. A pause dated before a failure recorded
// earlier (not delivered yet) is parked (no run), the failure then starts the run under the
// same claim, which releases the pause, and the pause's signal fails (Temporal unreachable):
// the log holds it undelivered, to be tried again. Accept answered "parked", without error,
// from the first of its two deliveries.
func TestAcceptReportsAnEventReleasedAndThenNotDeliveredAsNotDelivered(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	fake := newFake()
	in := &eventlog.Ingestor{Store: st, Temporal: fake}
	mustRecord(t, in, ev(recoup.EventPaymentFailed, "evt_f", "inv_1", t0)) // its relay round not yet run
	fake.down = errors.New("temporal unreachable")                         // for signals
	res, err := in.Accept(ctx, ev("dunning.pause", "evt_p", "inv_1", t0.Add(-time.Minute), "reason", "disputed"), "test")
	d, derr := st.EventDelivery(ctx, "evt_p")
	if derr != nil {
		t.Fatal(derr)
	}
	if got := fake.got(); !slices.Equal(got, []string{"start payment-failed evt_f"}) {
		t.Fatalf("Temporal got %q, want the run started with evt_f", got)
	}
	if d.Parked || d.Delivered || d.Error == "" {
		t.Fatalf("the pause's delivery as recorded = %+v, want released, not delivered, with its error", d)
	}
	if res.Parked || res.Delivered || err == nil {
		t.Errorf("Accept answered %+v, %v; the log records the pause released and not delivered (%s)", res, err, d.Error)
	}
}
