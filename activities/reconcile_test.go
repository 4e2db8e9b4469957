package activities_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// A 502 that came after SendGrid accepted the message is not retried blind: the send goes to
// reconcile, with the end of its reconcile window, and a retry of the activity calls nobody.
func TestAmbiguous502GoesToReconcileInsteadOfBeingResent(t *testing.T) {
	f := newFixture(t)
	f.sg.Queue(fakes.Response{Status: http.StatusBadGateway, Took: true}) // accepted, then a gateway's 502
	in := sendInput(1, recoup.ChannelEmail)
	res, err := f.acts.SendEmail(context.Background(), in)
	if err != nil || res.Delivery != postgres.SendReconcile || !res.ReconcileAt.Equal(now.Add(30*time.Minute)) {
		t.Fatalf("after a 502: %+v, %v; want reconcile until now + 30m", res, err)
	}
	res, err = f.acts.SendEmail(context.Background(), in)
	if err != nil || res.Delivery != postgres.SendReconcile || f.sg.RequestCount() != 1 {
		t.Fatalf("retry: %+v, %v, %d requests; want reconcile and no second request", res, err, f.sg.RequestCount())
	}
	if n := f.sg.Accepted(in.IdempotencyKey); n != 1 {
		t.Fatalf("SendGrid accepted the message %d times, want 1", n)
	}
}

// The provider's event names the key: asked again after the window, the send is found sent
// and nothing is sent again.
func TestResendAfterEvidenceSendsNothing(t *testing.T) {
	f := newFixture(t)
	f.acts.ReconcileWindow = time.Microsecond
	f.sg.Queue(fakes.Response{Status: http.StatusGatewayTimeout, Took: true}) // accepted, then a gateway's 504
	in := sendInput(1, recoup.ChannelEmail)
	if res, err := f.acts.SendEmail(context.Background(), in); err != nil || res.Delivery != postgres.SendReconcile {
		t.Fatalf("after a 504: %+v, %v; want reconcile", res, err)
	}
	if _, err := f.st.RecordProviderEvent(context.Background(), postgres.ProviderEvent{Provider: "sendgrid",
		ProviderEventID: "sg_1", IdempotencyKey: in.IdempotencyKey, Kind: recoup.DeliveryDelivered,
		OccurredAt: now, Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	in.Resend = true
	res, err := f.acts.SendEmail(context.Background(), in)
	if err != nil || res.Delivery != postgres.SendSent || f.sg.RequestCount() != 1 {
		t.Fatalf("Resend after the delivered event: %+v, %v, %d requests; want sent, no new request", res, err, f.sg.RequestCount())
	}
}

// No event named the key within the window: the provider never accepted it. The step is
// sent again once, under the resend key; asked again, nothing more is sent; the first key is
// superseded. Within the window the question is refused (retryable).
func TestResendWithoutEvidenceSendsOnceUnderTheResendKey(t *testing.T) {
	f := newFixture(t)
	f.sg.Queue(fakes.Response{Status: http.StatusBadGateway}) // refused before accepting: never accepted
	in := sendInput(1, recoup.ChannelEmail)
	if res, err := f.acts.SendEmail(context.Background(), in); err != nil || res.Delivery != postgres.SendReconcile {
		t.Fatalf("after a 502: %+v, %v; want reconcile", res, err)
	}
	in.Resend = true
	f.acts.ReconcileWindow = time.Hour
	if _, err := f.acts.SendEmail(context.Background(), in); !postgres.IsReconcilePending(err) {
		t.Fatalf("Resend within the window: %v, want ReconcilePendingError", err)
	}
	f.acts.ReconcileWindow = time.Microsecond
	for i := range 2 {
		res, err := f.acts.SendEmail(context.Background(), in)
		if err != nil || res.Delivery != postgres.SendSent || !res.ReconcileAt.IsZero() {
			t.Fatalf("Resend %d: %+v, %v; want sent", i+1, res, err)
		}
	}
	key := recoup.ResendKey(in.IdempotencyKey)
	if f.sg.RequestCount() != 2 || f.sg.Accepted(key) != 1 || f.sg.Accepted(in.IdempotencyKey) != 0 {
		t.Fatalf("provider: %d requests, accepted %d under the resend key and %d under the first; want 2, 1, 0",
			f.sg.RequestCount(), f.sg.Accepted(key), f.sg.Accepted(in.IdempotencyKey))
	}
	if row, _ := f.st.GetSend(context.Background(), in.IdempotencyKey); row.Status != postgres.SendSuperseded {
		t.Errorf("first key = %+v, want superseded", row)
	}
}

// A resend whose own outcome is unknown is never resent: its result carries no window.
func TestResendWithUnknownOutcomeIsNeverResentAgain(t *testing.T) {
	f := newFixture(t)
	f.acts.ReconcileWindow = time.Microsecond
	f.sg.Queue(fakes.Response{Status: http.StatusBadGateway}, fakes.Response{Status: http.StatusBadGateway})
	in := sendInput(1, recoup.ChannelEmail)
	if _, err := f.acts.SendEmail(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	in.Resend = true
	res, err := f.acts.SendEmail(context.Background(), in)
	if err != nil || res.Delivery != postgres.SendReconcile || !res.ReconcileAt.IsZero() {
		t.Fatalf("resend answered 502: %+v, %v; want reconcile without a window (never a third)", res, err)
	}
}
