package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

func reservation(wf string, step int, channel string) postgres.Reservation {
	return postgres.Reservation{
		Key: fmt.Sprintf("%s/step-%d/%s", wf, step, channel), WorkflowID: wf, Step: step, Channel: channel,
		CustomerID: "cus_1", InvoiceID: strings.TrimPrefix(wf, "dunning-"), Subject: "Your payment", Body: "Please pay.",
	}
}

func mustReserve(t *testing.T, st *postgres.Store, r postgres.Reservation) (postgres.SendRow, bool) {
	t.Helper()
	row, claimed, err := st.ReserveSend(context.Background(), r)
	if err != nil {
		t.Fatalf("ReserveSend(%s): %v", r.Key, err)
	}
	return row, claimed
}

func TestReserveSendFirstClaim(t *testing.T) {
	st := fakes.MustStore(t)
	r := reservation("dunning-inv_1", 1, "email")
	row, claimed := mustReserve(t, st, r)
	if !claimed || row.Status != postgres.SendReserved || row.Attempts != 1 || row.Key != r.Key {
		t.Errorf("first ReserveSend = %+v, claimed %v; want a fresh reservation", row, claimed)
	}
	got, err := st.GetSend(context.Background(), r.Key)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != postgres.SendReserved || got.Attempts != 1 {
		t.Errorf("GetSend = %+v", got)
	}
}

func TestReserveSendWhileReservedTurnsIntoReconcile(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	r := reservation("dunning-inv_1", 1, "email")
	mustReserve(t, st, r)
	row, claimed := mustReserve(t, st, r)
	if claimed {
		t.Fatal("a second ReserveSend claimed a key whose first call's outcome is unknown")
	}
	if row.Status != postgres.SendReconcile || !strings.Contains(row.Error, "unknown outcome") {
		t.Errorf("row = %+v, want status reconcile with an explanation", row)
	}
	row, claimed = mustReserve(t, st, r)
	if claimed || row.Status != postgres.SendReconcile || row.Attempts != 1 {
		t.Errorf("third ReserveSend = %+v, claimed %v; want reconcile, not claimed", row, claimed)
	}
	// The stale attempt can no longer release it for another call.
	if err := st.ReleaseSend(ctx, r.Key, "503"); err == nil {
		t.Error("ReleaseSend on a key in reconcile succeeded")
	}
}

func TestReserveSendAfterOutcomes(t *testing.T) {
	tests := []struct {
		name        string
		settle      func(st *postgres.Store, key string) error
		wantClaimed bool
		wantStatus  string
		wantID      string
		wantErr     string
		wantTries   int
	}{
		{"sent", func(st *postgres.Store, key string) error {
			return st.CompleteSend(context.Background(), key, postgres.SendSent, "SM123")
		}, false, postgres.SendSent, "SM123", "", 1},
		{"logged", func(st *postgres.Store, key string) error {
			return st.CompleteSend(context.Background(), key, postgres.SendLogged, "")
		}, false, postgres.SendLogged, "", "", 1},
		{"released for retry", func(st *postgres.Store, key string) error {
			return st.ReleaseSend(context.Background(), key, "503 from provider")
		}, true, postgres.SendReserved, "", "503 from provider", 2},
		{"failed", func(st *postgres.Store, key string) error {
			return st.FailSend(context.Background(), key, "invalid phone number")
		}, false, postgres.SendFailed, "", "invalid phone number", 1},
		{"reconcile", func(st *postgres.Store, key string) error {
			return st.ReconcileSend(context.Background(), key, "timeout")
		}, false, postgres.SendReconcile, "", "timeout", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := fakes.MustStore(t)
			r := reservation("dunning-inv_1", 2, "sms")
			mustReserve(t, st, r)
			if err := tt.settle(st, r.Key); err != nil {
				t.Fatalf("settle: %v", err)
			}
			r.Body = "Please pay, second version."
			row, claimed := mustReserve(t, st, r)
			if claimed != tt.wantClaimed || row.Status != tt.wantStatus || row.ProviderMessageID != tt.wantID ||
				row.Error != tt.wantErr || row.Attempts != tt.wantTries {
				t.Errorf("ReserveSend = %+v, claimed %v\nwant status %s, provider id %q, error %q, attempts %d, claimed %v",
					row, claimed, tt.wantStatus, tt.wantID, tt.wantErr, tt.wantTries, tt.wantClaimed)
			}
			got, err := st.GetSend(context.Background(), r.Key)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.wantStatus {
				t.Errorf("stored status = %s, want %s", got.Status, tt.wantStatus)
			}
			var body string
			if err := st.Pool().QueryRow(context.Background(), "SELECT body FROM sends WHERE idempotency_key = $1", r.Key).Scan(&body); err != nil {
				t.Fatal(err)
			}
			if wantBody := map[bool]string{true: r.Body, false: "Please pay."}[tt.wantClaimed]; body != wantBody {
				t.Errorf("stored body = %q, want %q", body, wantBody)
			}
		})
	}
}

func TestReleasedSendCanBeClaimedAgainAndCompleted(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	r := reservation("dunning-inv_1", 1, "email")
	mustReserve(t, st, r)
	for attempt := 2; attempt <= 3; attempt++ {
		if err := st.ReleaseSend(ctx, r.Key, "connection refused"); err != nil {
			t.Fatal(err)
		}
		row, claimed := mustReserve(t, st, r)
		if !claimed || row.Attempts != attempt || row.Status != postgres.SendReserved {
			t.Fatalf("attempt %d: ReserveSend = %+v, claimed %v", attempt, row, claimed)
		}
	}
	if err := st.CompleteSend(ctx, r.Key, postgres.SendSent, "msg-42"); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetSend(ctx, r.Key)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != postgres.SendSent || got.ProviderMessageID != "msg-42" || got.Attempts != 3 || got.Error != "" {
		t.Errorf("GetSend = %+v, want sent after 3 attempts with no error left", got)
	}
}

func TestReserveSendConcurrently(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	for _, released := range []bool{false, true} {
		r := reservation("dunning-inv_1", 1, "email")
		if released {
			r = reservation("dunning-inv_1", 2, "email")
			mustReserve(t, st, r)
			if err := st.ReleaseSend(ctx, r.Key, "retry"); err != nil {
				t.Fatal(err)
			}
		}
		const n = 10
		var wg sync.WaitGroup
		claims := make([]bool, n)
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, claims[i], errs[i] = st.ReserveSend(ctx, r)
			}()
		}
		close(start)
		wg.Wait()
		claimed := 0
		for i := range n {
			if errs[i] != nil {
				t.Errorf("ReserveSend %d: %v", i, errs[i])
			}
			if claims[i] {
				claimed++
			}
		}
		if claimed != 1 {
			t.Errorf("released=%v: %d of %d concurrent ReserveSend calls claimed the key, want exactly 1", released, claimed, n)
		}
	}
}

func TestSettlingWithoutReservationFails(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	if err := st.CompleteSend(ctx, "dunning-inv_9/step-1/email", postgres.SendSent, "x"); err == nil ||
		!strings.Contains(err.Error(), "holds no reservation") {
		t.Errorf("CompleteSend on an unknown key = %v, want a 'holds no reservation' error", err)
	}
	r := reservation("dunning-inv_1", 1, "email")
	mustReserve(t, st, r)
	if err := st.CompleteSend(ctx, r.Key, postgres.SendSent, "first"); err != nil {
		t.Fatal(err)
	}
	for name, settle := range map[string]func() error{
		"CompleteSend": func() error { return st.CompleteSend(ctx, r.Key, postgres.SendSent, "second") },
		"ReleaseSend":  func() error { return st.ReleaseSend(ctx, r.Key, "x") },
		"FailSend":     func() error { return st.FailSend(ctx, r.Key, "x") },
	} {
		if err := settle(); err == nil {
			t.Errorf("%s on a sent key succeeded", name)
		}
	}
	got, err := st.GetSend(ctx, r.Key)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != postgres.SendSent || got.ProviderMessageID != "first" {
		t.Errorf("a settled send was changed: %+v", got)
	}
}

func TestGetSendUnknown(t *testing.T) {
	st := fakes.MustStore(t)
	_, err := st.GetSend(context.Background(), "nope")
	if err == nil || !postgres.IsNotFound(err) {
		t.Errorf("GetSend(unknown) = %v, want a not-found error", err)
	}
}

func TestLateDefiniteOutcomeSettlesReconcile(t *testing.T) {
	st := fakes.MustStore(t)
	ctx := context.Background()
	r := postgres.Reservation{Key: "dunning-inv_9/step-1/email", WorkflowID: "dunning-inv_9", Step: 1, Channel: "email", CustomerID: "c", InvoiceID: "inv_9"}
	if _, claimed, err := st.ReserveSend(ctx, r); err != nil || !claimed {
		t.Fatalf("first reserve: %v %v", claimed, err)
	}
	// A second attempt starts while the first (timed out) is still at the provider.
	if row, claimed, err := st.ReserveSend(ctx, r); err != nil || claimed || row.Status != postgres.SendReconcile || !row.Reconciled {
		t.Fatalf("second reserve: %+v %v %v", row, claimed, err)
	}
	// A third attempt finds it already marked: it is reported, but not as newly reconciled.
	if row, _, err := st.ReserveSend(ctx, r); err != nil || row.Status != postgres.SendReconcile || row.Reconciled {
		t.Fatalf("third reserve: %+v %v", row, err)
	}
	// The first attempt then learns the provider accepted it: the send is settled, not lost.
	if err := st.CompleteSend(ctx, r.Key, postgres.SendSent, "msg-1"); err != nil {
		t.Fatal(err)
	}
	if row, _ := st.GetSend(ctx, r.Key); row.Status != postgres.SendSent || row.ProviderMessageID != "msg-1" {
		t.Fatalf("row = %+v, want sent with the provider id", row)
	}
	// A "not accepted" answer cannot reopen a send another attempt already looked at.
	r.Key = "dunning-inv_9/step-2/email"
	_, _, _ = st.ReserveSend(ctx, r)
	_, _, _ = st.ReserveSend(ctx, r)
	if err := st.ReleaseSend(ctx, r.Key, "503"); err == nil {
		t.Fatal("ReleaseSend reopened a send marked for reconciliation")
	}
}

// A settle recorded since the run started bars its next send even before the settle reaches
// the run (the relay has not signalled it yet); a settle recorded before the run started does
// not; nor does either change the outcome of a send already made.
func TestReserveSendRefusedOnceTheInvoiceIsSettled(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	if _, err := st.UpsertCustomer(ctx, fullCustomer(t0)); err != nil {
		t.Fatal(err)
	}
	record(t, st, otherEvent("evt_paid_before", "payment.recovered", "inv_1", t0))
	if err := st.StartRun(ctx, "dunning-inv_1", "inv_1", "cus_1", time.Now()); err != nil {
		t.Fatal(err)
	}
	first := reservation("dunning-inv_1", 1, "email")
	if _, claimed := mustReserve(t, st, first); !claimed {
		t.Fatal("a settle recorded before the run started barred its first send")
	}
	if err := st.CompleteSend(ctx, first.Key, postgres.SendSent, "sg-1"); err != nil {
		t.Fatal(err)
	}
	// Its value date is older than the run: it still settles it (I1).
	record(t, st, otherEvent("evt_paid", "payment.retry_succeeded", "inv_1", t0.Add(-time.Hour)))
	_, claimed, err := st.ReserveSend(ctx, reservation("dunning-inv_1", 2, "email"))
	var settled *postgres.SettledError
	if !errors.As(err, &settled) || settled.EventID != "evt_paid" || settled.Type != "payment.retry_succeeded" || claimed {
		t.Fatalf("ReserveSend after the settle = claimed %v, %v; want a SettledError naming evt_paid", claimed, err)
	}
	// Nor may the run end exhausted: billing reported the invoice paid.
	err = st.FinishRun(ctx, "dunning-inv_1", "inv_1", "cus_1", "exhausted", "every step ran", 2, time.Now())
	if !errors.As(err, &settled) || settled.EventID != "evt_paid" {
		t.Fatalf("FinishRun exhausted after the settle = %v; want a SettledError naming evt_paid", err)
	}
	if err := st.FinishRun(ctx, "dunning-inv_1", "inv_1", "cus_1", "recovered", "paid", 2, time.Now()); err != nil {
		t.Fatalf("FinishRun recovered: %v", err)
	}
	if row, claimed := mustReserve(t, st, first); claimed || row.Status != postgres.SendSent {
		t.Errorf("the earlier send's outcome = %+v, claimed %v; want sent, not claimed", row, claimed)
	}
	// Another run's settle (another invoice) bars nothing here.
	if err := st.StartRun(ctx, "dunning-inv_2", "inv_2", "cus_1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, claimed := mustReserve(t, st, reservation("dunning-inv_2", 1, "email")); !claimed {
		t.Error("inv_1's settle barred inv_2's send")
	}
}

// An opt-out recorded after the activity read the profile (consent) but before it reserved
// the send still bars it: the reservation re-reads consent under the customer's lock.
func TestReserveSendRefusedAfterAnOptOut(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	if _, err := st.UpsertCustomer(ctx, fullCustomer(t0)); err != nil {
		t.Fatal(err)
	}
	if err := st.StartRun(ctx, "dunning-inv_1", "inv_1", "cus_1", time.Now()); err != nil {
		t.Fatal(err)
	}
	record(t, st, optOut("evt_stop", "inv_1", "cus_1", "sms", time.Now()))
	_, claimed, err := st.ReserveSend(ctx, reservation("dunning-inv_1", 1, "sms"))
	var barred *postgres.SendBarredError
	if !errors.As(err, &barred) || claimed {
		t.Fatalf("ReserveSend by sms after an sms opt-out = claimed %v, %v; want a consent SendBarredError", claimed, err)
	}
	if _, claimed := mustReserve(t, st, reservation("dunning-inv_1", 1, "email")); !claimed {
		t.Error("an sms opt-out barred the email")
	}
}
