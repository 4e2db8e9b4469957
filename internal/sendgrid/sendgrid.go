// Package sendgrid sends dunning emails through the Twilio SendGrid v3 Mail Send API.
//
// The request is built by the official sendgrid-go library (helpers/mail for the body,
// sendgrid.GetRequest for URL and headers) and sent with a rest.Client whose http.Client
// carries the configured timeout, so the caller's context is honoured and nothing is
// retried behind the caller's back. Every failure is classified through package provider:
// a non-2xx answer becomes provider.FromStatus, a transport failure provider.Transport.
// Error messages never contain recipient addresses.
package sendgrid

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	netmail "net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/sendgrid/rest"
	"github.com/sendgrid/sendgrid-go"
	"github.com/sendgrid/sendgrid-go/helpers/mail"

	"github.com/recoup-dunning/recoup/internal/provider"
)

const (
	providerName   = "sendgrid"
	defaultBaseURL = "https://api.sendgrid.com"
	defaultTimeout = 10 * time.Second
	mailSendPath   = "/v3/mail/send"

	// IdempotencyKeyArg is the personalization custom_args key carrying Message.IdempotencyKey.
	// SendGrid echoes custom args in its event webhook.
	IdempotencyKeyArg = "idempotency_key"
)

// Config configures a Sender.
type Config struct {
	APIKey    string        // SENDGRID_API_KEY; required
	BaseURL   string        // default "https://api.sendgrid.com"; overridable for tests and mocks
	FromEmail string        // sender address; required
	FromName  string        // optional sender display name
	Timeout   time.Duration // whole-request HTTP timeout; default 10s
}

// Message is one email to one recipient.
type Message struct {
	To, ToName     string
	Subject        string
	Text, HTML     string   // bodies; each is sent when non-empty, text/plain first
	IdempotencyKey string   // sent as personalizations[0].custom_args.idempotency_key
	Categories     []string // optional SendGrid categories
}

// Sender sends Messages through SendGrid. It is safe for concurrent use.
type Sender struct {
	apiKey  string
	baseURL string
	from    *mail.Email
	client  *rest.Client
}

// New validates cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("email: APIKey is required")
	}
	if cfg.FromEmail == "" {
		return nil, errors.New("email: FromEmail is required")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = defaultBaseURL
	}
	if u, err := url.Parse(cfg.BaseURL); err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("email: BaseURL %q is not an absolute URL", cfg.BaseURL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	return &Sender{
		apiKey:  cfg.APIKey,
		baseURL: strings.TrimRight(cfg.BaseURL, "/"),
		from:    mail.NewEmail(cfg.FromName, cfg.FromEmail),
		client: &rest.Client{HTTPClient: &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			Timeout:   cfg.Timeout,
			// A redirect is answered as a non-2xx status rather than re-posting the mail.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}},
	}, nil
}

// Send sends m and returns SendGrid's message id (the X-Message-Id response header; "" when
// the answer has none). Errors are *provider.Error or wrap provider.ErrOutcomeUnknown,
// except for a context that is already done, which is returned wrapped and means nothing
// was sent. An invalid Message is a permanent *provider.Error and nothing is sent.
func (s *Sender) Send(ctx context.Context, m Message) (providerMessageID string, err error) {
	if err := validate(m); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("%s: not sent: %w", providerName, err)
	}

	req := sendgrid.GetRequest(s.apiKey, mailSendPath, s.baseURL)
	req.Method = rest.Post
	req.Body = mail.GetRequestBody(s.build(m))

	resp, err := s.client.SendWithContext(ctx, req)
	if err != nil && resp == nil {
		return "", provider.Transport(providerName, err)
	}
	// resp != nil: the status line arrived (err, if any, is a failure to read the body), so
	// the outcome is known from the status code alone.
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", provider.FromStatus(providerName, resp.StatusCode, "", errorMessage(resp))
	}
	return http.Header(resp.Headers).Get("X-Message-Id"), nil
}

// build maps m onto the SendGrid v3 mail body.
func (s *Sender) build(m Message) *mail.SGMailV3 {
	p := mail.NewPersonalization()
	p.AddTos(mail.NewEmail(m.ToName, m.To))
	if m.IdempotencyKey != "" {
		// Only the personalization's custom_args is an object of strings in SendGrid's spec.
		p.SetCustomArg(IdempotencyKeyArg, m.IdempotencyKey)
	}

	msg := mail.NewV3Mail()
	msg.SetFrom(s.from)
	msg.Subject = m.Subject
	msg.AddPersonalizations(p)
	if m.Text != "" {
		msg.AddContent(mail.NewContent("text/plain", m.Text))
	}
	if m.HTML != "" {
		msg.AddContent(mail.NewContent("text/html", m.HTML))
	}
	if len(m.Categories) > 0 {
		msg.AddCategories(m.Categories...)
	}
	return msg
}

func validate(m Message) error {
	var missing string
	switch {
	case m.To == "":
		missing = "To"
	case !ValidAddress(m.To):
		// Like twilio.Send's E.164 check: a stored address that is not one is never handed on.
		return &provider.Error{Provider: providerName, Message: "invalid message: To is not a valid email address", Permanent: true}
	case m.Subject == "":
		missing = "Subject"
	case m.Text == "" && m.HTML == "":
		missing = "Text or HTML"
	default:
		return nil
	}
	return &provider.Error{Provider: providerName, Message: "invalid message: " + missing + " is required", Permanent: true}
}

// sendGridErrors is SendGrid's error body: {"errors":[{"message":..,"field":..}]}.
type sendGridErrors struct {
	Errors []struct {
		Message string  `json:"message"`
		Field   *string `json:"field"`
	} `json:"errors"`
}

// errorMessage extracts the provider's messages from an error answer, with any email
// addresses removed; it falls back to the HTTP status text.
func errorMessage(resp *rest.Response) string {
	var body sendGridErrors
	if json.Unmarshal([]byte(resp.Body), &body) != nil || len(body.Errors) == 0 {
		return http.StatusText(resp.StatusCode)
	}
	parts := make([]string, 0, len(body.Errors))
	for _, e := range body.Errors {
		msg := e.Message
		if e.Field != nil && *e.Field != "" && *e.Field != "null" {
			msg = *e.Field + ": " + msg
		}
		parts = append(parts, msg)
	}
	return redact(strings.Join(parts, "; "))
}

var emailAddress = regexp.MustCompile(`[^\s"'<>(),;:@]+@[^\s"'<>(),;:@]+`)

// redact removes anything that looks like an email address from a provider message.
func redact(s string) string {
	return emailAddress.ReplaceAllString(s, "[redacted]")
}

// ValidAddress reports whether s is a bare email address (no display name), as the
// customer imports and event ingestion require.
func ValidAddress(s string) bool {
	a, err := netmail.ParseAddress(s)
	return err == nil && a.Address == s
}
