package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

func ids(us []postgres.UndeliveredEvent) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.EventID
	}
	return out
}

func otherEvent(id, typ, invoice string, at time.Time) postgres.Event {
	return postgres.Event{EventID: id, Type: typ, Source: "test", InvoiceID: invoice, OccurredAt: at,
		Body: []byte(fmt.Sprintf(`{"type":%q,"event_id":%q,"invoice_id":%q}`, typ, id, invoice))}
}

func record(t *testing.T, st *postgres.Store, es ...postgres.Event) {
	t.Helper()
	for _, e := range es {
		if _, err := st.RecordEvent(context.Background(), e); err != nil {
			t.Fatalf("RecordEvent %s: %v", e.EventID, err)
		}
	}
}

func claim(t *testing.T, st *postgres.Store, invoice string) *postgres.Claim {
	t.Helper()
	c, ok, err := st.ClaimInvoice(context.Background(), invoice, false)
	if err != nil || !ok {
		t.Fatalf("ClaimInvoice(%s) = %v, %v", invoice, ok, err)
	}
	t.Cleanup(c.Release)
	return c
}

func pending(t *testing.T, c *postgres.Claim) []postgres.UndeliveredEvent {
	t.Helper()
	p, err := c.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// An invoice is due when its first undelivered event is: a later event never overtakes one
// that waits for the backoff of a failed delivery.
func TestDueInvoicesNeverLetALaterEventOvertakeAFailedOne(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	for i, id := range []string{"evt_a", "evt_b", "evt_c"} {
		record(t, st, failedEvent(id, "inv_"+id, t0.Add(time.Duration(i)*time.Minute), 100))
		// Received one second apart, in this order.
		if _, err := st.Pool().Exec(ctx, "UPDATE events SET received_at = $2 WHERE event_id = $1", id, t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	due, err := st.DueInvoices(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(due, []string{"inv_evt_a", "inv_evt_b", "inv_evt_c"}) {
		t.Errorf("DueInvoices = %v, want the first received first", due)
	}
	if due, _ := st.DueInvoices(ctx, 2); len(due) != 2 {
		t.Errorf("DueInvoices(limit 2) = %v", due)
	}
	if err := st.MarkDeliveryFailed(ctx, "evt_a", "temporal unavailable"); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkDelivered(ctx, "evt_b"); err != nil {
		t.Fatal(err)
	}
	// A later event of inv_evt_a arrives: it must wait behind evt_a.
	record(t, st, otherEvent("evt_a2", "dunning.pause", "inv_evt_a", t0.Add(time.Hour)))
	due, err = st.DueInvoices(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(due, []string{"inv_evt_c"}) {
		t.Errorf("DueInvoices after failing evt_a and delivering evt_b = %v, want [inv_evt_c]", due)
	}
	if n, _, err := st.Backlog(ctx); err != nil || n != 3 {
		t.Errorf("Backlog = %d, %v; want 3 (evt_a waiting for its retry, evt_a2, evt_c)", n, err)
	}
	// The claim lists the invoice's events in order, the failed one first.
	if got := ids(pending(t, claim(t, st, "inv_evt_a"))); !slices.Equal(got, []string{"evt_a", "evt_a2"}) {
		t.Errorf("Pending = %v, want [evt_a evt_a2]", got)
	}

	// Delivering clears the error; delivering again keeps the first delivery time.
	if err := st.MarkDelivered(ctx, "evt_a"); err != nil {
		t.Fatal(err)
	}
	var first time.Time
	var deliveryErr *string
	if err := st.Pool().QueryRow(ctx, "SELECT delivered_at, delivery_error FROM events WHERE event_id = 'evt_a'").Scan(&first, &deliveryErr); err != nil {
		t.Fatal(err)
	}
	if deliveryErr != nil {
		t.Errorf("delivery_error = %q after delivery, want NULL", *deliveryErr)
	}
	if err := st.MarkDelivered(ctx, "evt_a"); err != nil {
		t.Fatal(err)
	}
	res, err := st.RecordEvent(ctx, failedEvent("evt_a", "inv_evt_a", t0, 100))
	if err != nil {
		t.Fatal(err)
	}
	if res.DeliveredAt == nil || !res.DeliveredAt.Equal(first) {
		t.Errorf("DeliveredAt = %v, want the first delivery %v", res.DeliveredAt, first)
	}
	if err := st.MarkDelivered(ctx, "evt_unknown"); err != nil {
		t.Errorf("MarkDelivered(unknown) = %v, want no error", err)
	}
}

func TestPendingKeepsAnInvoicesEventsInOccurrenceOrder(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	type ev struct {
		id, invoice string
		occurred    time.Duration // after t0
		received    time.Duration // after t0
	}
	// inv_1's second failure was received before the failure it follows; inv_2's event came in between.
	for _, e := range []ev{
		{"evt_1_retry", "inv_1", 10 * time.Minute, 11 * time.Minute},
		{"evt_2_fail", "inv_2", 5 * time.Minute, 12 * time.Minute},
		{"evt_1_fail", "inv_1", 0, 13 * time.Minute},
	} {
		record(t, st, failedEvent(e.id, e.invoice, t0.Add(e.occurred), 100))
		if _, err := st.Pool().Exec(ctx, "UPDATE events SET received_at = $2 WHERE event_id = $1", e.id, t0.Add(e.received)); err != nil {
			t.Fatal(err)
		}
	}
	due, err := st.DueInvoices(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(due, []string{"inv_2", "inv_1"}) {
		t.Errorf("DueInvoices = %v, want [inv_2 inv_1] (by when each invoice's next event was received)", due)
	}
	if got, want := ids(pending(t, claim(t, st, "inv_1"))), []string{"evt_1_fail", "evt_1_retry"}; !slices.Equal(got, want) {
		t.Errorf("Pending = %v, want %v (by occurred_at)", got, want)
	}
}

// One relay at a time delivers an invoice: a second claim fails until the first is released.
func TestClaimInvoiceIsExclusive(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	a, ok, err := st.ClaimInvoice(ctx, "inv_1", false)
	if err != nil || !ok {
		t.Fatalf("first claim = %v, %v", ok, err)
	}
	if _, ok, err := st.ClaimInvoice(ctx, "inv_1", false); err != nil || ok {
		t.Fatalf("second claim while the first holds = %v, %v; want refused", ok, err)
	}
	if b, ok, err := st.ClaimInvoice(ctx, "inv_2", false); err != nil || !ok {
		t.Fatalf("claim of another invoice = %v, %v", ok, err)
	} else {
		b.Release()
	}
	a.Release()
	b, ok, err := st.ClaimInvoice(ctx, "inv_1", false)
	if err != nil || !ok {
		t.Fatalf("claim after release = %v, %v", ok, err)
	}
	b.Release()
}

func route(t *testing.T, c *postgres.Claim, e postgres.Event) postgres.Route {
	t.Helper()
	r, err := c.Route(context.Background(), postgres.UndeliveredEvent{EventID: e.EventID, InvoiceID: e.InvoiceID, Type: e.Type, OccurredAt: e.OccurredAt})
	if err != nil {
		t.Fatalf("Route(%s): %v", e.EventID, err)
	}
	return r
}

// A failure after the invoice's run ended opens the next episode, with a run key of its own;
// a failure that occurred before the run ended belongs to it and starts nothing. The
// decision is PostgreSQL's, so it holds after Temporal's retention dropped the old run.
func TestFailureAfterRunEndedOpensTheNextEpisode(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	c := claim(t, st, "inv_1")
	f1 := failedEvent("evt_f1", "inv_1", t0, 4900)
	r := route(t, c, f1)
	if r.Action != postgres.RouteStart || r.Episode != 1 || r.RunKey != "dunning-inv_1" {
		t.Fatalf("first failure: %+v, want start of run 1 keyed dunning-inv_1", r)
	}
	// Until the run has started, the invoice's other events wait for it.
	if r := route(t, c, otherEvent("evt_p", "dunning.pause", "inv_1", t0.Add(time.Minute))); r.Action != postgres.RoutePark {
		t.Errorf("pause before the run started: %+v, want parked", r)
	}
	// Delivering the opener again starts (joins) the same run.
	if r := route(t, c, f1); r.Action != postgres.RouteStart || r.Episode != 1 {
		t.Errorf("the opener again: %+v, want start of run 1", r)
	}
	if err := c.Started(ctx, 1, "run-a"); err != nil {
		t.Fatal(err)
	}
	if r := route(t, c, failedEvent("evt_f1b", "inv_1", t0.Add(time.Hour), 4900)); r.Action != postgres.RouteSignal || r.Episode != 1 {
		t.Errorf("a second failure during the run: %+v, want signal to run 1", r)
	}
	if err := st.StartRun(ctx, "dunning-inv_1", "inv_1", "cus_1", t0); err != nil {
		t.Fatal(err)
	}
	ended := t0.Add(48 * time.Hour)
	if err := st.FinishRun(ctx, "dunning-inv_1", "inv_1", "cus_1", "recovered", "paid", 2, ended); err != nil {
		t.Fatal(err)
	}
	late := failedEvent("evt_late", "inv_1", ended.Add(-time.Minute), 4900)
	if r := route(t, c, late); r.Action != postgres.RouteIgnore || r.Episode != 1 {
		t.Errorf("a failure that occurred before run 1 ended: %+v, want ignored as run 1's", r)
	}
	if r := route(t, c, otherEvent("evt_opt", "dunning.resume", "inv_1", ended.Add(-time.Minute))); r.Action != postgres.RouteIgnore {
		t.Errorf("a resume of the ended run: %+v, want ignored", r)
	}
	f2 := failedEvent("evt_f2", "inv_1", ended.Add(time.Hour), 4900)
	r = route(t, c, f2)
	if r.Action != postgres.RouteStart || r.Episode != 2 || r.RunKey != "dunning-inv_1#2" {
		t.Fatalf("a failure after run 1 ended: %+v, want start of run 2 keyed dunning-inv_1#2", r)
	}
	// The start joined run 1, still finishing: it is not run 2's start.
	if err := c.Started(ctx, 2, "run-a"); !errors.Is(err, postgres.ErrPreviousRunRunning) {
		t.Errorf("Started(2) with run 1's run id = %v, want ErrPreviousRunRunning", err)
	}
	if err := c.Started(ctx, 2, "run-b"); err != nil {
		t.Fatal(err)
	}
	if err := st.StartRun(ctx, "dunning-inv_1#2", "inv_1", "cus_1", ended.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishRun(ctx, "dunning-inv_1#2", "inv_1", "cus_1", "exhausted", "", 4, ended.Add(30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	runs, err := st.InvoiceRuns(ctx, "inv_1")
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].Open || runs[1].Open || runs[0].OpenedBy != "evt_f1" || runs[1].OpenedBy != "evt_f2" ||
		runs[1].RunKey != "dunning-inv_1#2" || runs[1].RunID != "run-b" || !runs[0].ClosedAt.Equal(ended) {
		t.Errorf("invoice runs = %+v", runs)
	}
	// Both runs are the customer's runs, each under its own key.
	if _, err := st.UpsertCustomer(ctx, fullCustomer(t0)); err != nil {
		t.Fatal(err)
	}
	h, err := st.CustomerHistory(ctx, "cus_1")
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Runs) != 2 || h.Runs[0].WorkflowID != "dunning-inv_1#2" || h.Runs[1].WorkflowID != "dunning-inv_1" ||
		h.Runs[0].Outcome != "exhausted" || h.Runs[1].Outcome != "recovered" {
		t.Errorf("history runs = %+v", h.Runs)
	}
}

// A failure is not dunned when an event that settles the invoice was recorded first —
// whatever its value date (I1: a payment that settled later, or a host whose clock is
// behind, still settles it); the decision is taken under the lock that recording takes.
func TestSettledInvoiceStartsNoRun(t *testing.T) {
	st := fakes.MustStore(t)
	for _, typ := range []string{"payment.recovered", "payment.retry_succeeded", "payment.succeeded", "dunning.cancel"} {
		inv := "inv_" + typ
		record(t, st, otherEvent("evt_s_"+typ, typ, inv, t0.Add(time.Minute)))
		c := claim(t, st, inv)
		r := route(t, c, failedEvent("evt_f_"+typ, inv, t0, 4900))
		if r.Action != postgres.RouteIgnore || r.Episode != 0 {
			t.Errorf("%s after the failure: %+v, want ignored (settled)", typ, r)
		}
		// A settlement whose value date is older than the failure settles it too.
		r = route(t, c, failedEvent("evt_f2_"+typ, inv, t0.Add(time.Hour), 4900))
		if r.Action != postgres.RouteIgnore {
			t.Errorf("%s dated before the failure: %+v, want ignored (settled)", typ, r)
		}
	}
}

// A run that Temporal no longer has (terminated, never recorded its end) is closed, so that
// the invoice's events stop being sent to it.
func TestGoneClosesTheRun(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	c := claim(t, st, "inv_1")
	now := time.Now()
	if r := route(t, c, failedEvent("evt_f1", "inv_1", now.Add(-2*time.Hour), 4900)); r.Action != postgres.RouteStart {
		t.Fatalf("%+v", r)
	}
	if err := c.Started(ctx, 1, "run-a"); err != nil {
		t.Fatal(err)
	}
	if err := c.Gone(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if r := route(t, c, otherEvent("evt_p", "dunning.pause", "inv_1", now.Add(-time.Hour))); r.Action != postgres.RouteIgnore {
		t.Errorf("pause for the vanished run: %+v, want ignored", r)
	}
}

// A payment.succeeded is payment volume first: for an invoice without a run it is recorded,
// not parked for a run that will never come; for an invoice whose run is open it settles it.
func TestPaymentSucceededWithoutARunIsNotParked(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	c := claim(t, st, "inv_ok")
	if r := route(t, c, otherEvent("evt_ok", "payment.succeeded", "inv_ok", t0)); r.Action != postgres.RouteIgnore {
		t.Errorf("payment.succeeded without a run: %+v, want recorded only (not parked)", r)
	}
	c = claim(t, st, "inv_1")
	if r := route(t, c, failedEvent("evt_f1", "inv_1", t0, 4900)); r.Action != postgres.RouteStart {
		t.Fatalf("%+v", r)
	}
	if err := c.Started(ctx, 1, "run-a"); err != nil {
		t.Fatal(err)
	}
	if r := route(t, c, otherEvent("evt_ok1", "payment.succeeded", "inv_1", t0.Add(time.Hour))); r.Action != postgres.RouteSignal {
		t.Errorf("payment.succeeded for an open run: %+v, want signalled (it settles the run)", r)
	}
}
