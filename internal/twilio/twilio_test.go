package twilio_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/provider"
	"github.com/recoup-dunning/recoup/internal/twilio"
)

const (
	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "0123456789abcdef0123456789abcdef"
	serviceSID = "MG0123456789abcdef0123456789abcdef"
	from       = "+14155550100"
	to         = "+14155552671"
	sid        = "SM1f0e8ae6ade43cb3c0ce4525424e404f"
	path       = "/2010-04-01/Accounts/" + accountSID + "/Messages.json"
)

// created is a realistic 201 answer to a Messages create.
const created = `{"account_sid":"` + accountSID + `","api_version":"2010-04-01","body":"Your payment failed.",` +
	`"date_created":"Thu, 24 Aug 2023 05:01:45 +0000","date_sent":null,"date_updated":"Thu, 24 Aug 2023 05:01:45 +0000",` +
	`"direction":"outbound-api","error_code":null,"error_message":null,"from":"` + from + `","num_media":"0","num_segments":"1",` +
	`"price":null,"price_unit":"USD","messaging_service_sid":null,"sid":"` + sid + `","status":"queued",` +
	`"subresource_uris":{"media":"/2010-04-01/Accounts/` + accountSID + `/Messages/` + sid + `/Media.json"},` +
	`"to":"` + to + `","uri":"/2010-04-01/Accounts/` + accountSID + `/Messages/` + sid + `.json"}`

func config(baseURL string) twilio.Config {
	return twilio.Config{
		AccountSID:        accountSID,
		AuthToken:         authToken,
		From:              from,
		BaseURL:           baseURL,
		StatusCallbackURL: "https://hooks.recoup.example/v1/providers/twilio/status",
	}
}

func newSender(t *testing.T, cfg twilio.Config) *twilio.Sender {
	t.Helper()
	s, err := twilio.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func message() twilio.Message {
	return twilio.Message{To: to, Body: "Your payment failed.", IdempotencyKey: "inv_123:attempt-2:sms"}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*twilio.Config)
		wantErr string
	}{
		{"valid with From", func(*twilio.Config) {}, ""},
		{"valid with MessagingServiceSID", func(c *twilio.Config) { c.From, c.MessagingServiceSID = "", serviceSID }, ""},
		{"default BaseURL", func(c *twilio.Config) { c.BaseURL = "" }, ""},
		{"missing AccountSID", func(c *twilio.Config) { c.AccountSID = "" }, "sms: AccountSID is required"},
		{"missing AuthToken", func(c *twilio.Config) { c.AuthToken = "" }, "sms: AuthToken is required"},
		{"missing sender", func(c *twilio.Config) { c.From = "" }, "sms: From or MessagingServiceSID is required"},
		{"non-alphanumeric AuthToken", func(c *twilio.Config) { c.AuthToken = "abc:def" }, "sms: AuthToken must be alphanumeric"},
		{"relative BaseURL", func(c *twilio.Config) { c.BaseURL = "127.0.0.1:4011" }, "sms: BaseURL"},
		{"relative StatusCallbackURL", func(c *twilio.Config) { c.StatusCallbackURL = "/twilio/status" }, "sms: StatusCallbackURL"},
		{"no StatusCallbackURL", func(c *twilio.Config) { c.StatusCallbackURL = "" }, "sms: StatusCallbackURL is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config("http://127.0.0.1:4011")
			tt.mutate(&cfg)
			_, err := twilio.New(cfg)
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

// TestSendRequest asserts the exact request twilio-go sends on our behalf.
func TestSendRequest(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(*twilio.Config)
		wantForm url.Values
	}{
		{
			name:   "From with status callback",
			mutate: func(c *twilio.Config) { c.StatusCallbackURL = "https://hooks.recoup.example/twilio/status?tenant=acme" },
			wantForm: url.Values{
				"To":             {to},
				"From":           {from},
				"Body":           {"Your payment failed."},
				"StatusCallback": {"https://hooks.recoup.example/twilio/status?idempotency_key=inv_123%3Aattempt-2%3Asms&tenant=acme"},
			},
		},
		{
			name:   "messaging service with the default status callback",
			mutate: func(c *twilio.Config) { c.From, c.MessagingServiceSID = "", serviceSID },
			wantForm: url.Values{
				"To":                  {to},
				"MessagingServiceSid": {serviceSID},
				"Body":                {"Your payment failed."},
				"StatusCallback":      {"https://hooks.recoup.example/v1/providers/twilio/status?idempotency_key=inv_123%3Aattempt-2%3Asms"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tw := fakes.NewTwilio(t)
			tw.Always(fakes.Response{Status: http.StatusCreated, Body: created})

			cfg := config(tw.URL)
			tt.mutate(&cfg)
			got, err := newSender(t, cfg).Send(context.Background(), message())
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if got != sid {
				t.Errorf("SID = %q, want %q", got, sid)
			}
			if n := tw.RequestCount(); n != 1 {
				t.Fatalf("server saw %d requests, want 1", n)
			}
			r := tw.Last()
			if r.Method != http.MethodPost || r.Path != path || r.Query != "" {
				t.Errorf("request = %s %s?%s, want POST %s", r.Method, r.Path, r.Query, path)
			}
			if user, pass, ok := (&http.Request{Header: r.Header}).BasicAuth(); !ok || user != accountSID || pass != authToken {
				t.Errorf("basic auth = %q, %q, %v; want account SID and auth token", user, pass, ok)
			}
			if got := r.Header.Get("Content-Type"); got != "application/x-www-form-urlencoded" {
				t.Errorf("Content-Type = %q", got)
			}
			if !reflect.DeepEqual(r.Form, tt.wantForm) {
				t.Errorf("form = %v\nwant   %v", r.Form, tt.wantForm)
			}
		})
	}
}

// TestSendSurvivesEdgeAndRegion checks that twilio-go's edge/region host rewriting (driven
// by TWILIO_EDGE / TWILIO_REGION) does not escape the configured BaseURL.
func TestSendSurvivesEdgeAndRegion(t *testing.T) {
	t.Setenv("TWILIO_EDGE", "sydney")
	t.Setenv("TWILIO_REGION", "au1")
	tw := fakes.NewTwilio(t)
	tw.Always(fakes.Response{Status: http.StatusCreated, Body: created})

	if got, err := newSender(t, config(tw.URL)).Send(context.Background(), message()); err != nil || got != sid {
		t.Fatalf("Send = %q, %v; want %q, nil", got, err, sid)
	}
	if p := tw.Last().Path; p != path {
		t.Errorf("path = %q", p)
	}
}

func TestSendStatusClassification(t *testing.T) {
	twilioError := func(status, code int, msg string) string {
		return `{"code":` + itoa(code) + `,"message":"` + msg + `","more_info":"https://www.twilio.com/docs/errors/` + itoa(code) + `","status":` + itoa(status) + `}`
	}
	tests := []struct {
		status    int
		body      string
		code      string
		permanent bool
		wantMsg   string
	}{
		{400, twilioError(400, 21211, "The 'To' number "+to+" is not a valid phone number."), "21211", true,
			"The 'To' number [redacted] is not a valid phone number."},
		{400, twilioError(400, 21211, "The 'To' number +1555 is not a valid phone number."), "21211", true,
			"The 'To' number [redacted] is not a valid phone number."},
		{401, twilioError(401, 20003, "Authenticate"), "20003", true, "Authenticate"},
		{403, twilioError(403, 20008, "Resource not accessible with Test Account Credentials"), "20008", true,
			"Resource not accessible with Test Account Credentials"},
		{404, twilioError(404, 20404, "The requested resource was not found"), "20404", true, "The requested resource was not found"},
		{429, twilioError(429, 20429, "Too Many Requests"), "20429", false, "Too Many Requests"},
		{500, twilioError(500, 20500, "Internal Server Error"), "20500", false, "Internal Server Error"},
		{502, `<html>bad gateway</html>`, "", false, "Bad Gateway"},
		{503, `<html>upstream unavailable</html>`, "", false, "Service Unavailable"},
	}
	for _, tt := range tests {
		t.Run(itoa(tt.status)+tt.code, func(t *testing.T) {
			tw := fakes.NewTwilio(t)
			tw.Always(fakes.Response{Status: tt.status, Body: tt.body})

			_, err := newSender(t, config(tw.URL)).Send(context.Background(), message())
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error = %v (%T), want *provider.Error", err, err)
			}
			want := provider.Error{Provider: "twilio", StatusCode: tt.status, Code: tt.code, Message: tt.wantMsg, Permanent: tt.permanent,
				Unknown: provider.Ambiguous(tt.status)}
			if *pe != want {
				t.Errorf("error = %+v\nwant    %+v", *pe, want)
			}
			if provider.IsPermanent(err) != tt.permanent {
				t.Errorf("IsPermanent = %v, want %v", provider.IsPermanent(err), tt.permanent)
			}
			if errors.Is(err, provider.ErrOutcomeUnknown) != provider.Ambiguous(tt.status) {
				t.Errorf("ErrOutcomeUnknown = %v for HTTP %d, want it only for 500/502/504: %v", !provider.Ambiguous(tt.status), tt.status, err)
			}
			if strings.Contains(err.Error(), strings.TrimPrefix(to, "+")) {
				t.Errorf("error leaks the recipient: %v", err)
			}
		})
	}
}

func TestSendTimeoutIsOutcomeUnknown(t *testing.T) {
	tw := fakes.NewTwilio(t)
	tw.Always(fakes.Response{Hang: true}) // until the client gives up

	cfg := config(tw.URL)
	cfg.Timeout = 50 * time.Millisecond
	_, err := newSender(t, cfg).Send(context.Background(), message())
	if !errors.Is(err, provider.ErrOutcomeUnknown) {
		t.Fatalf("error = %v, want ErrOutcomeUnknown", err)
	}
	if provider.IsPermanent(err) {
		t.Errorf("timeout must not be permanent")
	}
}

func TestSendCanceledInFlightIsOutcomeUnknown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	tw := fakes.NewTwilio(t)
	// The request has been written; the caller gives up before the answer.
	tw.Always(fakes.Response{Hang: true, Before: cancel})

	_, err := newSender(t, config(tw.URL)).Send(ctx, message())
	if !errors.Is(err, provider.ErrOutcomeUnknown) {
		t.Fatalf("error = %v, want ErrOutcomeUnknown", err)
	}
}

func TestSendConnectionRefusedIsRetryable(t *testing.T) {
	tw := fakes.NewTwilio(t)
	base := tw.URL
	tw.Close() // nothing listens there any more

	_, err := newSender(t, config(base)).Send(context.Background(), message())
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Permanent || pe.StatusCode != 0 {
		t.Fatalf("error = %v, want retryable *provider.Error without status", err)
	}
	if errors.Is(err, provider.ErrOutcomeUnknown) {
		t.Errorf("connection refused must not be ErrOutcomeUnknown: %v", err)
	}
}

func TestSendDoneContextSendsNothing(t *testing.T) {
	tw := fakes.NewTwilio(t)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newSender(t, config(tw.URL)).Send(ctx, message())
	if !errors.Is(err, context.Canceled) || errors.Is(err, provider.ErrOutcomeUnknown) {
		t.Fatalf("error = %v, want context.Canceled and not ErrOutcomeUnknown", err)
	}
	if n := tw.RequestCount(); n != 0 {
		t.Errorf("server saw %d requests, want 0", n)
	}
}

func TestSendInvalidMessageIsPermanent(t *testing.T) {
	tests := []struct {
		name string
		to   string
		body string
	}{
		{"too short", "+1555", "hi"},
		{"no plus", "14155552671", "hi"},
		{"national format", "(415) 555-2671", "hi"},
		{"formatted international", "+1 415 555 2671", "hi"},
		{"not a number", "jane@example.com", "hi"},
		{"unassigned area code", "+15555552671", "hi"},
		{"empty", "", "hi"},
		{"empty body", to, ""},
	}
	tw := fakes.NewTwilio(t)
	s := newSender(t, config(tw.URL))

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Send(context.Background(), twilio.Message{To: tt.to, Body: tt.body})
			var pe *provider.Error
			if !errors.As(err, &pe) || !pe.Permanent || pe.Provider != "twilio" {
				t.Fatalf("error = %v, want permanent twilio *provider.Error", err)
			}
			if tt.to != "" && strings.Contains(err.Error(), tt.to) {
				t.Errorf("error leaks the recipient: %v", err)
			}
		})
	}
	if n := tw.RequestCount(); n != 0 {
		t.Errorf("server saw %d requests, want 0", n)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
