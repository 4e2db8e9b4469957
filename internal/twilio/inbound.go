package twilio

import (
	"net/url"

	"github.com/twilio/twilio-go/client"
)

// SignatureValidator checks the X-Twilio-Signature of a webhook Twilio sent (status
// callbacks, inbound messages) with twilio-go's own RequestValidator: HMAC-SHA1 over the
// public URL Twilio called and the sorted form parameters, keyed with the auth token.
type SignatureValidator struct{ rv client.RequestValidator }

// NewSignatureValidator returns a validator for the account's auth token.
func NewSignatureValidator(authToken string) *SignatureValidator {
	return &SignatureValidator{rv: client.NewRequestValidator(authToken)}
}

// Valid reports whether signature signs a form POST to publicURL (the URL as Twilio called
// it, behind any proxy: scheme, host, path and query). A parameter sent twice keeps its
// first value, as Twilio sends each once.
func (v *SignatureValidator) Valid(publicURL string, form url.Values, signature string) bool {
	if signature == "" {
		return false
	}
	params := make(map[string]string, len(form))
	for k, vs := range form {
		if len(vs) > 0 {
			params[k] = vs[0]
		}
	}
	return v.rv.Validate(publicURL, params, signature)
}
