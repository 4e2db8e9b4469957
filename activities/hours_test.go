package activities_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

func isType(err error, typ string) bool {
	got, _ := appErrType(err)
	return got == typ
}

// at sets the activities' clock.
func (f *fixture) at(t time.Time) { f.acts.Clock = func() time.Time { return t } }

// ny returns the instant of a wall-clock time in New York (cus_1's zone).
func ny(t *testing.T, s string) time.Time {
	t.Helper()
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRetriedSendAt2330LocalIsRefusedOutsideAllowedHours(t *testing.T) {
	for _, ch := range []recoup.Channel{recoup.ChannelEmail, recoup.ChannelSMS} {
		t.Run(string(ch), func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			w, err := f.acts.SendWindow(ctx, activities.SendWindowInput{CustomerID: "cus_1", Channel: ch, Now: ny(t, "2026-11-30 19:55")})
			if err != nil {
				t.Fatal(err)
			}
			in := sendInput(1, ch)
			in.NotBefore, in.NotAfter = w.NotBefore, w.NotAfter
			send, requests := f.acts.SendEmail, f.sg.RequestCount
			if ch == recoup.ChannelSMS {
				send, requests = f.acts.SendSMS, f.tw.RequestCount
				f.tw.Always(twilioRejection(http.StatusServiceUnavailable))
			} else {
				f.sg.Queue(fakes.Response{Status: http.StatusServiceUnavailable})
			}
			// 19:55: the provider is down; the attempt is released for a retry.
			f.at(ny(t, "2026-11-30 19:55"))
			if _, err := send(ctx, in); err == nil {
				t.Fatal("first attempt succeeded against a failing provider")
			}
			f.tw.Always(fakes.Response{})
			// Temporal's retry runs at 23:30 New York time.
			f.at(ny(t, "2026-11-30 23:30"))
			_, err = send(ctx, in)
			typ, nonRetryable := appErrType(err)
			if typ != recoup.ErrTypeOutsideAllowedHours || !nonRetryable {
				t.Fatalf("retry at 23:30: error = %v, want non-retryable %s", err, recoup.ErrTypeOutsideAllowedHours)
			}
			if !strings.Contains(err.Error(), "2026-12-01T04:30:00Z") || !strings.Contains(err.Error(), w.NotAfter.UTC().Format(time.RFC3339)) {
				t.Errorf("error %q does not say when the attempt was and when the window ended", err)
			}
			if n := requests(); n != 1 {
				t.Fatalf("the provider got %d requests, want 1: the retry at 23:30 reached it", n)
			}
			if row, _ := f.st.GetSend(ctx, in.IdempotencyKey); row.Status != postgres.SendRetry || row.Attempts != 1 {
				t.Fatalf("send row = %+v, want still released for retry after 1 attempt (nothing reserved)", row)
			}
			// The next window, asked at 23:30, is the next morning's; a send then goes out once.
			next, err := f.acts.SendWindow(ctx, activities.SendWindowInput{CustomerID: "cus_1", Channel: ch, Now: ny(t, "2026-11-30 23:30")})
			if err != nil || !next.NotBefore.Equal(ny(t, "2026-12-01 09:00")) || !next.NotAfter.Equal(ny(t, "2026-12-01 20:00")) {
				t.Fatalf("next window = %+v, %v; want 2026-12-01 09:00-20:00 New York", next, err)
			}
			in.NotBefore, in.NotAfter = next.NotBefore, next.NotAfter
			f.at(next.NotBefore)
			if res, err := send(ctx, in); err != nil || res.Delivery != postgres.SendSent {
				t.Fatalf("send in the next window = %+v, %v", res, err)
			}
		})
	}
}

func TestSendChecksAllowedHoursEvenWithoutAWindowAndNoOneOverridesSMSHours(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.acts.IgnoreQuietHours = true // demo setting; Twilio is configured
	f.at(ny(t, "2026-11-30 23:30"))
	// No NotBefore/NotAfter (a run decided before they existed): the customer's hours still hold for SMS.
	_, err := f.acts.SendSMS(ctx, sendInput(1, recoup.ChannelSMS))
	if !isType(err, recoup.ErrTypeOutsideAllowedHours) {
		t.Fatalf("SMS at 23:30 with IgnoreQuietHours: error = %v, want %s", err, recoup.ErrTypeOutsideAllowedHours)
	}
	if !strings.Contains(err.Error(), "09:00-20:00 in America/New_York") {
		t.Errorf("error %q does not name the hours and the zone", err)
	}
	if f.tw.RequestCount() != 0 {
		t.Fatal("Twilio was called at 23:30")
	}
	w, err := f.acts.SendWindow(ctx, activities.SendWindowInput{CustomerID: "cus_1", Channel: recoup.ChannelSMS, Now: ny(t, "2026-11-30 23:30")})
	if err != nil || !w.NotBefore.Equal(ny(t, "2026-12-01 09:00")) {
		t.Fatalf("SMS window with IgnoreQuietHours = %+v, %v; want the next morning", w, err)
	}
	// Email is the demo's to send at any time.
	if res, err := f.acts.SendEmail(ctx, sendInput(1, recoup.ChannelEmail)); err != nil || res.Delivery != postgres.SendSent {
		t.Fatalf("email at 23:30 with IgnoreQuietHours = %+v, %v; want sent", res, err)
	}
	// Without IgnoreQuietHours and without a window, email is held to the hours too.
	f.acts.IgnoreQuietHours = false
	_, err = f.acts.SendEmail(ctx, sendInput(2, recoup.ChannelEmail))
	if !isType(err, recoup.ErrTypeOutsideAllowedHours) {
		t.Fatalf("email at 23:30: error = %v, want %s", err, recoup.ErrTypeOutsideAllowedHours)
	}
	if f.sg.RequestCount() != 1 {
		t.Fatalf("SendGrid got %d requests, want 1 (the demo email)", f.sg.RequestCount())
	}
}

func TestRetryAfterTheWindowReturnsTheEarlierOutcome(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	in := sendInput(1, recoup.ChannelEmail)
	in.NotBefore, in.NotAfter = ny(t, "2026-11-30 09:00"), ny(t, "2026-11-30 20:00")
	f.at(ny(t, "2026-11-30 19:59"))
	first, err := f.acts.SendEmail(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	// The completion was lost; Temporal retries after the window closed.
	f.at(ny(t, "2026-11-30 20:01"))
	again, err := f.acts.SendEmail(ctx, in)
	if err != nil || again != first {
		t.Fatalf("retry after the window = %+v, %v; want the stored result %+v", again, err, first)
	}
	if n := f.sg.Accepted(in.IdempotencyKey); n != 1 {
		t.Fatalf("SendGrid accepted %d messages, want 1", n)
	}
}

func TestSendWindowWithoutTimeZoneIsInferredNotUTC(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	yes := true
	// No time_zone in the profiles: the store records UTC.
	f.customer(t, postgres.Customer{CustomerID: "cus_phone", Name: "Grace", Phone: "+14155550199", Locale: "en", SMSConsentSet: &yes})
	f.customer(t, postgres.Customer{CustomerID: "cus_us", Name: "Edsger", Email: "e@example.com", Locale: "en-US", EmailConsentSet: &yes})
	f.customer(t, postgres.Customer{CustomerID: "cus_none", Name: "Alan", Email: "a@example.com", EmailConsentSet: &yes})
	now := time.Date(2026, 11, 30, 16, 0, 0, 0, time.UTC) // 08:00 Pacific, 11:00 New York, 06:00 Hawaii
	pst := time.FixedZone("PST", -8*3600)
	for _, tt := range []struct {
		customer   string
		from, till time.Time
		zone       string
	}{
		// +1 415 is San Francisco: Pacific hours, not UTC's (which would allow 16:00 UTC).
		{"cus_phone", time.Date(2026, 11, 30, 9, 0, 0, 0, pst), time.Date(2026, 11, 30, 20, 0, 0, 0, pst), "inferred from phone number prefix: America/Los_Angeles"},
		// No zone, no phone, locale en-US: the hours common to every US zone, 09:00 in
		// Hawaii (19:00 UTC) to 20:00 in New York (01:00 UTC).
		{"cus_us", time.Date(2026, 11, 30, 19, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC), "inferred from locale region US: America/New_York"},
		// Nothing known: UTC, and the window says so.
		{"cus_none", now, time.Date(2026, 11, 30, 20, 0, 0, 0, time.UTC), "UTC (no valid time zone, phone number or locale region is known)"},
	} {
		w, err := f.acts.SendWindow(ctx, activities.SendWindowInput{CustomerID: tt.customer, Channel: recoup.ChannelEmail, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if !w.NotBefore.Equal(tt.from) || !w.NotAfter.Equal(tt.till) || !strings.HasPrefix(w.Zone, tt.zone) {
			t.Errorf("%s: window [%v, %v) in %q, want [%v, %v) in %q", tt.customer, w.NotBefore.UTC(), w.NotAfter.UTC(), w.Zone, tt.from.UTC(), tt.till.UTC(), tt.zone)
		}
	}
	// The decision records the same window, and an SMS attempt at 08:00 Pacific is refused.
	h, err := f.acts.FetchCustomerHistory(ctx, activities.FetchHistoryInput{WorkflowID: wfID, CustomerID: "cus_phone", InvoiceID: "inv_1", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.acts.DecideStrategy(ctx, activities.DecideInput{WorkflowID: wfID, InvoiceID: "inv_1", Step: 1, TotalSteps: 4, History: h,
		FailureCode: "card_declined", AmountMinor: 4900, Currency: "USD", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if d.Channel != recoup.ChannelSMS || !d.SendAt.Equal(time.Date(2026, 11, 30, 9, 0, 0, 0, pst)) || !d.SendUntil.Equal(time.Date(2026, 11, 30, 20, 0, 0, 0, pst)) {
		t.Fatalf("decision %s at [%v, %v), want SMS at 09:00-20:00 Pacific", d.Channel, d.SendAt, d.SendUntil)
	}
	in := sendInput(1, recoup.ChannelSMS)
	in.CustomerID = "cus_phone"
	f.at(now)
	if _, err := f.acts.SendSMS(ctx, in); !isType(err, recoup.ErrTypeOutsideAllowedHours) {
		t.Fatalf("SMS at 08:00 Pacific: error = %v, want %s", err, recoup.ErrTypeOutsideAllowedHours)
	}
	if f.tw.RequestCount() != 0 {
		t.Fatal("Twilio was called at 08:00 Pacific")
	}
}

func TestDecisionRecordsTheAllowedWindow(t *testing.T) {
	f := newFixture(t)
	in := decideInput(f, t)
	in.Now = ny(t, "2026-11-30 02:00")
	d, err := f.acts.DecideStrategy(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !d.SendAt.Equal(ny(t, "2026-11-30 09:00")) || !d.SendUntil.Equal(ny(t, "2026-11-30 20:00")) {
		t.Fatalf("decision window [%v, %v), want 09:00-20:00 New York", d.SendAt, d.SendUntil)
	}
	// Demo mode lifts email hours (no end recorded) but never SMS hours with Twilio configured.
	f.acts.IgnoreQuietHours = true
	if d, err = f.acts.DecideStrategy(context.Background(), in); err != nil || d.Channel != recoup.ChannelEmail || !d.SendAt.Equal(in.Now) || !d.SendUntil.IsZero() {
		t.Fatalf("email decision with IgnoreQuietHours = %s [%v, %v), %v; want now, unbounded", d.Channel, d.SendAt, d.SendUntil, err)
	}
	in.Excluded = []recoup.Channel{recoup.ChannelEmail}
	if d, err = f.acts.DecideStrategy(context.Background(), in); err != nil || d.Channel != recoup.ChannelSMS || !d.SendAt.Equal(ny(t, "2026-11-30 09:00")) {
		t.Fatalf("SMS decision with IgnoreQuietHours = %s at %v, %v; want 09:00 New York", d.Channel, d.SendAt, err)
	}
}

func TestSendToStoredAddressThatBecameInvalidIsNotReachable(t *testing.T) {
	for _, tt := range []struct {
		ch            recoup.Channel
		column, value string
	}{
		{recoup.ChannelEmail, "email", "ada.lovelace(at)example.com"},
		{recoup.ChannelEmail, "email", "Ada <ada@example.com>"},
		{recoup.ChannelSMS, "phone", "+1415555"},
	} {
		t.Run(tt.value, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			// Stored before addresses were validated on import, or changed in the database.
			if _, err := f.st.Pool().Exec(ctx, `UPDATE customers SET `+tt.column+` = $1 WHERE customer_id = 'cus_1'`, tt.value); err != nil {
				t.Fatal(err)
			}
			in := sendInput(1, tt.ch)
			send := f.acts.SendEmail
			if tt.ch == recoup.ChannelSMS {
				send = f.acts.SendSMS
			}
			_, err := send(ctx, in)
			if typ, nonRetryable := appErrType(err); typ != recoup.ErrTypeNotReachable || !nonRetryable {
				t.Fatalf("error = %v, want non-retryable %s", err, recoup.ErrTypeNotReachable)
			}
			if strings.Contains(err.Error(), tt.value) {
				t.Errorf("error %q repeats the stored address", err)
			}
			if f.sg.RequestCount() != 0 || f.tw.RequestCount() != 0 {
				t.Fatal("the provider was called")
			}
			if _, found, err := f.st.FindSend(ctx, in.IdempotencyKey); err != nil || found {
				t.Fatalf("a send was reserved (found=%v, %v)", found, err)
			}
		})
	}
}
