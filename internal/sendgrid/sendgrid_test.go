package sendgrid_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/provider"
	"github.com/recoup-dunning/recoup/internal/sendgrid"
)

const (
	testKey = "SG.test-key"
	to      = "jane.doe@example.com"
)

func newSender(t *testing.T, baseURL string, timeout time.Duration) *sendgrid.Sender {
	t.Helper()
	s, err := sendgrid.New(sendgrid.Config{
		APIKey:    testKey,
		BaseURL:   baseURL,
		FromEmail: "billing@recoup.example",
		FromName:  "Recoup Billing",
		Timeout:   timeout,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func message() sendgrid.Message {
	return sendgrid.Message{
		To:             to,
		ToName:         "Jane Doe",
		Subject:        "Your payment failed",
		Text:           "Please update your card.",
		HTML:           "<p>Please update your card.</p>",
		IdempotencyKey: "inv_123:attempt-2:email",
		Categories:     []string{"dunning", "reminder-1"},
	}
}

func TestNew(t *testing.T) {
	valid := sendgrid.Config{APIKey: "k", FromEmail: "billing@recoup.example"}
	tests := []struct {
		name    string
		mutate  func(*sendgrid.Config)
		wantErr string
	}{
		{"valid with defaults", func(*sendgrid.Config) {}, ""},
		{"missing APIKey", func(c *sendgrid.Config) { c.APIKey = "" }, "email: APIKey is required"},
		{"missing FromEmail", func(c *sendgrid.Config) { c.FromEmail = "" }, "email: FromEmail is required"},
		{"relative BaseURL", func(c *sendgrid.Config) { c.BaseURL = "api.sendgrid.com" }, "email: BaseURL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.mutate(&cfg)
			_, err := sendgrid.New(cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestSendRequest asserts the exact request the SendGrid library sends on our behalf.
func TestSendRequest(t *testing.T) {
	wantBody := map[string]any{
		"from":    map[string]any{"email": "billing@recoup.example", "name": "Recoup Billing"},
		"subject": "Your payment failed",
		"personalizations": []any{map[string]any{
			"to":          []any{map[string]any{"email": to, "name": "Jane Doe"}},
			"custom_args": map[string]any{"idempotency_key": "inv_123:attempt-2:email"},
		}},
		"content": []any{
			map[string]any{"type": "text/plain", "value": "Please update your card."},
			map[string]any{"type": "text/html", "value": "<p>Please update your card.</p>"},
		},
		"categories": []any{"dunning", "reminder-1"},
	}

	sg := fakes.NewSendGrid(t)
	sg.Always(fakes.Response{Header: http.Header{"X-Message-Id": {"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"}}})

	id, err := newSender(t, sg.URL, 0).Send(context.Background(), message())
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if id != "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0" {
		t.Errorf("message id = %q", id)
	}
	if n := sg.RequestCount(); n != 1 {
		t.Fatalf("server saw %d requests, want 1", n)
	}
	r := sg.Last()
	if r.Method != http.MethodPost || r.Path != "/v3/mail/send" || r.Query != "" {
		t.Errorf("request = %s %s?%s, want POST /v3/mail/send", r.Method, r.Path, r.Query)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+testKey {
		t.Errorf("Authorization = %q, want Bearer key", got)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
	if !reflect.DeepEqual(r.JSON, wantBody) {
		t.Errorf("body = %s\nwant   %v", r.Body, wantBody)
	}
}

func TestSendTextOnlyWithoutMessageID(t *testing.T) {
	sg := fakes.NewSendGrid(t)
	sg.Always(fakes.Response{Status: http.StatusOK, EmptyBody: true}) // any 2xx is a success

	m := message()
	m.HTML = ""
	id, err := newSender(t, sg.URL, 0).Send(context.Background(), m)
	if err != nil || id != "" {
		t.Fatalf("Send = %q, %v; want \"\", nil", id, err)
	}
	content, _ := sg.Last().JSON["content"].([]any)
	if len(content) != 1 || content[0].(map[string]any)["type"] != "text/plain" {
		t.Errorf("content = %+v, want only text/plain", content)
	}
}

func TestSendStatusClassification(t *testing.T) {
	tests := []struct {
		status    int
		body      string
		permanent bool
		wantMsg   string
	}{
		{400, `{"errors":[{"message":"Does not contain a valid address: ` + to + `","field":"personalizations.0.to.0.email"}]}`, true,
			"personalizations.0.to.0.email: Does not contain a valid address: [redacted]"},
		{401, `{"errors":[{"field":null,"message":"The provided authorization grant is invalid, expired, or revoked"}]}`, true,
			"The provided authorization grant is invalid, expired, or revoked"},
		{403, `{"errors":[{"field":"null","message":"access forbidden"}]}`, true, "access forbidden"},
		{404, `not json`, true, "Not Found"},
		{413, `{"errors":[{"message":"too big"}]}`, true, "too big"},
		{429, `{"errors":[{"field":null,"message":"too many requests"}]}`, false, "too many requests"},
		{500, `{"errors":[{"message":"internal error","field":null}]}`, false, "internal error"},
		{502, ``, false, "Bad Gateway"},
		{503, ``, false, "Service Unavailable"},
		{504, ``, false, "Gateway Timeout"},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			sg := fakes.NewSendGrid(t)
			sg.Always(fakes.Response{Status: tt.status, Body: tt.body, EmptyBody: tt.body == ""})

			_, err := newSender(t, sg.URL, 0).Send(context.Background(), message())
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error = %v (%T), want *provider.Error", err, err)
			}
			if pe.Provider != "sendgrid" || pe.StatusCode != tt.status || pe.Permanent != tt.permanent || pe.Message != tt.wantMsg {
				t.Errorf("error = %+v, want status %d permanent %v message %q", pe, tt.status, tt.permanent, tt.wantMsg)
			}
			if provider.IsPermanent(err) != tt.permanent {
				t.Errorf("IsPermanent = %v, want %v", provider.IsPermanent(err), tt.permanent)
			}
			if errors.Is(err, provider.ErrOutcomeUnknown) != provider.Ambiguous(tt.status) {
				t.Errorf("ErrOutcomeUnknown = %v for HTTP %d, want it only for 500/502/504: %v", !provider.Ambiguous(tt.status), tt.status, err)
			}
			if strings.Contains(err.Error(), to) {
				t.Errorf("error leaks the recipient: %v", err)
			}
		})
	}
}

func TestSendTimeoutIsOutcomeUnknown(t *testing.T) {
	sg := fakes.NewSendGrid(t)
	sg.Always(fakes.Response{Hang: true}) // until the client gives up

	_, err := newSender(t, sg.URL, 50*time.Millisecond).Send(context.Background(), message())
	if !errors.Is(err, provider.ErrOutcomeUnknown) {
		t.Fatalf("error = %v, want ErrOutcomeUnknown", err)
	}
	if provider.IsPermanent(err) {
		t.Errorf("timeout must not be permanent")
	}
	if strings.Contains(err.Error(), to) {
		t.Errorf("error leaks the recipient: %v", err)
	}
}

func TestSendConnectionRefusedIsRetryable(t *testing.T) {
	sg := fakes.NewSendGrid(t)
	url := sg.URL
	sg.Close() // nothing listens there any more

	_, err := newSender(t, url, 0).Send(context.Background(), message())
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Permanent || pe.StatusCode != 0 {
		t.Fatalf("error = %v, want retryable *provider.Error without status", err)
	}
	if errors.Is(err, provider.ErrOutcomeUnknown) {
		t.Errorf("connection refused must not be ErrOutcomeUnknown: %v", err)
	}
}

func TestSendDoneContextSendsNothing(t *testing.T) {
	sg := fakes.NewSendGrid(t)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newSender(t, sg.URL, 0).Send(ctx, message())
	if !errors.Is(err, context.Canceled) || errors.Is(err, provider.ErrOutcomeUnknown) {
		t.Fatalf("error = %v, want context.Canceled and not ErrOutcomeUnknown", err)
	}
	if n := sg.RequestCount(); n != 0 {
		t.Errorf("server saw %d requests, want 0", n)
	}
}

func TestSendInvalidMessageIsPermanent(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*sendgrid.Message)
	}{
		{"no recipient", func(m *sendgrid.Message) { m.To = "" }},
		{"recipient not an address", func(m *sendgrid.Message) { m.To = "jane.doe at example.com" }},
		{"recipient with a display name", func(m *sendgrid.Message) { m.To = "Jane <jane.doe@example.com>" }},
		{"no subject", func(m *sendgrid.Message) { m.Subject = "" }},
		{"no body", func(m *sendgrid.Message) { m.Text, m.HTML = "", "" }},
	}
	sg := fakes.NewSendGrid(t)
	s := newSender(t, sg.URL, 0)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := message()
			tt.mutate(&m)
			if _, err := s.Send(context.Background(), m); !provider.IsPermanent(err) {
				t.Fatalf("error = %v, want permanent", err)
			}
		})
	}
	if n := sg.RequestCount(); n != 0 {
		t.Errorf("server saw %d requests, want 0", n)
	}
}
