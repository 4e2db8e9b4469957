// Package provider classifies the outcome of a call to an external provider (SendGrid,
// Twilio, the outbound billing webhook) so that the send activities can decide, without
// guessing, whether calling again could deliver a message twice.
//
// Three outcomes matter:
//   - the provider definitely rejected the request (HTTP 4xx other than 408/429): Permanent;
//     retrying cannot help and must not be done;
//   - the provider definitely did not accept it (HTTP 429/5xx, or the connection was never
//     established): Retryable; calling again cannot duplicate anything;
//   - we do not know (timeout or connection lost after the request was written):
//     ErrOutcomeUnknown; calling again could duplicate the message.
package provider

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// ErrOutcomeUnknown marks a call whose request may have reached the provider but whose
// answer was lost (timeout, connection reset). Calling again could send a second message.
var ErrOutcomeUnknown = errors.New("provider outcome unknown")

// Error is an answer from a provider that was not a success.
type Error struct {
	Provider   string // "sendgrid", "twilio", "webhook", "openai"
	StatusCode int    // HTTP status; 0 when no answer was received
	Code       string // provider error code when it gave one (e.g. Twilio 21211)
	Message    string // provider's message, never containing recipient data we add
	Permanent  bool   // true: retrying cannot succeed (4xx other than 408/429)
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s: HTTP %d", e.Provider, e.StatusCode)
	if e.Code != "" {
		s += " code " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// FromStatus builds the Error for a non-2xx HTTP answer.
func FromStatus(providerName string, status int, code, message string) *Error {
	return &Error{
		Provider:   providerName,
		StatusCode: status,
		Code:       code,
		Message:    message,
		Permanent:  status >= 400 && status < 500 && status != 408 && status != 429,
	}
}

// IsPermanent reports whether err is a definite rejection that retrying cannot fix.
func IsPermanent(err error) bool {
	var pe *Error
	return errors.As(err, &pe) && pe.Permanent
}

// Transport classifies an error returned by an HTTP client before any HTTP answer was read.
// A failure to connect (DNS, refused, unreachable) means the request never left: the
// returned error is retryable. Anything else (timeouts, resets, a canceled context after
// the request was written) may have delivered the request: the result wraps
// ErrOutcomeUnknown.
func Transport(providerName string, err error) error {
	if err == nil {
		return nil
	}
	if neverSent(err) {
		return &Error{Provider: providerName, Message: "could not connect: " + err.Error()}
	}
	return fmt.Errorf("%s: %w: %v", providerName, ErrOutcomeUnknown, err)
}

func neverSent(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	return false
}
