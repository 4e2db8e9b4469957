package twilio

import (
	"errors"

	"github.com/twilio/twilio-go/client"
)

// SignatureHeader carries Twilio's signature of a webhook request.
const SignatureHeader = "X-Twilio-Signature"

// RequestValidator checks X-Twilio-Signature on Twilio's webhooks (status callbacks,
// inbound messages) with twilio-go's own client.RequestValidator: HMAC-SHA1, keyed with the
// account's auth token, of the full URL Twilio requested followed by the POST parameters
// sorted by name.
type RequestValidator struct {
	v client.RequestValidator
}

// NewRequestValidator builds a validator for the account's auth token.
func NewRequestValidator(authToken string) (*RequestValidator, error) {
	if authToken == "" {
		return nil, errors.New("TWILIO_AUTH_TOKEN: required to verify Twilio's webhooks")
	}
	return &RequestValidator{v: client.NewRequestValidator(authToken)}, nil
}

// Validate checks the signature of a request to url (as the public saw it: scheme, host,
// path and query) with the form parameters params.
func (r *RequestValidator) Validate(url string, params map[string]string, signature string) error {
	if signature == "" {
		return errors.New("missing " + SignatureHeader + " header")
	}
	if !r.v.Validate(url, params, signature) {
		return errors.New(SignatureHeader + " does not match this URL and body for TWILIO_AUTH_TOKEN (is RECOUP_PUBLIC_BASE_URL the address Twilio calls?)")
	}
	return nil
}
