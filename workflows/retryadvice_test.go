package workflows_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/webhook"
	"github.com/recoup-dunning/recoup/workflows"
)

// adviceHook records the webhooks the real AdviseRetry sends.
type adviceHook struct {
	mu     sync.Mutex
	events []webhook.Event
}

func (h *adviceHook) Enabled() bool { return true }
func (h *adviceHook) Send(_ context.Context, e webhook.Event, _ time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
	return nil
}

// A failed payment leads to one dunning.retry_advice webhook; billing's retry_failed counts
// against the budget and is advised on in turn; a redelivered retry_failed changes nothing.
func TestAFailureIsAdvisedOnceAndARetryFailedSpendsTheBudget(t *testing.T) {
	w := newWorld(t)
	w.input.Failure.FailureCode = "insufficient_funds"
	w.input.Failure.CardBIN = "424242"
	w.input.Failure.IssuerCountry = "US"
	w.input.Failure.Customer = &recoup.CustomerSnapshot{TimeZone: "America/New_York"}
	hook := &adviceHook{}
	acts := &activities.DunningActivities{Webhook: hook, ClassifyDecline: func(code string) recoup.DeclineClass {
		return map[string]recoup.DeclineClass{"insufficient_funds": recoup.DeclineInsufficientFunds, "try_again_later": recoup.DeclineIssuerUnavailable}[code]
	}}
	w.env.OnActivity(a.AdviseRetry, mock.Anything, mock.Anything).Return(acts.AdviseRetry)
	retryFailed := recoup.RetryResult{EventID: "evt_retry_1", AttemptID: "att_2", FailureCode: "try_again_later", OccurredAt: t0.Add(day)}
	w.at(day, recoup.SignalRetryResult, retryFailed)
	w.at(day+time.Hour, recoup.SignalRetryResult, retryFailed) // redelivered
	var afterFirst recoup.State
	w.env.RegisterDelayedCallback(func() {
		v, err := w.env.QueryWorkflow(recoup.QueryStatus)
		if err == nil {
			_ = v.Get(&afterFirst)
		}
	}, time.Hour)
	_, st := w.run()

	if afterFirst.Retry == nil || afterFirst.Retry.Advice == nil {
		t.Fatalf("no advice in the state an hour after the failure: %+v", afterFirst.Retry)
	}
	first := afterFirst.Retry.Advice
	ny, _ := time.LoadLocation("America/New_York")
	if first.Class != recoup.DeclineInsufficientFunds || first.DoNotRetry || first.RetryAt.In(ny).Hour() != 9 || first.Delivery != "sent" {
		t.Fatalf("first advice %+v: want insufficient_funds at 09:00 New York, sent", first)
	}
	if got := strings.Join(workflows.DetailLines(afterFirst), "\n"); !strings.Contains(got, "Retry advised at") {
		t.Errorf("details do not show the advice:\n%s", got)
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if len(hook.events) != 2 {
		t.Fatalf("%d retry-advice webhooks, want 2 (the failure, the retry_failed): %+v", len(hook.events), hook.events)
	}
	if e := hook.events[0]; e.Type != recoup.WebhookRetryAdvice || !strings.HasSuffix(e.ID, "/retry-advice/evt_first") {
		t.Errorf("first webhook %s %s", e.Type, e.ID)
	}
	second := st.Retry.Advice
	if len(st.Retry.Attempts) != 2 || st.Retry.Advised != 2 || second.FailureEventID != "evt_retry_1" ||
		second.Class != recoup.DeclineIssuerUnavailable || second.Remaining >= first.Remaining {
		t.Fatalf("after the retry_failed: %+v (advice %+v), want 2 attempts, 2 advices, less budget than %d", st.Retry, second, first.Remaining)
	}
}
