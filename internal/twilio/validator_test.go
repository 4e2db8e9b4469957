package twilio_test

import (
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/twilio"
)

// The signature vector twilio-go's own tests use (auth token 12345): the validator accepts
// it and refuses any change to the URL or a parameter, naming what to check.
func TestRequestValidatorChecksTwiliosSignature(t *testing.T) {
	v, err := twilio.NewRequestValidator("12345")
	if err != nil {
		t.Fatal(err)
	}
	const u, sig = "https://mycompany.com/myapp.php?foo=1&bar=2", "vOEb5UThFn24KEfnOFLQY2AE5FY="
	params := map[string]string{"Digits": "1234", "CallSid": "CA1234567890ABCDE", "To": "+18005551212",
		"Caller": "+14158675309", "From": "+14158675309", "ReasonConferenceEnded": "test", "Reason": "Participant"}
	if err := v.Validate(u, params, sig); err != nil {
		t.Fatalf("the documented vector: %v", err)
	}
	if err := v.Validate("https://internal:8080/myapp.php?foo=1&bar=2", params, sig); err == nil || !strings.Contains(err.Error(), "RECOUP_PUBLIC_BASE_URL") {
		t.Errorf("another URL: %v, want refused naming RECOUP_PUBLIC_BASE_URL", err)
	}
	params["Digits"] = "9999"
	if err := v.Validate(u, params, sig); err == nil {
		t.Error("a changed parameter was accepted")
	}
	if err := v.Validate(u, params, ""); err == nil || !strings.Contains(err.Error(), "missing X-Twilio-Signature") {
		t.Errorf("no signature: %v", err)
	}
	if _, err := twilio.NewRequestValidator(""); err == nil || !strings.Contains(err.Error(), "TWILIO_AUTH_TOKEN") {
		t.Errorf("empty token: %v", err)
	}
}
