// Package twilio sends dunning text messages through Twilio Programmable Messaging with
// the official twilio-go client (api/v2010 CreateMessage); every failure is classified
// through package provider, and no error names the recipient. Transport details:
// docs/PACKAGES.md.
package twilio

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/recoup-dunning/recoup/internal/provider"
)

const (
	providerName   = "twilio"
	defaultBaseURL = "https://api.twilio.com"
	defaultTimeout = 10 * time.Second

	// IdempotencyKeyParam is the query parameter added to Config.StatusCallbackURL that
	// carries Message.IdempotencyKey back in Twilio's status callbacks.
	IdempotencyKeyParam = "idempotency_key"
)

// Config configures a Sender.
type Config struct {
	AccountSID          string        // TWILIO_ACCOUNT_SID; required
	AuthToken           string        // TWILIO_AUTH_TOKEN; required
	From                string        // E.164 sender number; or
	MessagingServiceSID string        // messaging service; one of From / MessagingServiceSID is required
	BaseURL             string        // default "https://api.twilio.com"; overridable for tests and mocks
	StatusCallbackURL   string        // required; sent per message with idempotency_key=<key> added
	Timeout             time.Duration // whole-request timeout; default 10s
}

// Message is one text message to one recipient.
type Message struct {
	To             string // recipient in E.164 form, e.g. +14155552671
	Body           string
	IdempotencyKey string // added to the status callback URL
}

// Sender sends Messages through Twilio. It is safe for concurrent use.
type Sender struct {
	cfg       Config
	base      *url.URL // nil when requests go to Twilio itself
	callback  *url.URL // the status callback; every message carries its key in it
	transport http.RoundTripper
}

// New validates cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	switch {
	case cfg.AccountSID == "":
		return nil, errors.New("sms: AccountSID is required")
	case cfg.AuthToken == "":
		return nil, errors.New("sms: AuthToken is required")
	case cfg.From == "" && cfg.MessagingServiceSID == "":
		return nil, errors.New("sms: From or MessagingServiceSID is required")
	case !alphanumeric(cfg.AccountSID):
		return nil, errors.New("sms: AccountSID must be alphanumeric")
	case !alphanumeric(cfg.AuthToken): // twilio-go refuses other credentials on every call
		return nil, errors.New("sms: AuthToken must be alphanumeric")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	s := &Sender{cfg: cfg, transport: http.DefaultTransport.(*http.Transport).Clone()}
	if cfg.BaseURL != "" && strings.TrimRight(cfg.BaseURL, "/") != defaultBaseURL {
		u, err := absoluteURL(cfg.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("sms: BaseURL: %w", err)
		}
		u.Path = strings.TrimRight(u.Path, "/")
		s.base = u
	}
	if cfg.StatusCallbackURL == "" {
		// Every SMS carries its idempotency key to Twilio in its status callback: the key is
		// how a send whose outcome is unknown is settled from Twilio's evidence.
		return nil, errors.New("sms: StatusCallbackURL is required (RECOUP_PUBLIC_BASE_URL): every SMS carries its idempotency key in Twilio's status callback")
	}
	u, err := absoluteURL(cfg.StatusCallbackURL)
	if err != nil {
		return nil, fmt.Errorf("sms: StatusCallbackURL: %w", err)
	}
	s.callback = u
	return s, nil
}

// Send sends m and returns the Twilio message SID. Errors are *provider.Error or wrap
// provider.ErrOutcomeUnknown, except for a context that is already done, which is returned
// wrapped and means nothing was sent. A To that is not a valid E.164 number, or an empty
// Body, is a permanent *provider.Error and nothing is sent.
func (s *Sender) Send(ctx context.Context, m Message) (messageSID string, err error) {
	if !isE164(m.To) {
		return "", &provider.Error{Provider: providerName, Message: "invalid message: To is not a valid E.164 phone number", Permanent: true}
	}
	if m.Body == "" {
		return "", &provider.Error{Provider: providerName, Message: "invalid message: Body is required", Permanent: true}
	}
	if m.IdempotencyKey == "" {
		return "", &provider.Error{Provider: providerName, Message: "invalid message: IdempotencyKey is required (it travels in the status callback)", Permanent: true}
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("%s: not sent: %w", providerName, err)
	}

	params := &openapi.CreateMessageParams{}
	params.SetTo(m.To)
	params.SetBody(m.Body)
	if s.cfg.From != "" {
		params.SetFrom(s.cfg.From)
	}
	if s.cfg.MessagingServiceSID != "" {
		params.SetMessagingServiceSid(s.cfg.MessagingServiceSID)
	}
	params.SetStatusCallback(s.statusCallback(m.IdempotencyKey))

	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel() // also releases connections of error answers twilio-go leaves unclosed
	rt := &roundTripper{ctx: ctx, base: s.base, next: s.transport}
	c := &client.Client{
		Credentials: client.NewCredentials(s.cfg.AccountSID, s.cfg.AuthToken),
		HTTPClient: &http.Client{
			Transport:     rt,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	c.SetAccountSid(s.cfg.AccountSID)

	msg, err := openapi.NewApiServiceWithClient(c).CreateMessage(params)
	return classify(msg, err, rt.status, m.To)
}

// classify turns CreateMessage's result and the HTTP status seen on the wire (0: no
// answer) into Send's result.
func classify(msg *openapi.ApiV2010Message, err error, status int, to string) (string, error) {
	var restErr *client.TwilioRestError
	switch {
	case errors.As(err, &restErr):
		if status == 0 { // raised by twilio-go itself before sending (e.g. bad credentials)
			status = restErr.Status
		}
		code := ""
		if restErr.Code != 0 {
			code = strconv.Itoa(restErr.Code)
		}
		return "", provider.FromStatus(providerName, status, code, redact(restErr.Message, to))
	case status == 0 && err != nil:
		return "", provider.Transport(providerName, err)
	case status < 200 || status > 299:
		// An error answer without Twilio's error body, or a 1xx/3xx twilio-go took for success.
		return "", provider.FromStatus(providerName, status, "", http.StatusText(status))
	case err != nil || msg == nil || msg.Sid == nil:
		// Twilio accepted the message but its answer could not be read: the message is
		// queued, only its SID is unknown. Reporting a failure would invite a duplicate.
		return "", nil
	}
	return *msg.Sid, nil
}

func (s *Sender) statusCallback(key string) string {
	u := *s.callback
	if key != "" {
		q := u.Query()
		q.Set(IdempotencyKeyParam, key)
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// roundTripper serves a single Send: it attaches the Send's context, redirects Twilio hosts
// to base, and remembers the last HTTP status received.
type roundTripper struct {
	ctx    context.Context
	base   *url.URL
	next   http.RoundTripper
	status int
}

func (t *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(t.ctx)
	if t.base != nil && isTwilioHost(r.URL.Hostname()) {
		r.URL.Scheme = t.base.Scheme
		r.URL.Host = t.base.Host
		r.URL.Path = t.base.Path + r.URL.Path
		r.URL.RawPath = ""
		r.Host = ""
	}
	resp, err := t.next.RoundTrip(r)
	if err == nil {
		t.status = resp.StatusCode
	}
	return resp, err
}

// isTwilioHost matches api.twilio.com and the edge/region forms twilio-go builds from it
// (e.g. api.sydney.au1.twilio.com).
func isTwilioHost(host string) bool {
	return host == "twilio.com" || strings.HasSuffix(host, ".twilio.com")
}

// isE164 reports whether s is a valid phone number written in E.164 form.
func isE164(s string) bool {
	if !strings.HasPrefix(s, "+") {
		return false
	}
	n, err := phonenumbers.Parse(s, "")
	return err == nil && phonenumbers.IsValidNumber(n) && phonenumbers.Format(n, phonenumbers.E164) == s
}

func absoluteURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute URL", raw)
	}
	return u, nil
}

func alphanumeric(s string) bool {
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// phoneLike matches +-prefixed numbers and long digit runs, however punctuated.
var phoneLike = regexp.MustCompile(`\+\d[\d\s().-]*\d|\+\d|\d[\d\s().-]{5,}\d`)

// redact removes the recipient's number, and anything that looks like a phone number, from
// a provider message.
func redact(msg, to string) string {
	if to != "" {
		msg = strings.ReplaceAll(msg, to, "[redacted]")
		msg = strings.ReplaceAll(msg, strings.TrimPrefix(to, "+"), "[redacted]")
	}
	return phoneLike.ReplaceAllString(msg, "[redacted]")
}
