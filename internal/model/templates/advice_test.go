package templates_test

import (
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/templates"
)

func TestARetryPromiseRefusedByTheAdviceSaysWhyAndTheRulesPromiseNone(t *testing.T) {
	s := mustLoad(t)
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	adv := &recoup.RetryAdvice{DoNotRetry: true, Reason: "Recoup's budget of 8 attempts for the invoice is spent"}
	for _, lang := range []string{"en", "es", "de"} {
		for step := 1; step <= len(s.Policy.Rules); step++ {
			d := rulesFor(t, s, "stripe:insufficient_funds", lang, step, 2)
			f, _ := s.Decline("stripe:insufficient_funds", 2, 2)
			f = f.WithAdvice(adv, now)
			if v := s.Policy.CheckDeclineText("message", d.Message, f); len(v) != 0 {
				t.Errorf("%s step %d: rules message %q promises a retry: %q", lang, step, d.Message, v)
			}
		}
	}
	f, _ := s.Decline("stripe:insufficient_funds", 2, 2)
	v := s.Policy.CheckDeclineText("message", "We will retry the payment on Friday.", f.WithAdvice(adv, now))
	if len(v) != 1 || !strings.Contains(v[0], "advice: no retry (Recoup's budget of 8 attempts") {
		t.Fatalf("violations %q: want the retry promise refused, naming the advice", v)
	}
}

func TestTheRetryAdviceLine(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	at := time.Date(2026, 3, 6, 14, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		adv  *recoup.RetryAdvice
		tz   string
		want string
	}{
		{&recoup.RetryAdvice{RetryAt: at, Remaining: 3}, "America/New_York", "Billing will retry the payment at Fri 6 Mar 2026 09:00 EST (3 attempts left)."},
		{&recoup.RetryAdvice{RetryAt: at, Remaining: 1}, "Not/AZone", "Billing will retry the payment at Fri 6 Mar 2026 14:00 UTC (1 attempt left)."},
		{&recoup.RetryAdvice{DoNotRetry: true, Reason: "Visa budget spent (15 in 30 days)"}, "", "No further automatic retry: Visa budget spent (15 in 30 days)."},
		{&recoup.RetryAdvice{DoNotRetry: true, Reason: "code <x>\nnext"}, "", `No further automatic retry: code \u003cx\u003e next.`},
		{&recoup.RetryAdvice{RetryAt: now.Add(-time.Hour)}, "", "No further automatic retry: the advised retry is past."},
		{nil, "", "No further automatic retry: none advised yet."},
	} {
		if got := templates.RetryAdviceLine(c.adv, now, c.tz); got != c.want {
			t.Errorf("RetryAdviceLine(%+v, %q) = %q, want %q", c.adv, c.tz, got, c.want)
		}
	}
}
