package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

func optOut(id, invoice, customer, channel string, at time.Time) postgres.Event {
	e := otherEvent(id, "dunning.opt_out", invoice, at)
	e.CustomerID, e.OptOut = customer, channel
	e.Body = []byte(fmt.Sprintf(`{"type":"dunning.opt_out","event_id":%q,"invoice_id":%q,"channel":%q}`, id, invoice, channel))
	return e
}

func consent(t *testing.T, st *postgres.Store, customer string) (email, sms bool) {
	t.Helper()
	c, err := st.GetCustomer(context.Background(), customer)
	if err != nil {
		t.Fatal(err)
	}
	return c.EmailConsent, c.SMSConsent
}

// An opt-out is stored on the customer, so the next invoice's run does not use the channel
// either; a snapshot or import older than the opt-out cannot grant it back, a newer one can,
// and the ledger records each change with its source and evidence.
func TestOptOutWithdrawsConsentForLaterRuns(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	if _, err := st.UpsertCustomer(ctx, fullCustomer(t0)); err != nil {
		t.Fatal(err)
	}
	record(t, st, optOut("evt_o", "inv_1", "cus_1", "sms", t0.Add(time.Hour)))
	if email, sms := consent(t, st, "cus_1"); !email || sms {
		t.Fatalf("after the sms opt-out: email %v, sms %v; want email only", email, sms)
	}
	// The opt-out again (redelivered) changes nothing and records nothing twice.
	record(t, st, optOut("evt_o", "inv_1", "cus_1", "sms", t0.Add(time.Hour)))

	// The next invoice's failure carries a snapshot taken before the opt-out: no re-grant.
	snap := failedEvent("evt_f2", "inv_2", t0.Add(30*time.Minute), 4900)
	snap.Customer = &postgres.Customer{CustomerID: "cus_1", Plan: "enterprise", EmailConsentSet: ptr(true), SMSConsentSet: ptr(true)}
	record(t, st, snap)
	if _, sms := consent(t, st, "cus_1"); sms {
		t.Fatal("a snapshot older than the opt-out granted sms consent back")
	}
	// So does an older import.
	old := fullCustomer(t0.Add(45 * time.Minute))
	if _, err := st.UpsertCustomer(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, sms := consent(t, st, "cus_1"); sms {
		t.Fatal("an import older than the opt-out granted sms consent back")
	}
	// A newer import says the customer consented again: newest wins, recorded.
	if _, err := st.UpsertCustomer(ctx, fullCustomer(t0.Add(2*time.Hour))); err != nil {
		t.Fatal(err)
	}
	if _, sms := consent(t, st, "cus_1"); !sms {
		t.Fatal("a newer import did not grant sms consent")
	}
	ledger, err := st.ConsentLedger(ctx, "cus_1")
	if err != nil {
		t.Fatal(err)
	}
	want := []postgres.ConsentChange{
		{Channel: "email", Consent: true, Source: postgres.ConsentImport, At: t0, Applied: true},
		{Channel: "sms", Consent: true, Source: postgres.ConsentImport, At: t0, Applied: true},
		{Channel: "sms", Consent: false, Source: postgres.ConsentBillingEvent, EvidenceEventID: "evt_o", At: t0.Add(time.Hour), Applied: true},
		{Channel: "sms", Consent: true, Source: postgres.ConsentImport, At: t0.Add(2 * time.Hour), Applied: true},
	}
	if len(ledger) != len(want) {
		t.Fatalf("ledger = %+v, want %+v", ledger, want)
	}
	for i := range want {
		if g := ledger[i]; g.Channel != want[i].Channel || g.Consent != want[i].Consent || g.Source != want[i].Source ||
			g.EvidenceEventID != want[i].EvidenceEventID || !g.At.Equal(want[i].At) || g.Applied != want[i].Applied {
			t.Errorf("ledger[%d] = %+v, want %+v", i, g, want[i])
		}
	}
}

// An opt-out that names no customer, for an invoice whose customer is not known yet, is
// applied once the invoice's failure (and customer) is recorded, even to a new profile.
func TestOptOutBeforeTheCustomerIsKnownIsApplied(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	record(t, st, optOut("evt_o", "inv_1", "", "email", t0.Add(time.Hour)))
	f := failedEvent("evt_f", "inv_1", t0, 4900)
	f.Customer = &postgres.Customer{CustomerID: "cus_1", Email: "ada@example.com", EmailConsentSet: ptr(true), SMSConsentSet: ptr(true)}
	record(t, st, f)
	if email, sms := consent(t, st, "cus_1"); email || !sms {
		t.Fatalf("email %v, sms %v; want the email opt-out applied, sms granted", email, sms)
	}
	// An opt-out of the same invoice without a customer id now finds it through the invoice.
	record(t, st, optOut("evt_o2", "inv_1", "", "sms", t0.Add(2*time.Hour)))
	if _, sms := consent(t, st, "cus_1"); sms {
		t.Fatal("an opt-out naming only the invoice did not reach the invoice's customer")
	}
	ledger, err := st.ConsentLedger(ctx, "cus_1")
	if err != nil {
		t.Fatal(err)
	}
	var optOuts int
	for _, l := range ledger {
		if l.Source == postgres.ConsentBillingEvent {
			optOuts++
		}
	}
	if optOuts != 2 {
		t.Errorf("ledger = %+v, want both opt-outs", ledger)
	}
}

// An event dated in the future beyond the allowed skew is recorded as now + skew (the
// producer's time kept): it cannot outrank, for good, every later event and snapshot.
func TestFutureOccurredAtIsClamped(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	future := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	e := failedEvent("evt_future", "inv_1", future, 4900)
	e.Customer = &postgres.Customer{CustomerID: "cus_1", Plan: "pro", SMSConsentSet: ptr(true)}
	res, err := st.RecordEvent(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Clamped() || !res.ClampedFrom.Equal(future) || !res.OccurredAt.Before(future) {
		t.Fatalf("RecordEvent = %+v, want clamped from %v", res, future)
	}
	var occurred, received, original, attempt time.Time
	if err := st.Pool().QueryRow(ctx, `
		SELECT e.occurred_at, e.received_at, e.occurred_at_original, p.occurred_at
		FROM events e JOIN payment_attempts p USING (event_id) WHERE event_id = 'evt_future'`).
		Scan(&occurred, &received, &original, &attempt); err != nil {
		t.Fatal(err)
	}
	if !occurred.Equal(received.Add(postgres.DefaultMaxClockSkew)) || !original.Equal(future) || !attempt.Equal(occurred) ||
		!res.OccurredAt.Equal(occurred) {
		t.Errorf("recorded occurred_at %v (received %v, original %v, attempt %v); want received + %v",
			occurred, received, original, attempt, postgres.DefaultMaxClockSkew)
	}
	// The same event again reports the same clamp.
	if again, err := st.RecordEvent(ctx, e); err != nil || !again.Duplicate || !again.ClampedFrom.Equal(future) || !again.OccurredAt.Equal(occurred) {
		t.Errorf("duplicate = %+v, %v", again, err)
	}
	// The next snapshot after the clamped time wins over the future-dated one.
	later := failedEvent("evt_next", "inv_2", occurred.Add(time.Second), 4900)
	later.Customer = &postgres.Customer{CustomerID: "cus_1", Plan: "enterprise", SMSConsentSet: ptr(false)}
	record(t, st, later)
	c, err := st.GetCustomer(ctx, "cus_1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Plan != "enterprise" || c.SMSConsent {
		t.Errorf("after a later snapshot: plan %q, sms %v; the future-dated snapshot still wins", c.Plan, c.SMSConsent)
	}
	// An import dated in the future is clamped as well.
	imp := postgres.Customer{CustomerID: "cus_2", UpdatedAt: future}
	if _, err := st.UpsertCustomer(ctx, imp); err != nil {
		t.Fatal(err)
	}
	if c, err := st.GetCustomer(ctx, "cus_2"); err != nil || !c.UpdatedAt.Before(future) {
		t.Errorf("imported profile updated_at = %v, %v; want clamped", c.UpdatedAt, err)
	}
}
