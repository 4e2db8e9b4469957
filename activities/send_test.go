package activities_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

const wfID = "dunning-inv_1"

func sendInput(step int, ch recoup.Channel) activities.SendInput {
	return activities.SendInput{
		IdempotencyKey: activities.IdempotencyKey(wfID, step, ch), WorkflowID: wfID, InvoiceID: "inv_1",
		CustomerID: "cus_1", Step: step, AmountMinor: 4900, Currency: "USD",
		Decision: recoup.Decision{Step: step, Channel: ch, Tone: "friendly", Subject: "Your payment didn't go through",
			Message: "We could not charge your card.", Incentive: recoup.Incentive{Kind: recoup.IncentiveNone}},
	}
}

func appErrType(err error) (string, bool) {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type(), appErr.NonRetryable()
	}
	return "", false
}

func TestSendEmailSendsOnceAndRetryReturnsStoredResult(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	in := sendInput(1, recoup.ChannelEmail)
	res, err := f.acts.SendEmail(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	wantID := "sg-dunning-inv_1-step-1-email"
	if res.Delivery != postgres.SendSent || res.ProviderMessageID != wantID {
		t.Fatalf("result = %+v, want sent with provider id %s", res, wantID)
	}
	// The request the real library sent carries the rendered message with the mandatory parts.
	p := f.sg.Last().JSON["personalizations"].([]any)[0].(map[string]any)
	if to := p["to"].([]any)[0].(map[string]any); to["email"] != "ada@example.com" || to["name"] != "Ada Lovelace" {
		t.Fatalf("to = %v", to)
	}
	if f.sg.Last().JSON["subject"] != "Your payment didn't go through" {
		t.Fatalf("subject = %v", f.sg.Last().JSON["subject"])
	}
	content := f.sg.Last().JSON["content"].([]any)
	text := content[0].(map[string]any)["value"].(string)
	for _, want := range []string{"Hi Ada,", "We could not charge your card.", "https://pay.example/invoices/inv_1", "https://pay.example/unsub/cus_1", "$"} {
		if !strings.Contains(text, want) {
			t.Errorf("email text lacks %q:\n%s", want, text)
		}
	}
	if html := content[1].(map[string]any)["value"].(string); !strings.Contains(html, `href="https://pay.example/invoices/inv_1"`) {
		t.Errorf("email HTML lacks the payment link:\n%s", html)
	}

	// Temporal retries the activity (e.g. the completion was lost): no second message.
	res2, err := f.acts.SendEmail(ctx, in)
	if err != nil || res2 != res {
		t.Fatalf("retry = %+v, %v; want the stored result %+v", res2, err, res)
	}
	if n := f.sg.Accepted(in.IdempotencyKey); n != 1 {
		t.Fatalf("provider accepted %d messages for the key, want 1", n)
	}
}

func TestSendAfterCrashMidCallDoesNotSendAgain(t *testing.T) {
	f := newFixture(t)
	in := sendInput(2, recoup.ChannelEmail)
	// An earlier attempt reserved the key, and the worker died before it recorded the outcome.
	if _, claimed, err := f.st.ReserveSend(context.Background(), postgres.Reservation{Key: in.IdempotencyKey,
		WorkflowID: wfID, Step: 2, Channel: "email", CustomerID: "cus_1", InvoiceID: "inv_1"}); err != nil || !claimed {
		t.Fatalf("reserve: claimed=%v err=%v", claimed, err)
	}
	res, err := f.acts.SendEmail(context.Background(), in)
	if err != nil || res.Delivery != postgres.SendReconcile {
		t.Fatalf("second execution = %+v, %v; want reconcile without error", res, err)
	}
	if f.sg.RequestCount() != 0 {
		t.Fatalf("provider called %d times, want 0", f.sg.RequestCount())
	}
	row, _ := f.st.GetSend(context.Background(), in.IdempotencyKey)
	if row.Status != postgres.SendReconcile {
		t.Fatalf("send row status = %s, want reconcile", row.Status)
	}
}

// A worker cut off from Temporal (not killed) stops heartbeating while its attempt still
// waits for the provider: the server times the attempt out and a live worker runs the next
// one at the same time. That attempt finds the reservation and calls nobody; the first
// attempt's answer then settles the message as sent, and the step's resend check after the
// reconcile window sends nothing: one message.
func TestAttemptWhileTheTimedOutOneStillCallsDoesNotSendAgain(t *testing.T) {
	f := newFixture(t)
	in := sendInput(1, recoup.ChannelEmail)
	var second activities.SendResult
	var secondErr error
	var once sync.Once
	f.sg.Always(fakes.Response{Before: func() { // the first attempt's request is at the provider
		once.Do(func() { second, secondErr = f.acts.SendEmail(context.Background(), in) })
	}})
	first, err := f.acts.SendEmail(context.Background(), in)
	if secondErr != nil || second.Delivery != postgres.SendReconcile {
		t.Fatalf("concurrent attempt = %+v, %v; want reconcile without calling the provider", second, secondErr)
	}
	if err != nil || first.Delivery != postgres.SendSent {
		t.Fatalf("timed-out attempt = %+v, %v; want sent", first, err)
	}
	row, _ := f.st.GetSend(context.Background(), in.IdempotencyKey)
	if row.Status != postgres.SendSent {
		t.Fatalf("send row status = %s, want sent (the first attempt's answer settles it)", row.Status)
	}
	resend := in
	resend.Resend = true
	res, err := f.acts.SendEmail(context.Background(), resend)
	if err != nil || res.Delivery != postgres.SendSent {
		t.Fatalf("resend check = %+v, %v; want the message's sent outcome", res, err)
	}
	if n := f.sg.Accepted(in.IdempotencyKey); n != 1 || f.sg.RequestCount() != 1 {
		t.Fatalf("provider got %d requests, accepted %d; want 1 and 1", f.sg.RequestCount(), n)
	}
}

func TestSendWhoseAnswerIsLostIsNotRepeated(t *testing.T) {
	f := newFixture(t)
	in := sendInput(1, recoup.ChannelEmail)
	ctx, cancel := context.WithCancel(context.Background())
	f.sg.Always(fakes.Response{Hang: true, Before: cancel}) // the provider accepts the message, then the worker's call is cut off
	res, err := f.acts.SendEmail(ctx, in)
	if err != nil || res.Delivery != postgres.SendReconcile {
		t.Fatalf("first execution = %+v, %v; want reconcile", res, err)
	}
	f.sg.Always(fakes.Response{})
	res, err = f.acts.SendEmail(context.Background(), in)
	if err != nil || res.Delivery != postgres.SendReconcile {
		t.Fatalf("second execution = %+v, %v; want reconcile", res, err)
	}
	if n := f.sg.Accepted(in.IdempotencyKey); n != 1 || f.sg.RequestCount() != 1 {
		t.Fatalf("provider got %d requests, accepted %d; want 1 and 1", f.sg.RequestCount(), n)
	}
}

func TestProviderRejectionIsNotRetried(t *testing.T) {
	f := newFixture(t)
	f.sg.Queue(fakes.Response{Status: http.StatusBadRequest})
	in := sendInput(1, recoup.ChannelEmail)
	for i := range 2 {
		_, err := f.acts.SendEmail(context.Background(), in)
		if typ, nonRetryable := appErrType(err); typ != recoup.ErrTypeProviderRejected || !nonRetryable {
			t.Fatalf("attempt %d: error = %v, want non-retryable %s", i+1, err, recoup.ErrTypeProviderRejected)
		}
	}
	if f.sg.RequestCount() != 1 {
		t.Fatalf("provider got %d requests, want 1", f.sg.RequestCount())
	}
}

func TestProviderOutageIsRetriedAndSentOnce(t *testing.T) {
	f := newFixture(t)
	f.sg.Queue(fakes.Response{Status: http.StatusServiceUnavailable}, fakes.Response{Status: http.StatusTooManyRequests})
	in := sendInput(1, recoup.ChannelEmail)
	for i := range 2 {
		_, err := f.acts.SendEmail(context.Background(), in)
		if err == nil {
			t.Fatalf("attempt %d succeeded against a failing provider", i+1)
		}
		if _, nonRetryable := appErrType(err); nonRetryable {
			t.Fatalf("attempt %d: %v is non-retryable; 429/5xx must be retried", i+1, err)
		}
	}
	res, err := f.acts.SendEmail(context.Background(), in)
	if err != nil || res.Delivery != postgres.SendSent {
		t.Fatalf("third attempt = %+v, %v", res, err)
	}
	row, _ := f.st.GetSend(context.Background(), in.IdempotencyKey)
	if row.Attempts != 3 || f.sg.Accepted(in.IdempotencyKey) != 1 {
		t.Fatalf("attempts = %d, accepted = %d; want 3 and 1", row.Attempts, f.sg.Accepted(in.IdempotencyKey))
	}
}

func TestSendSMSOnceWithOptOutText(t *testing.T) {
	f := newFixture(t)
	in := sendInput(2, recoup.ChannelSMS)
	in.Decision.Message = "Your payment is still open."
	for range 2 {
		res, err := f.acts.SendSMS(context.Background(), in)
		if err != nil || res.Delivery != postgres.SendSent || !strings.HasPrefix(res.ProviderMessageID, "SM") {
			t.Fatalf("send = %+v, %v", res, err)
		}
	}
	if n := f.tw.Accepted(in.IdempotencyKey); n != 1 {
		t.Fatalf("Twilio accepted %d messages for the key, want 1", n)
	}
	body := smsBodies(f.tw)[0]
	for _, want := range []string{"Your payment is still open.", "https://pay.example/invoices/inv_1", "Reply STOP to opt out"} {
		if !strings.Contains(body, want) {
			t.Errorf("SMS %q lacks %q", body, want)
		}
	}
}

func TestInvalidPhoneIsPermanent(t *testing.T) {
	f := newFixture(t)
	f.tw.Always(twilioRejection(http.StatusBadRequest))
	_, err := f.acts.SendSMS(context.Background(), sendInput(1, recoup.ChannelSMS))
	if typ, nonRetryable := appErrType(err); typ != recoup.ErrTypeProviderRejected || !nonRetryable {
		t.Fatalf("error = %v, want non-retryable ProviderRejected", err)
	}
}

func TestNoConsentIsNotSent(t *testing.T) {
	f := newFixture(t)
	no := false
	f.customer(t, postgres.Customer{CustomerID: "cus_1", SMSConsentSet: &no, UpdatedAt: time.Now().Add(time.Minute)})
	_, err := f.acts.SendSMS(context.Background(), sendInput(1, recoup.ChannelSMS))
	if typ, nonRetryable := appErrType(err); typ != recoup.ErrTypeNotReachable || !nonRetryable {
		t.Fatalf("error = %v, want non-retryable NotReachable", err)
	}
	if len(smsBodies(f.tw)) != 0 {
		t.Fatal("an SMS went out without consent")
	}
}

func TestLogDeliveryModeStoresMessage(t *testing.T) {
	f := newFixture(t)
	f.acts.Email = nil
	in := sendInput(1, recoup.ChannelEmail)
	res, err := f.acts.SendEmail(context.Background(), in)
	if err != nil || res.Delivery != postgres.SendLogged {
		t.Fatalf("send = %+v, %v; want logged", res, err)
	}
	var body string
	if err := f.st.Pool().QueryRow(context.Background(), `SELECT body FROM sends WHERE idempotency_key = $1`, in.IdempotencyKey).Scan(&body); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "We could not charge your card.") || !strings.Contains(body, "https://pay.example/invoices/inv_1") {
		t.Fatalf("stored body = %q", body)
	}
	if f.sg.RequestCount() != 0 {
		t.Fatal("log mode called the provider")
	}
}

func TestIncentiveSentenceIsAdded(t *testing.T) {
	f := newFixture(t)
	in := sendInput(3, recoup.ChannelEmail)
	in.Decision.Incentive = recoup.Incentive{Kind: recoup.IncentiveDiscountPercent, Value: 10}
	in.OfferExpiresAt = time.Date(2026, 12, 13, 0, 0, 0, 0, time.UTC)
	if _, err := f.acts.SendEmail(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	text := f.sg.Last().JSON["content"].([]any)[0].(map[string]any)["value"].(string)
	if !strings.Contains(text, "10% off") || !strings.Contains(text, "December 13") {
		t.Fatalf("email lacks the offer:\n%s", text)
	}
}

// A settle that ingress recorded after the run started, and that has not reached the run
// yet (the relay is behind), stops the send: no provider call, a non-retryable
// InvoiceSettled error the workflow records as a skipped message.
func TestSendAfterARecordedSettleIsNotSent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.st.StartRun(ctx, wfID, "inv_1", "cus_1", time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.RecordEvent(ctx, postgres.Event{EventID: "evt_paid", Type: recoup.EventRecovered, Source: "test",
		InvoiceID: "inv_1", OccurredAt: time.Now().Add(-48 * time.Hour),
		Body: []byte(`{"type":"payment.recovered","event_id":"evt_paid","invoice_id":"inv_1"}`)}); err != nil {
		t.Fatal(err)
	}
	_, err := f.acts.SendEmail(ctx, sendInput(1, recoup.ChannelEmail))
	if typ, nonRetryable := appErrType(err); typ != recoup.ErrTypeSettled || !nonRetryable {
		t.Fatalf("error = %v, want non-retryable %s", err, recoup.ErrTypeSettled)
	}
	if f.sg.RequestCount() != 0 {
		t.Fatalf("SendGrid was called %d times after the invoice was settled", f.sg.RequestCount())
	}
}

// The recipient's display name is the customer's name only when it is a plain personal
// name: a name that is a link is not shown next to the company's sender.
func TestEmailDisplayNameIsNeverALink(t *testing.T) {
	f := newFixture(t)
	yes := true
	f.customer(t, postgres.Customer{CustomerID: "cus_1", Name: "www.pay-here.example", Email: "ada@example.com",
		Locale: "en-US", TimeZone: "America/New_York", EmailConsentSet: &yes, UpdatedAt: time.Now().Add(time.Minute)})
	if _, err := f.acts.SendEmail(context.Background(), sendInput(1, recoup.ChannelEmail)); err != nil {
		t.Fatal(err)
	}
	to := f.sg.Last().JSON["personalizations"].([]any)[0].(map[string]any)["to"].([]any)[0].(map[string]any)
	if name, ok := to["name"]; ok && name != "" {
		t.Errorf("recipient display name = %q, want none for a name that is a link", name)
	}
}
