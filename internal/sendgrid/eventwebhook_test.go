package sendgrid_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/sendgrid"
)

func publicKey(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// The verification key is checked when it is configured, each refusal naming the variable;
// a body signed as SendGrid documents (ECDSA P-256 over timestamp + payload) verifies, and
// one changed by a byte does not.
func TestEventVerifierChecksSendGridsSignature(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, key := range map[string]string{"not base64": "%%%", "not a key": base64.StdEncoding.EncodeToString([]byte("nope")),
		"RSA": publicKey(t, &rsaKey.PublicKey), "P-384": publicKey(t, &p384.PublicKey)} {
		if _, err := sendgrid.NewEventVerifier(key); err == nil || !strings.Contains(err.Error(), "SENDGRID_WEBHOOK_PUBLIC_KEY") {
			t.Errorf("%s: %v, want refused naming SENDGRID_WEBHOOK_PUBLIC_KEY", name, err)
		}
	}
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v, err := sendgrid.NewEventVerifier(publicKey(t, &priv.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`[{"email":"example@test.com","event":"processed","sg_event_id":"rbtnWrG1DVDGGGFHFyun0A==","timestamp":1600112492}]` + "\r\n")
	ts := "1600112502"
	h := sha256.Sum256(append([]byte(ts), body...))
	sig, _ := ecdsa.SignASN1(rand.Reader, priv, h[:])
	hd := http.Header{}
	hd.Set("X-Twilio-Email-Event-Webhook-Signature", base64.StdEncoding.EncodeToString(sig))
	hd.Set("X-Twilio-Email-Event-Webhook-Timestamp", ts)
	if err := v.Verify(body, hd); err != nil {
		t.Fatalf("a correctly signed body: %v", err)
	}
	if err := v.Verify(body[:len(body)-1], hd); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("a body changed by a byte: %v", err)
	}
	hd.Set("X-Twilio-Email-Event-Webhook-Signature", "bm90IGFzbjE=")
	if err := v.Verify(body, hd); err == nil || !strings.Contains(err.Error(), "ASN.1") {
		t.Errorf("a malformed signature: %v", err)
	}
	if err := v.Verify(body, http.Header{}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("no headers: %v", err)
	}
}
