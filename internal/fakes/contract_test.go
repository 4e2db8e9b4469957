package fakes_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/openai"
	"github.com/recoup-dunning/recoup/internal/sendgrid"
	"github.com/recoup-dunning/recoup/internal/twilio"
)

// spyTB stands in for the test a fake reports to, keeping its errors instead of failing.
type spyTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (s *spyTB) Errorf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, fmt.Sprintf(format, args...))
}

func (s *spyTB) errors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.errs...)
}

// post sends a raw request to a fake and returns the status.
func post(t *testing.T, url, contentType, auth, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// wantRefused checks that the fake answered 400, reported the broken contract to its test
// and recorded the violation.
func wantRefused(t *testing.T, spy *spyTB, status int, last fakes.Request, field string) {
	t.Helper()
	if status != http.StatusBadRequest {
		t.Errorf("status %d, want 400 for a request that breaks the contract", status)
	}
	errs := spy.errors()
	if len(errs) != 1 || !strings.Contains(errs[0], "breaks the provider's contract") {
		t.Errorf("errors reported to the test: %q, want one contract violation", errs)
	}
	t.Logf("refused: %v", last.Violation)
	if last.Violation == nil || !strings.Contains(last.Violation.Error(), field) {
		t.Errorf("violation %v, want one naming %q", last.Violation, field)
	}
}

func TestSendGridContractAcceptsTheRealClientsMailAndRefusesOneWithoutFrom(t *testing.T) {
	sg := fakes.NewSendGrid(t)
	s, err := sendgrid.New(sendgrid.Config{APIKey: "SG.contract", BaseURL: sg.URL, FromEmail: "billing@recoup.example", FromName: "Recoup Billing"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Send(context.Background(), sendgrid.Message{To: "jane@example.com", ToName: "Jane Doe", Subject: "Your payment failed",
		Text: "Please update your card.", HTML: "<p>Please update your card.</p>", IdempotencyKey: "inv_1/1/email", Categories: []string{"dunning"}})
	if err != nil {
		t.Fatalf("the real client's mail was refused: %v", err)
	}
	if id != "sg-inv_1-1-email" || sg.Accepted("inv_1/1/email") != 1 {
		t.Errorf("message id %q, accepted %d; want sg-inv_1-1-email and 1", id, sg.Accepted("inv_1/1/email"))
	}

	spy := &spyTB{TB: t}
	broken := fakes.NewSendGrid(spy)
	status := post(t, broken.URL+"/v3/mail/send", "application/json", "Bearer SG.contract",
		`{"personalizations":[{"to":[{"email":"jane@example.com"}]}],"subject":"x","content":[{"type":"text/plain","value":"x"}]}`)
	wantRefused(t, spy, status, broken.Last(), "from")
	if broken.AcceptedTotal() != 0 {
		t.Errorf("the fake accepted a message that breaks the contract")
	}
}

func TestTwilioContractAcceptsTheRealClientsMessageAndRefusesOneWithoutTo(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, ms string
	}{{"From", "+14155550100", ""}, {"MessagingServiceSid", "", fakes.TwilioServiceSID}} {
		t.Run(tc.name, func(t *testing.T) {
			tw := fakes.NewTwilio(t)
			s, err := twilio.New(twilio.Config{AccountSID: fakes.TwilioAccountSID, AuthToken: "token", From: tc.from, MessagingServiceSID: tc.ms,
				BaseURL: tw.URL, StatusCallbackURL: "https://hooks.recoup.example/twilio/status", Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			sid, err := s.Send(context.Background(), twilio.Message{To: "+14155550123", Body: "Your card was declined.", IdempotencyKey: "inv_1/1/sms"})
			if err != nil {
				t.Fatalf("the real client's message was refused: %v", err)
			}
			if !strings.HasPrefix(sid, "SM") || tw.Accepted("inv_1/1/sms") != 1 {
				t.Errorf("SID %q, accepted %d; want SM… and 1", sid, tw.Accepted("inv_1/1/sms"))
			}
		})
	}

	spy := &spyTB{TB: t}
	broken := fakes.NewTwilio(spy)
	status := post(t, broken.URL+"/2010-04-01/Accounts/"+fakes.TwilioAccountSID+"/Messages.json", "application/x-www-form-urlencoded",
		"Basic QUMwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDp0b2tlbg==", "From=%2B14155550100&Body=hi")
	wantRefused(t, spy, status, broken.Last(), "To")
}

func TestOpenAIContractAcceptsTheRealClientsCompletionAndRefusesOneWithoutMessages(t *testing.T) {
	oa := fakes.NewOpenAI(t, `{"action":"wait"}`)
	c, err := openai.New(openai.Config{APIKey: "sk-contract", BaseURL: oa.BaseURL(), Model: "gpt-fake", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Complete(context.Background(), openai.Request{System: "You decide the next dunning step.", User: "Invoice 42 failed.",
		SchemaName: "decision", Schema: json.RawMessage(`{"type":"object","properties":{"action":{"type":"string"}},"required":["action"],"additionalProperties":false}`),
		Temperature: 0.2, MaxTokens: 200})
	if err != nil {
		t.Fatalf("the real client's completion was refused: %v", err)
	}
	if resp.Content != `{"action":"wait"}` {
		t.Errorf("content %q", resp.Content)
	}

	spy := &spyTB{TB: t}
	broken := fakes.NewOpenAI(spy, "")
	status := post(t, broken.BaseURL()+"/chat/completions", "application/json", "Bearer sk-contract", `{"model":"gpt-fake"}`)
	wantRefused(t, spy, status, broken.Last(), "messages")
}

func TestContractsRefuseRequestsWithoutCredentials(t *testing.T) {
	spy := &spyTB{TB: t}
	sg := fakes.NewSendGrid(spy)
	status := post(t, sg.URL+"/v3/mail/send", "application/json", "",
		`{"personalizations":[{"to":[{"email":"jane@example.com"}]}],"from":{"email":"billing@recoup.example"}}`)
	wantRefused(t, spy, status, sg.Last(), "security")
}

// The mistakes the providers' documents warn about (../shared/specs/README.md) are refused.
func TestContractsRefuseKnownMistakes(t *testing.T) {
	const sgAuth, twAuth = "Bearer SG.contract", "Basic QUMwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDp0b2tlbg=="
	for _, tc := range []struct {
		name, field string
		start       func(testing.TB) string // the fake's URL
		path, ct    string
		auth, body  string
	}{
		{"SendGrid top-level custom_args", "custom_args", func(tb testing.TB) string { return fakes.NewSendGrid(tb).URL }, "/v3/mail/send", "application/json", sgAuth,
			`{"personalizations":[{"to":[{"email":"jane@example.com"}]}],"from":{"email":"billing@recoup.example"},"subject":"x","content":[{"type":"text/plain","value":"x"}],"custom_args":{"idempotency_key":"k"}}`},
		{"SendGrid recipient not an address", "email", func(tb testing.TB) string { return fakes.NewSendGrid(tb).URL }, "/v3/mail/send", "application/json", sgAuth,
			`{"personalizations":[{"to":[{"email":"jane at example.com"}]}],"from":{"email":"billing@recoup.example"},"subject":"x","content":[{"type":"text/plain","value":"x"}]}`},
		{"Twilio without an account SID in the path", "AccountSid", func(tb testing.TB) string { return fakes.NewTwilio(tb).URL }, "/2010-04-01/Accounts//Messages.json", "application/x-www-form-urlencoded", twAuth,
			"To=%2B14155550123&From=%2B14155550100&Body=hi"},
		{"Twilio To not E.164", "To", func(tb testing.TB) string { return fakes.NewTwilio(tb).URL }, "/2010-04-01/Accounts/" + fakes.TwilioAccountSID + "/Messages.json", "application/x-www-form-urlencoded", twAuth,
			"To=4155550123&From=%2B14155550100&Body=hi"},
		{"Twilio without a sender (From or MessagingServiceSid)", "doesn't match any schema", func(tb testing.TB) string { return fakes.NewTwilio(tb).URL }, "/2010-04-01/Accounts/" + fakes.TwilioAccountSID + "/Messages.json", "application/x-www-form-urlencoded", twAuth,
			"To=%2B14155550123&Body=hi"},
		{"OpenAI unknown role", "role", func(tb testing.TB) string { return fakes.NewOpenAI(tb, "").BaseURL() }, "/chat/completions", "application/json", "Bearer sk-contract",
			`{"model":"m","messages":[{"role":"robot","content":"hi"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spy := &spyTB{TB: t}
			url := tc.start(spy)
			status := post(t, url+tc.path, tc.ct, tc.auth, tc.body)
			if status != http.StatusBadRequest && status != http.StatusNotFound {
				t.Errorf("status %d, want a refusal", status)
			}
			errs := spy.errors()
			if len(errs) != 1 || !strings.Contains(errs[0], "breaks the provider's contract") {
				t.Fatalf("errors reported to the test: %q, want one contract violation", errs)
			}
			if !strings.Contains(errs[0], tc.field) && !strings.Contains(errs[0], "Accounts//") {
				t.Errorf("violation %q does not name %q", errs[0], tc.field)
			}
			t.Logf("refused: %s", errs[0])
		})
	}
}
