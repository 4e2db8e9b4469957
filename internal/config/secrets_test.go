package config_test

import (
	"encoding/base64"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/config"
)

// Made for these tests (base64 of 32 random bytes), never used anywhere else.
const (
	testWebhookSecret = "whsec_4xq8TDpQ0yjmw7mSbKfhQ1S6lJ7O3jyJ1nUe0Kc9ZQk="
	testStripeSecret  = "whsec_7Yk3pQa9Lm2Xc8Rt5Vb1Nz4Hs6Jd0Fg"
	testToken         = "pJ3kL9vQ2xR7mN5bT8wZ1cY4hF6gD0sA"
	testCodecKey      = "k1:3q2+7w8Yh0aZk1L5n9Pz4Rt6Vx2Cb8Md1Fg3Hj5Kl7o="
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// secretProblems runs FromEnv with name=value and returns the error text ("" when accepted).
func secretProblem(t *testing.T, name, value string, extra ...string) string {
	t.Helper()
	e := map[string]string{name: value}
	for i := 0; i+1 < len(extra); i += 2 {
		e[extra[i]] = extra[i+1]
	}
	_, err := config.FromEnv(env(e))
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestWellFormedSecretsAreAccepted(t *testing.T) {
	_, err := config.FromEnv(env(map[string]string{
		"WEBHOOK_SECRETS":        testWebhookSecret + ", whsec_" + b64([]byte("0123456789abcdefghijklmnopqrstuv")),
		"STRIPE_WEBHOOK_SECRETS": testStripeSecret,
		"BILLING_WEBHOOK_URL":    "https://billing.test/hook",
		"BILLING_WEBHOOK_SECRET": testWebhookSecret,
		"ALERT_WEBHOOK_URL":      "https://oncall.test/hook",
		"ALERT_WEBHOOK_SECRET":   testWebhookSecret,
		"RECOUP_CODEC_KEYS":      testCodecKey,
		"CODEC_AUTH_TOKEN":       testToken,
		"DATABASE_URL":           "postgres://recoup:" + testToken + "@db:5432/recoup",
	}))
	if err != nil {
		t.Fatalf("FromEnv refused good secrets: %v", err)
	}
}

// WEBHOOK_SECRETS=whsec_ let anyone sign events: an HMAC with an empty key.
func TestEmptyWebhookSecretKeyRefusedAtStartup(t *testing.T) {
	for _, name := range []string{"WEBHOOK_SECRETS", "BILLING_WEBHOOK_SECRET", "ALERT_WEBHOOK_SECRET"} {
		msg := secretProblem(t, name, "whsec_")
		if !strings.Contains(msg, name) || !strings.Contains(msg, "empty key") {
			t.Errorf("%s=whsec_: error %q, want one naming %s and the empty key", name, msg, name)
		}
	}
	// The second of two rotated secrets is empty: still refused, and the entry is named.
	msg := secretProblem(t, "WEBHOOK_SECRETS", testWebhookSecret+",whsec_")
	if !strings.Contains(msg, "WEBHOOK_SECRETS (secret 2)") || !strings.Contains(msg, "empty key") {
		t.Errorf("error %q, want WEBHOOK_SECRETS (secret 2) and the empty key", msg)
	}
	if msg := secretProblem(t, "STRIPE_WEBHOOK_SECRETS", "whsec_"); !strings.Contains(msg, "STRIPE_WEBHOOK_SECRETS") || !strings.Contains(msg, "empty after whsec_") {
		t.Errorf("STRIPE_WEBHOOK_SECRETS=whsec_: error %q", msg)
	}
}

func TestShortSecretRefusedAtStartup(t *testing.T) {
	short := "whsec_" + b64([]byte("0123456789abcdefghijklm")) // 23 bytes
	for _, name := range []string{"WEBHOOK_SECRETS", "BILLING_WEBHOOK_SECRET", "ALERT_WEBHOOK_SECRET"} {
		msg := secretProblem(t, name, short)
		if !strings.Contains(msg, name) || !strings.Contains(msg, "23-byte key, fewer than 24") {
			t.Errorf("%s with a 23-byte key: error %q", name, msg)
		}
	}
	if msg := secretProblem(t, "STRIPE_WEBHOOK_SECRETS", "whsec_abc123XYZ"); !strings.Contains(msg, "STRIPE_WEBHOOK_SECRETS") || !strings.Contains(msg, "fewer than 24") {
		t.Errorf("short Stripe secret: error %q", msg)
	}
	if msg := secretProblem(t, "STRIPE_WEBHOOK_SECRETS", "sk_live_"+testToken); !strings.Contains(msg, "does not start with whsec_") {
		t.Errorf("Stripe API key given as the signing secret: error %q", msg)
	}
	if msg := secretProblem(t, "CODEC_AUTH_TOKEN", "hunter2"); !strings.Contains(msg, "CODEC_AUTH_TOKEN") || !strings.Contains(msg, "7 characters, fewer than 24") {
		t.Errorf("short CODEC_AUTH_TOKEN: error %q", msg)
	}
}

func TestExampleOrPlaceholderSecretRefusedAtStartup(t *testing.T) {
	tests := []struct{ name, value, want string }{
		{"WEBHOOK_SECRETS", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "published example"},
		{"BILLING_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "published example"},
		{"WEBHOOK_SECRETS", "whsec_" + b64(make([]byte, 32)), "not random"},
		{"WEBHOOK_SECRETS", "whsec_<your secret>", "placeholder"},
		{"STRIPE_WEBHOOK_SECRETS", "whsec_...", "placeholder"},
		{"STRIPE_WEBHOOK_SECRETS", "whsec_" + strings.Repeat("ab", 16), "not random"},
		{"CODEC_AUTH_TOKEN", "change-me-change-me-change-me", "placeholder"},
		{"CODEC_AUTH_TOKEN", strings.Repeat("x", 40), "not random"},
		{"RECOUP_REPORT_TOKEN", "hunter2", "fewer than 24"},
		{"RECOUP_REPORT_TOKEN", strings.Repeat("x", 40), "not random"},
		{"RECOUP_CODEC_KEYS", "k1:" + b64(make([]byte, 32)), "not random"},
		{"OPENAI_API_KEY", "your-api-key", "placeholder"},
		{"SENDGRID_API_KEY", "SG.<key>", "placeholder"},
		{"DATABASE_URL", "postgres://recoup:change-me@db:5432/recoup", "placeholder"},
	}
	for _, tt := range tests {
		msg := secretProblem(t, tt.name, tt.value)
		if !strings.Contains(msg, tt.name) || !strings.Contains(msg, tt.want) {
			t.Errorf("%s=%s: error %q, want one naming %s and saying %q", tt.name, tt.value, msg, tt.name, tt.want)
		}
	}
}

// No error message repeats the secret it refuses (the process log would leak it).
func TestSecretErrorsNeverContainTheValue(t *testing.T) {
	short := "whsec_" + b64([]byte("0123456789abcdefghijklm"))
	for _, c := range []struct{ name, value string }{
		{"WEBHOOK_SECRETS", short},
		{"WEBHOOK_SECRETS", "whsec_not*base64!"},
		{"BILLING_WEBHOOK_SECRET", short},
		{"STRIPE_WEBHOOK_SECRETS", "whsec_shortbutsecret1"},
		{"CODEC_AUTH_TOKEN", "hunter2hunter"},
		{"RECOUP_CODEC_KEYS", "k1:" + b64(make([]byte, 32))},
		{"DATABASE_URL", "postgres://u:my-example-pw@db/recoup"},
	} {
		msg := secretProblem(t, c.name, c.value)
		if msg == "" {
			t.Errorf("%s: weak value accepted", c.name)
			continue
		}
		secret := c.value
		if i := strings.LastIndexAny(secret, ":_"); i >= 0 && c.name != "DATABASE_URL" {
			secret = secret[i+1:]
		}
		if c.name == "DATABASE_URL" {
			secret = "my-example-pw"
		}
		if strings.Contains(msg, secret) {
			t.Errorf("%s: the error repeats the secret: %q", c.name, msg)
		}
	}
}

// .env.example ships no working secret: every secret in it is empty and says how to make one.
func TestEnvExampleShipsNoSecret(t *testing.T) {
	b, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	secretVar := regexp.MustCompile(`(?m)^([A-Z_]*(SECRET|SECRETS|TOKEN|KEY|KEYS|PASSWORD))=(.*)$`)
	found := 0
	for _, m := range secretVar.FindAllStringSubmatch(string(b), -1) {
		found++
		if v := strings.TrimSpace(m[3]); v != "" {
			t.Errorf(".env.example sets %s to a value; secrets must ship empty", m[1])
		}
	}
	if found < 8 {
		t.Errorf("found %d secret variables in .env.example, want every one (WEBHOOK_SECRETS, CODEC_AUTH_TOKEN, ...)", found)
	}
	for _, how := range []string{"openssl rand -base64 32"} {
		if !strings.Contains(string(b), how) {
			t.Errorf(".env.example does not say how to generate a secret (%s)", how)
		}
	}
}

// With .env.example's values as they ship, `starter serve` cannot start: no secret to verify
// events with. (The empty list is refused by the serve command; see starter.)
func TestEnvExampleValuesLeaveNoWebhookSecret(t *testing.T) {
	b, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			vals[k] = v
		}
	}
	c, err := config.FromEnv(env(vals))
	if err != nil {
		t.Fatalf("FromEnv(.env.example): %v", err)
	}
	if len(c.WebhookSecret) != 0 || c.CodecToken != "" || c.Codec != nil {
		t.Errorf(".env.example configures a secret: webhook %d, codec token set %v, codec keys %v", len(c.WebhookSecret), c.CodecToken != "", c.Codec != nil)
	}
}
