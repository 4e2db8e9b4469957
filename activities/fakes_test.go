package activities_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/email"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/llm"
	"github.com/recoup-dunning/recoup/internal/sms"
	"github.com/recoup-dunning/recoup/internal/store"
	"github.com/recoup-dunning/recoup/internal/templates"
)

// sendGridFake is a SendGrid /v3/mail/send endpoint that checks the request the real
// sendgrid-go library sends and counts accepted messages per idempotency key.
type sendGridFake struct {
	t *testing.T
	*httptest.Server
	mu       sync.Mutex
	statuses []int  // answers to give in order; then 202
	hang     func() // when set, called instead of answering (simulates a lost answer)
	accepted map[string]int
	requests int
	last     map[string]any
}

func newSendGridFake(t *testing.T) *sendGridFake {
	f := &sendGridFake{t: t, accepted: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.handle))
	t.Cleanup(f.Close)
	return f
}

func (f *sendGridFake) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v3/mail/send" {
		f.t.Errorf("SendGrid fake: unexpected %s %s", r.Method, r.URL.Path)
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if got := r.Header.Get("Authorization"); got != "Bearer SG.test-key" {
		f.t.Errorf("SendGrid fake: Authorization = %q", got)
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		f.t.Errorf("SendGrid fake: body is not JSON: %v", err)
	}
	key := ""
	if ps, ok := body["personalizations"].([]any); ok && len(ps) == 1 {
		if ca, ok := ps[0].(map[string]any)["custom_args"].(map[string]any); ok {
			key, _ = ca["idempotency_key"].(string)
		}
	}
	if key == "" {
		f.t.Errorf("SendGrid fake: no personalizations[0].custom_args.idempotency_key in %v", body)
	}
	f.mu.Lock()
	f.requests++
	f.last = body
	status := http.StatusAccepted
	if len(f.statuses) > 0 {
		status, f.statuses = f.statuses[0], f.statuses[1:]
	}
	hang := f.hang
	if status == http.StatusAccepted {
		f.accepted[key]++
	}
	f.mu.Unlock()
	if hang != nil && status == http.StatusAccepted {
		hang()
		<-r.Context().Done()
		return
	}
	if status != http.StatusAccepted {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"errors":[{"message":"rejected by fake","field":"personalizations.0.to"}]}`)
		return
	}
	w.Header().Set("X-Message-Id", "sg-"+strings.ReplaceAll(key, "/", "-"))
	w.WriteHeader(status)
}

func (f *sendGridFake) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accepted[key]
}

// twilioFake is Twilio's Messages endpoint; it counts messages per idempotency key, read
// from the status callback URL the sender adds.
type twilioFake struct {
	t *testing.T
	*httptest.Server
	mu       sync.Mutex
	accepted map[string]int
	bodies   []string
	status   int
	requests int
}

func newTwilioFake(t *testing.T) *twilioFake {
	f := &twilioFake{t: t, accepted: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/2010-04-01/Accounts/ACtest/Messages.json" {
			f.t.Errorf("Twilio fake: unexpected path %s", r.URL.Path)
		}
		if err := r.ParseForm(); err != nil {
			f.t.Errorf("Twilio fake: %v", err)
		}
		cb, err := url.Parse(r.PostForm.Get("StatusCallback"))
		if err != nil {
			f.t.Errorf("Twilio fake: StatusCallback: %v", err)
		}
		key := cb.Query().Get("idempotency_key")
		f.mu.Lock()
		defer f.mu.Unlock()
		f.requests++
		if f.status != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.status)
			_, _ = io.WriteString(w, `{"code":21211,"message":"The 'To' number is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}`)
			return
		}
		f.accepted[key]++
		f.bodies = append(f.bodies, r.PostForm.Get("Body"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued","body":"x"}`)
	}))
	t.Cleanup(f.Close)
	return f
}

// openAIFake answers chat completions with a fixed assistant message and keeps requests.
type openAIFake struct {
	*httptest.Server
	mu       sync.Mutex
	content  string
	refusal  string
	status   int
	hang     bool
	requests []map[string]any
}

func newOpenAIFake(t *testing.T, content string) *openAIFake {
	f := &openAIFake{content: content}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chat/completions" {
			t.Errorf("OpenAI fake: unexpected path %s", r.URL.Path)
		}
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		f.requests = append(f.requests, body)
		status, content, refusal, hang := f.status, f.content, f.refusal, f.hang
		f.mu.Unlock()
		if hang {
			<-r.Context().Done()
			return
		}
		if status != 0 {
			w.WriteHeader(status)
			_, _ = io.WriteString(w, `{"error":{"message":"fake failure","type":"server_error","code":null}}`)
			return
		}
		msg := map[string]any{"role": "assistant", "content": content}
		if refusal != "" {
			msg = map[string]any{"role": "assistant", "content": nil, "refusal": refusal}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-fake-2026",
			"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": "stop"}},
			"usage":   map[string]any{"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
		})
	}))
	t.Cleanup(f.Close)
	return f
}

type fixture struct {
	acts *activities.Activities
	st   *store.Store
	sg   *sendGridFake
	tw   *twilioFake
}

// newFixture returns activities on a fresh PostgreSQL schema with the real SendGrid and
// Twilio clients pointed at fakes, and one customer (cus_1) who consented to both.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	st := fakes.MustStore(t)
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, sg: newSendGridFake(t), tw: newTwilioFake(t)}
	em, err := email.New(email.Config{APIKey: "SG.test-key", BaseURL: f.sg.URL, FromEmail: "billing@shop.example", FromName: "Shop", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := sms.New(sms.Config{AccountSID: "ACtest", AuthToken: "token", From: "+14155550100", BaseURL: f.tw.URL,
		StatusCallbackURL: "https://recoup.example/v1/twilio/status", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f.acts = &activities.Activities{
		Store: st, Prompts: func() *templates.Set { return set }, Email: em, SMS: tx,
		PaymentURL: "https://pay.example/invoices/{invoice_id}", UnsubscribeURL: "https://pay.example/unsub/{customer_id}",
		Clock: func() time.Time { return now }, // 10:00 in New York: inside cus_1's allowed hours
	}
	yes := true
	f.customer(t, store.Customer{CustomerID: "cus_1", Name: "Ada Lovelace", Email: "ada@example.com", Phone: "+14155550123",
		Locale: "en-US", TimeZone: "America/New_York", Plan: "pro", EmailConsentSet: &yes, SMSConsentSet: &yes})
	return f
}

func (f *fixture) customer(t *testing.T, c store.Customer) {
	t.Helper()
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = time.Now()
	}
	if _, err := f.st.UpsertCustomer(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) useLLM(t *testing.T, o *openAIFake, timeout time.Duration) {
	t.Helper()
	c, err := llm.New(llm.Config{APIKey: "sk-test", BaseURL: o.URL + "/v1", Model: "gpt-fake", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	f.acts.LLM = c
}
