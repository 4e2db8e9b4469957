package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

func failedEvent(id, invoice string, at time.Time, amount int64) postgres.Event {
	return postgres.Event{
		EventID: id, Type: "payment.failed", Source: "test", InvoiceID: invoice, CustomerID: "cus_1", OccurredAt: at,
		Body:    []byte(fmt.Sprintf(`{"type":"payment.failed","event_id":%q,"invoice_id":%q,"amount_minor":%d}`, id, invoice, amount)),
		Attempt: &postgres.PaymentAttempt{AttemptID: "att_" + id, FailureCode: "card_declined", AmountMinor: amount, Currency: "USD"},
		Invoice: &postgres.Invoice{AmountMinor: amount, Currency: "USD", Status: "open"},
	}
}

func count(t *testing.T, st *postgres.Store, table string) int {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRecordEventOnce(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	e := failedEvent("evt_1", "inv_1", t0, 4900)
	res, err := st.RecordEvent(ctx, e)
	if err != nil {
		t.Fatalf("RecordEvent: %v", err)
	}
	if res.Duplicate || res.DeliveredAt != nil {
		t.Errorf("first RecordEvent = %+v, want a fresh record", res)
	}

	// The same event again, even with other JSON spacing and key order, is a duplicate.
	again := e
	again.Body = []byte(`{ "amount_minor": 4900, "invoice_id": "inv_1", "event_id": "evt_1", "type": "payment.failed" }`)
	res, err = st.RecordEvent(ctx, again)
	if err != nil {
		t.Fatalf("RecordEvent of the same event: %v", err)
	}
	if !res.Duplicate || res.DeliveredAt != nil {
		t.Errorf("second RecordEvent = %+v, want Duplicate, not delivered", res)
	}

	// The same id with another body is a conflict, and writes nothing.
	other := failedEvent("evt_1", "inv_1", t0, 9900)
	if _, err := st.RecordEvent(ctx, other); !errors.Is(err, postgres.ErrEventConflict) {
		t.Errorf("RecordEvent with another body = %v, want ErrEventConflict", err)
	}
	for table, want := range map[string]int{"events": 1, "payment_attempts": 1, "invoices": 1} {
		if n := count(t, st, table); n != want {
			t.Errorf("%s has %d rows, want %d", table, n, want)
		}
	}
	var amount int64
	if err := st.Pool().QueryRow(ctx, "SELECT amount_minor FROM invoices WHERE invoice_id = 'inv_1'").Scan(&amount); err != nil {
		t.Fatal(err)
	}
	if amount != 4900 {
		t.Errorf("invoice amount = %d after a conflicting event, want 4900", amount)
	}

	if err := st.MarkDelivered(ctx, "evt_1"); err != nil {
		t.Fatal(err)
	}
	res, err = st.RecordEvent(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Duplicate || res.DeliveredAt == nil {
		t.Errorf("RecordEvent after delivery = %+v, want Duplicate with DeliveredAt", res)
	}
}

func TestRecordEventConcurrently(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	e := failedEvent("evt_c", "inv_c", t0, 4900)
	e.Customer = &postgres.Customer{CustomerID: "cus_1", Name: "Ada", UpdatedAt: t0}
	const n = 10
	var wg sync.WaitGroup
	results := make([]postgres.RecordResult, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = st.RecordEvent(ctx, e)
		}()
	}
	close(start)
	wg.Wait()
	fresh := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("RecordEvent %d: %v", i, errs[i])
			continue
		}
		if !results[i].Duplicate {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d of %d concurrent RecordEvent calls were not duplicates, want exactly 1", fresh, n)
	}
	for table, want := range map[string]int{"events": 1, "payment_attempts": 1, "invoices": 1, "customers": 1} {
		if got := count(t, st, table); got != want {
			t.Errorf("%s has %d rows, want %d", table, got, want)
		}
	}
}

func TestRecordEventCustomerSnapshot(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	e1 := failedEvent("evt_1", "inv_1", t0, 4900)
	e1.Customer = &postgres.Customer{CustomerID: "cus_1", Name: "Ada", Email: "ada@example.com", EmailConsentSet: ptr(true),
		SMSConsentSet: ptr(true), UpdatedAt: t0}
	// An older event arriving later carries an outdated snapshot.
	e0 := failedEvent("evt_0", "inv_0", t0.Add(-24*time.Hour), 4900)
	e0.Customer = &postgres.Customer{CustomerID: "cus_1", Name: "Ada Old", Email: "old@example.com", EmailConsentSet: ptr(false),
		UpdatedAt: t0.Add(-24 * time.Hour)}
	// A newer one omits the email and the email consent.
	e2 := failedEvent("evt_2", "inv_2", t0.Add(time.Hour), 4900)
	e2.Customer = &postgres.Customer{CustomerID: "cus_1", Plan: "pro", SMSConsentSet: ptr(false), UpdatedAt: t0.Add(time.Hour)}
	for _, e := range []postgres.Event{e1, e0, e2} {
		if _, err := st.RecordEvent(ctx, e); err != nil {
			t.Fatalf("RecordEvent %s: %v", e.EventID, err)
		}
	}
	c, err := st.GetCustomer(ctx, "cus_1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "Ada" || c.Email != "ada@example.com" || !c.EmailConsent || c.SMSConsent || c.Plan != "pro" ||
		!c.UpdatedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("customer = %+v; want name Ada, email kept, email consent kept, sms consent withdrawn, plan pro", c)
	}
}

func TestRecordEventInvoiceStatusNewestWins(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	paid := failedEvent("evt_paid", "inv_1", t0.Add(time.Hour), 0)
	paid.Type, paid.Attempt = "payment.recovered", nil
	paid.Invoice = &postgres.Invoice{Currency: "USD", Status: "paid"}
	if _, err := st.RecordEvent(ctx, failedEvent("evt_f", "inv_1", t0, 4900)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordEvent(ctx, paid); err != nil {
		t.Fatal(err)
	}
	// A failure that happened before the payment but arrives after it does not reopen the invoice.
	if _, err := st.RecordEvent(ctx, failedEvent("evt_late", "inv_1", t0.Add(30*time.Minute), 4900)); err != nil {
		t.Fatal(err)
	}
	var status string
	var amount int64
	if err := st.Pool().QueryRow(ctx, "SELECT status, amount_minor FROM invoices WHERE invoice_id = 'inv_1'").Scan(&status, &amount); err != nil {
		t.Fatal(err)
	}
	if status != "paid" || amount != 4900 {
		t.Errorf("invoice = %s, %d; want paid, 4900", status, amount)
	}
}
