// Package provider classifies the outcome of a call to an external provider (SendGrid,
// Twilio, the outbound billing webhook): Permanent (rejected; never retry), Retryable (not
// taken; retry) or ErrOutcomeUnknown (maybe taken; reconcile from the provider's events).
// The rules: docs/PACKAGES.md.
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
	// Unknown: the answer does not say whether the provider accepted the message (500, 502,
	// 504). errors.Is(err, ErrOutcomeUnknown) is true for it.
	Unknown bool
}

// Is makes an ambiguous answer match ErrOutcomeUnknown.
func (e *Error) Is(target error) bool { return target == ErrOutcomeUnknown && e.Unknown }

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
		Unknown:    Ambiguous(status),
	}
}

// Ambiguous reports whether an HTTP status leaves open whether the provider accepted the
// request: 500 (the provider failed somewhere, possibly after accepting), 502 and 504 (a
// gateway lost or timed out waiting for the provider's answer). 503 and 429 say the request
// was not taken.
func Ambiguous(status int) bool {
	return status == 500 || status == 502 || status == 504
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
