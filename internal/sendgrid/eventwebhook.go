package sendgrid

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"
)

// EventVerifier checks the signature of SendGrid's signed Event Webhook: an ECDSA (P-256,
// SHA-256) signature over the timestamp header followed by the raw body, verified with the
// public key SendGrid shows for the webhook (SENDGRID_WEBHOOK_PUBLIC_KEY), by sendgrid-go's
// own eventwebhook.VerifySignature.
type EventVerifier struct {
	key *ecdsa.PublicKey
}

// NewEventVerifier parses the base64 DER public key SendGrid shows in the Event Webhook's
// signature settings. The error names what is wrong with it (never the key).
func NewEventVerifier(base64PublicKey string) (*EventVerifier, error) {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(base64PublicKey))
	if err != nil {
		return nil, errors.New("SENDGRID_WEBHOOK_PUBLIC_KEY: not base64 (paste the verification key SendGrid shows for the signed Event Webhook)")
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errors.New("SENDGRID_WEBHOOK_PUBLIC_KEY: not a DER-encoded public key")
	}
	// eventwebhook.ConvertPublicKeyBase64ToECDSA would panic on another key type.
	if k, ok := pub.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		return nil, errors.New("SENDGRID_WEBHOOK_PUBLIC_KEY: not an ECDSA P-256 public key")
	}
	key, err := eventwebhook.ConvertPublicKeyBase64ToECDSA(strings.TrimSpace(base64PublicKey))
	if err != nil {
		return nil, fmt.Errorf("SENDGRID_WEBHOOK_PUBLIC_KEY: %w", err)
	}
	return &EventVerifier{key: key}, nil
}

// Verify checks the body against the request's signature headers. Its error says what is
// wrong: a missing header, a malformed or a non-matching signature.
func (v *EventVerifier) Verify(body []byte, h http.Header) error {
	sig, ts := h.Get(eventwebhook.VerificationHTTPHeader), h.Get(eventwebhook.TimestampHTTPHeader)
	if sig == "" || ts == "" {
		return fmt.Errorf("missing %s or %s header (is the signed Event Webhook enabled?)",
			eventwebhook.VerificationHTTPHeader, eventwebhook.TimestampHTTPHeader)
	}
	ok, err := eventwebhook.VerifySignature(v.key, body, sig, ts)
	if err != nil {
		return fmt.Errorf("%s is not a base64 ASN.1 ECDSA signature", eventwebhook.VerificationHTTPHeader)
	}
	if !ok {
		return errors.New("the Event Webhook signature does not verify with SENDGRID_WEBHOOK_PUBLIC_KEY for this timestamp and body")
	}
	return nil
}
