// Package webhook sends outbound webhooks to the billing service, signed per the Standard
// Webhooks specification (https://www.standardwebhooks.com) with the reference library, so
// that the receiver can verify them with any Standard Webhooks implementation.
//
// A Sender makes exactly one attempt per Send. Retries belong to the caller (a Temporal
// activity retry policy); the caller passes the same Event.ID on every attempt, which the
// receiver uses to deduplicate, and decides whether to retry with provider.IsPermanent.
package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/recoup-dunning/recoup/internal/provider"
)

// DefaultTimeout bounds one Send when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// providerName is the provider.Error.Provider value of errors returned by Send.
const providerName = "webhook"

// ErrDisabled is returned by Send on a Sender without a URL. Check Enabled first.
var ErrDisabled = errors.New("webhook: BILLING_WEBHOOK_URL is not set")

// Config configures a Sender.
type Config struct {
	URL     string        // BILLING_WEBHOOK_URL; empty disables webhooks
	Secret  string        // BILLING_WEBHOOK_SECRET, "whsec_<base64>"; required when URL is set
	Timeout time.Duration // bound on one Send, default DefaultTimeout
}

// Event is one webhook message.
type Event struct {
	// ID is the webhook-id header: a stable idempotency id derived by the caller, the
	// same on every retry of the same message.
	ID      string
	Type    string // e.g. "dunning.exhausted", "dunning.offer"
	Payload any    // the "data" member of the body; must marshal to JSON
}

// body is the JSON body of every webhook, per the Standard Webhooks payload convention.
type body struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      any    `json:"data"`
}

// Sender signs and posts webhooks. It is safe for concurrent use.
type Sender struct {
	url     string
	signer  *standardwebhooks.Webhook
	timeout time.Duration
	client  *http.Client
}

// New returns a Sender for cfg. With an empty URL the Sender is disabled and the secret is
// not checked. Errors name the environment variable at fault.
func New(cfg Config) (*Sender, error) {
	if cfg.URL == "" {
		return &Sender{}, nil
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("webhook: BILLING_WEBHOOK_URL must be an absolute http(s) URL")
	}
	if cfg.Secret == "" {
		return nil, errors.New("webhook: BILLING_WEBHOOK_SECRET is required when BILLING_WEBHOOK_URL is set")
	}
	signer, err := standardwebhooks.NewWebhook(cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("webhook: BILLING_WEBHOOK_SECRET is not a valid whsec_<base64> secret: %w", err)
	}
	// NewWebhook accepts an empty key ("whsec_"); an empty HMAC key signs nothing.
	// (The spec recommends 24 to 64 random bytes.)
	if key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(cfg.Secret, "whsec_")); len(key) == 0 {
		return nil, errors.New("webhook: BILLING_WEBHOOK_SECRET has an empty key")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Sender{
		url:     cfg.URL,
		signer:  signer,
		timeout: cfg.Timeout,
		client: &http.Client{
			// A redirect is answered, not followed: following a 301/302 would turn the
			// POST into a GET and could report an undelivered webhook as delivered.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// Enabled reports whether a webhook URL is configured.
func (s *Sender) Enabled() bool { return s.url != "" }

// Send makes one signed POST of e, stamped with now (the webhook-timestamp header and the
// body's timestamp). A 2xx answer is success. Any other answer is a *provider.Error,
// Permanent for 4xx other than 408/429; errors before an answer are classified by
// provider.Transport.
func (s *Sender) Send(ctx context.Context, e Event, now time.Time) error {
	if !s.Enabled() {
		return ErrDisabled
	}
	if e.ID == "" || e.Type == "" {
		return errors.New("webhook: event needs an ID and a Type")
	}
	payload, err := json.Marshal(body{Type: e.Type, Timestamp: now.UTC().Format(time.RFC3339), Data: e.Payload})
	if err != nil {
		return fmt.Errorf("webhook: marshal %s payload: %w", e.Type, err)
	}
	signature, err := s.signer.Sign(e.ID, now, payload)
	if err != nil {
		return fmt.Errorf("webhook: sign: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("webhook: build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(standardwebhooks.HeaderWebhookID, e.ID)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, signature)

	resp, err := s.client.Do(req)
	if err != nil {
		return provider.Transport(providerName, err)
	}
	defer resp.Body.Close()
	// Drain a little so the connection can be reused; the receiver's body is not reported,
	// since it may echo the payload.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return provider.FromStatus(providerName, resp.StatusCode, "", "")
	}
	return nil
}
