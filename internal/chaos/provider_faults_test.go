package chaos_test

// Chaos scenario "provider faults", in two parts that run side by side, each on a dev server
// of its own:
//
//   - sendgrid-outage: SendGrid answers every request with 503, or 429 with Retry-After,
//     for a sustained burst (30 s, CHAOS_PROVIDER_OUTAGE to change it) while 20 runs try to
//     send their first email. Every email must end up accepted exactly once, after retries
//     that back off (no message may see more rejected attempts than the send retry policy
//     allows in that time), and every run must have recorded its message as sent.
//   - twilio-invalid-number: Twilio answers HTTP 400 with code 21211 ("Invalid 'To' Phone
//     Number", Twilio's real error shape) for some customers' numbers. The model prefers SMS
//     whenever it is allowed, so step 1 goes by SMS: the rejected send must not be retried
//     (one request to Twilio for its key) and step 2 of those runs must go by email. Runs
//     whose number Twilio accepts keep using SMS.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/openai"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/internal/sendgrid"
	"github.com/recoup-dunning/recoup/internal/twilio"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

func TestProviderFaults(t *testing.T) {
	chaosOnly(t)
	t.Run("sendgrid-outage", func(t *testing.T) { t.Parallel(); providerOutage(t) })
	t.Run("twilio-invalid-number", func(t *testing.T) { t.Parallel(); providerInvalidNumber(t) })
}

// Send retry policy of the workflow (workflows/dunning.go sendActivity): the first retry
// after 2 s, each next one twice as late.
const (
	sendRetryInitial     = 2 * time.Second
	sendRetryCoefficient = 2
)

// maxAttemptsWithin is how many attempts of one send can start within d of its first under
// the send retry policy: attempt k (0-based) starts no earlier than 2 s × (2^k − 1) after the
// first. A send retried without backoff would exceed it.
func maxAttemptsWithin(d time.Duration) int {
	n, at, next := 0, time.Duration(0), sendRetryInitial
	for at < d {
		n++
		at += next
		next *= sendRetryCoefficient
	}
	return n
}

// sendGridOutage is the SendGrid fake told to reject every request until its outage ends
// (alternately 503, and 429 with Retry-After: answers that say the message was not taken;
// an ambiguous 500 would send it to reconcile instead); then it accepts. The fake records
// the time and idempotency key of every attempt.
type sendGridOutage struct {
	*fakes.SendGrid
	mu       sync.Mutex
	until    time.Time
	rejected map[string]int
	answers  map[int]int // status -> rejected attempts answered with it
}

func newSendGridOutage(t *testing.T) *sendGridOutage {
	p := &sendGridOutage{SendGrid: fakes.NewSendGrid(t), rejected: map[string]int{}, answers: map[int]int{}}
	p.Respond(p.answer)
	return p
}

func (p *sendGridOutage) start(d time.Duration) {
	p.mu.Lock()
	p.until = time.Now().Add(d)
	p.mu.Unlock()
}

func (p *sendGridOutage) answer(r fakes.Request) fakes.Response {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !r.At.Before(p.until) {
		return fakes.Response{}
	}
	total := 0
	for _, n := range p.rejected {
		total += n
	}
	p.rejected[r.Key]++
	if total%2 == 1 {
		p.answers[http.StatusTooManyRequests]++
		return fakes.Response{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"1"}},
			Body: `{"errors":[{"field":null,"message":"too many requests"}]}`}
	}
	p.answers[http.StatusServiceUnavailable]++
	return fakes.Response{Status: http.StatusServiceUnavailable, Body: `{"errors":[{"field":null,"message":"service unavailable"}]}`}
}

// attempts returns the times of the attempts per idempotency key.
func (p *sendGridOutage) attempts() map[string][]time.Time {
	at := map[string][]time.Time{}
	for _, r := range p.Requests() {
		at[r.Key] = append(at[r.Key], r.At)
	}
	return at
}

func providerOutage(t *testing.T) {
	const runs = 20
	outage := 30 * time.Second
	if v := os.Getenv("CHAOS_PROVIDER_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("CHAOS_PROVIDER_OUTAGE=%q: want a positive duration such as 30s", v)
		}
		outage = d
	}
	began := time.Now()
	prov := newSendGridOutage(t)
	sender, err := sendgrid.New(sendgrid.Config{APIKey: "SG.chaos", BaseURL: prov.URL, FromEmail: "billing@shop.example", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, 24 * time.Hour},
		Configure: func(a *activities.Activities) { a.Dunning.Email = sender }})
	ctx := context.Background()

	prov.start(outage) // every send from here on meets the outage first
	outageStart := time.Now()
	for i := range runs {
		ev := workertest.Failed(fmt.Sprintf("evt_po_%02d", i), fmt.Sprintf("inv_po_%02d", i), fmt.Sprintf("cus_po_%02d", i), time.Now().UTC())
		ev["customer"].(map[string]any)["sms_consent"] = false // email only
		if res := h.Event(ev); !res.Delivered {
			t.Fatalf("event %d not delivered: %+v", i, res)
		}
	}
	fakes.EventuallyWithin(t, outage+90*time.Second, func() bool {
		return len(prov.AcceptedKeys()) >= runs && sentFirst(t, h.Store) >= runs
	}, "every run's first email accepted by SendGrid and recorded as sent")
	recovered := time.Since(outageStart)

	attempts := prov.attempts()
	prov.mu.Lock()
	defer prov.mu.Unlock()
	dups, lost, rejected, minRej, maxRej := 0, 0, 0, -1, 0
	bound := maxAttemptsWithin(outage)
	var firstGaps, lastGaps []time.Duration
	for i := range runs {
		inv := fmt.Sprintf("inv_po_%02d", i)
		key := activities.IdempotencyKey(recoup.WorkflowID(inv), 1, recoup.ChannelEmail)
		switch n := prov.Accepted(key); {
		case n == 0:
			lost++
			t.Errorf("%s: SendGrid never accepted the first email", inv)
		case n > 1:
			dups++
			t.Errorf("%s: SendGrid accepted the first email %d times", inv, n)
		}
		r := prov.rejected[key]
		rejected += r
		if minRej < 0 || r < minRej {
			minRej = r
		}
		maxRej = max(maxRej, r)
		if r > bound {
			t.Errorf("%s: %d rejected attempts within the %s outage; the send retry policy (%s, doubling) allows at most %d — retries without backoff",
				inv, r, outage, sendRetryInitial, bound)
		}
		at := attempts[key]
		if len(at) >= 3 {
			firstGaps = append(firstGaps, at[1].Sub(at[0]))
			lastGaps = append(lastGaps, at[len(at)-1].Sub(at[len(at)-2]))
		}
		if st := h.State(inv); len(st.Messages) != 1 || st.Messages[0].Delivery != postgres.SendSent {
			t.Errorf("%s recorded messages %+v, want one sent", inv, st.Messages)
		}
	}
	if rejected == 0 {
		t.Errorf("SendGrid rejected no attempt: the outage did not meet the sends")
	}
	var sentRows int
	if err := h.Store.Pool().QueryRow(ctx, `SELECT count(*) FROM sends WHERE status = 'sent'`).Scan(&sentRows); err != nil {
		t.Fatal(err)
	}
	if sentRows != runs {
		t.Errorf("sends table: %d sent, want %d", sentRows, runs)
	}
	perMessage := fmt.Sprintf("%d–%d", minRej, maxRej)
	if minRej == maxRej {
		perMessage = strconv.Itoa(minRej)
	}
	line := fmt.Sprintf("provider-outage: SendGrid 503/429 for %s, %d runs, %d rejected attempts (%d×503, %d×429; %s per message, retry gaps %s→%s), %d emails accepted once, %d duplicates, %d lost",
		outage, runs, rejected, prov.answers[http.StatusServiceUnavailable], prov.answers[http.StatusTooManyRequests],
		perMessage, median(firstGaps).Round(100*time.Millisecond), median(lastGaps).Round(100*time.Millisecond),
		runs-dups-lost, dups, lost)
	t.Log(line)
	t.Logf("every first email accepted %s after the outage began (%s total)", recovered.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	fmt.Println(line)
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// allowedChannelsRe reads the allowed channels from the user prompt (prompts/user.tmpl).
var allowedChannelsRe = regexp.MustCompile(`allowed channels: ([a-z, ]*)`)

// smsFirst answers every decision validly: SMS whenever the prompt allows it, email
// otherwise. It keeps the allowed channels of every request.
type smsFirst struct {
	mu      sync.Mutex
	allowed []string
}

func (m *smsFirst) answer(r fakes.Request) fakes.Response {
	allowed := ""
	if mm := allowedChannelsRe.FindStringSubmatch(r.UserMessage()); mm != nil {
		allowed = strings.TrimSpace(mm[1])
	}
	m.mu.Lock()
	m.allowed = append(m.allowed, allowed)
	m.mu.Unlock()
	if slices.Contains(strings.Split(allowed, ", "), "sms") {
		return fakes.Reply(goodSMSAnswer)
	}
	return fakes.Reply(goodEmailAnswer)
}

func providerInvalidNumber(t *testing.T) {
	const (
		invalid = 4 // runs whose number Twilio refuses with 21211
		valid   = 2 // runs whose number Twilio accepts
	)
	phone := func(i int) string { return fmt.Sprintf("+1415555012%d", i) }
	// Twilio answers its real error for the invalid numbers (HTTP 400, code 21211) and
	// accepts the others.
	invalidNumber := map[string]bool{}
	for i := range invalid {
		invalidNumber[phone(i)] = true
	}
	tw := fakes.NewTwilio(t)
	tw.Respond(func(r fakes.Request) fakes.Response {
		if to := r.Form.Get("To"); invalidNumber[to] {
			return fakes.TwilioError(http.StatusBadRequest, 21211, "Invalid 'To' Phone Number: "+to)
		}
		return fakes.Response{}
	})
	requests := func(key string) int {
		n := 0
		for _, r := range tw.Requests() {
			if r.Key == key {
				n++
			}
		}
		return n
	}
	texter, err := twilio.New(twilio.Config{AccountSID: fakes.TwilioAccountSID, AuthToken: "chaos", From: "+14155550100", BaseURL: tw.URL,
		StatusCallbackURL: "https://recoup.example/v1/twilio/status", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	model := fakes.NewOpenAI(t, "")
	model.Respond((&smsFirst{}).answer)
	mc, err := openai.New(openai.Config{APIKey: "sk-chaos", BaseURL: model.BaseURL(), Model: "sms-first", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Two steps a second apart, then one far away: runs park after step 2.
	h := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, time.Second, 24 * time.Hour},
		Configure: func(a *activities.Activities) { a.Dunning.SMS, a.Dunning.LLM = texter, mc }})
	ctx := context.Background()
	inv := func(i int) string { return fmt.Sprintf("inv_pi_%d", i) }
	for i := range invalid + valid {
		ev := workertest.Failed(fmt.Sprintf("evt_pi_%d", i), inv(i), fmt.Sprintf("cus_pi_%d", i), time.Now().UTC())
		ev["customer"].(map[string]any)["phone"] = phone(i)
		if res := h.Event(ev); !res.Delivered {
			t.Fatalf("event %d not delivered: %+v", i, res)
		}
	}
	fakes.EventuallyWithin(t, 90*time.Second, func() bool {
		for i := range invalid + valid {
			if h.Messages(inv(i)) < 2 {
				return false
			}
		}
		return true
	}, "two messages recorded by every run")

	smsKey := func(i, step int) string {
		return activities.IdempotencyKey(recoup.WorkflowID(inv(i)), step, recoup.ChannelSMS)
	}
	emailKey := func(i, step int) string {
		return activities.IdempotencyKey(recoup.WorkflowID(inv(i)), step, recoup.ChannelEmail)
	}
	retried, switched := 0, 0
	for i := range invalid {
		st := h.State(inv(i))
		reqs, step2SMS := requests(smsKey(i, 1)), requests(smsKey(i, 2))
		if reqs != 1 {
			retried++
			t.Errorf("%s: Twilio received %d requests for the rejected SMS %s, want exactly 1 (a 21211 must not be retried)", inv(i), reqs, smsKey(i, 1))
		}
		var row struct{ status, err string }
		if err := h.Store.Pool().QueryRow(ctx, `SELECT status, error FROM sends WHERE idempotency_key = $1`, smsKey(i, 1)).Scan(&row.status, &row.err); err != nil {
			t.Fatalf("%s: send row of step 1: %v", inv(i), err)
		}
		if row.status != postgres.SendFailed || !strings.Contains(row.err, "21211") {
			t.Errorf("%s: step 1 send is %q (%s), want failed with Twilio code 21211", inv(i), row.status, row.err)
		}
		if strings.Contains(row.err, phone(i)) || strings.Contains(row.err, strings.TrimPrefix(phone(i), "+")) {
			t.Errorf("%s: the recorded error carries the phone number: %s", inv(i), row.err)
		}
		m := st.Messages
		if len(m) < 2 || m[0].Channel != recoup.ChannelSMS || m[0].Delivery != "failed" {
			t.Errorf("%s: messages %+v, want step 1 by SMS, failed", inv(i), m)
			continue
		}
		if m[1].Step != 2 || m[1].Channel != recoup.ChannelEmail || m[1].Delivery != postgres.SendSent || h.Mail.Accepted(emailKey(i, 2)) != 1 || step2SMS != 0 {
			t.Errorf("%s: step 2 is %+v (email accepted %d times, SMS requests %d), want one email, sent", inv(i), m[1], h.Mail.Accepted(emailKey(i, 2)), step2SMS)
			continue
		}
		switched++
	}
	for i := invalid; i < invalid+valid; i++ {
		m := h.State(inv(i)).Messages
		a1, a2 := tw.Accepted(smsKey(i, 1)), tw.Accepted(smsKey(i, 2))
		if len(m) < 2 || m[0].Channel != recoup.ChannelSMS || m[1].Channel != recoup.ChannelSMS || a1 != 1 || a2 != 1 {
			t.Errorf("%s (valid number): messages %+v, Twilio accepted %d and %d; want both steps by SMS, each accepted once", inv(i), m, a1, a2)
		}
	}
	var llmDecisions int
	if err := h.Store.Pool().QueryRow(ctx, `SELECT count(*) FROM decisions WHERE decided_by = 'llm'`).Scan(&llmDecisions); err != nil {
		t.Fatal(err)
	}
	if want := 2 * (invalid + valid); llmDecisions != want {
		t.Errorf("%d decisions by the model, want %d (the model's valid answer at every step)", llmDecisions, want)
	}
	line := fmt.Sprintf("provider-twilio-21211: %d runs with a number Twilio rejects (HTTP 400, code 21211): %d SMS retried, %d switched to email at step 2; %d runs with a valid number stayed on SMS",
		invalid, retried, switched, valid)
	t.Log(line)
	fmt.Println(line)
}

// Answers of the OpenAI-compatible fakes that pass the policy.
var (
	goodEmailAnswer = mustJSON(map[string]any{"channel": "email", "tone": "friendly",
		"incentive": map[string]any{"kind": "none", "value": 0}, "subject": "Your payment did not go through",
		"message": "We could not charge your card. Updating it takes a minute.", "rationale": "First reminder, friendly."})
	goodSMSAnswer = mustJSON(map[string]any{"channel": "sms", "tone": "friendly",
		"incentive": map[string]any{"kind": "none", "value": 0}, "subject": "",
		"message": "We could not charge your card. Updating it takes a minute.", "rationale": "The customer reads texts."})
)

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
