package config

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
)

// MinSecretBytes is the least key material a secret Recoup verifies or signs with may
// carry: the Standard Webhooks spec's minimum of 24 bytes.
const MinSecretBytes = 24

// Generation hints, printed in errors and in .env.example.
const (
	genWebhookSecret = `echo "whsec_$(openssl rand -base64 32)"`
	genToken         = "openssl rand -base64 32"
)

// exampleSecrets are published example values that must never sign or verify anything:
// the Standard Webhooks spec's example secret (also shipped in earlier .env.example files).
var exampleSecrets = map[string]bool{
	"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw": true,
}

// placeholderWords mark a value someone was meant to replace. None of them can occur in
// standard base64 or hex output by chance at a rate that matters: the shortest is six
// letters, and the ones with '-', '_', '<' or '.' cannot occur at all.
var placeholderWords = []string{"changeme", "change-me", "change_me", "example", "placeholder",
	"replace", "your-", "your_", "<", ">", "...", "…", "secret", "password"}

// placeholder says why v looks like a value to be replaced, or "".
func placeholder(v string) string {
	if exampleSecrets[v] {
		return "is a published example secret"
	}
	lv := strings.ToLower(v)
	for _, w := range placeholderWords {
		if strings.Contains(lv, w) {
			return fmt.Sprintf("looks like a placeholder (it contains %q)", w)
		}
	}
	return ""
}

// fewDistinct reports whether b has fewer than 8 distinct bytes: "aaaa…", a key of zeros
// or "0123012301…". Random material of 24 bytes or more practically never does.
func fewDistinct(b []byte) bool {
	seen := map[byte]bool{}
	for _, c := range b {
		seen[c] = true
	}
	return len(seen) < 8
}

// CheckWebhookSecret checks a Standard Webhooks secret ("whsec_" and base64 key) read from
// variable name: a key of at least MinSecretBytes random-looking bytes, not an example.
// The error names the variable and the fault, never the value.
func CheckWebhookSecret(name, v string) error {
	fail := func(why string) error {
		return fmt.Errorf("%s: the secret %s; generate one with: %s", name, why, genWebhookSecret)
	}
	if why := placeholder(v); why != "" {
		return fail(why)
	}
	raw := strings.TrimPrefix(v, "whsec_")
	if raw == "" {
		return fail("has an empty key after whsec_, so anyone could sign")
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return fail("is not whsec_ followed by standard base64")
	}
	if len(key) < MinSecretBytes {
		return fail(fmt.Sprintf("has a %d-byte key, fewer than %d", len(key), MinSecretBytes))
	}
	if fewDistinct(key) {
		return fail("key is not random (it repeats a few byte values)")
	}
	return nil
}

// CheckStripeSecret checks a Stripe endpoint signing secret read from variable name. Stripe
// uses the whole string as the HMAC key, so it is not decoded: "whsec_" and at least
// MinSecretBytes characters, as the Dashboard and the Stripe CLI print it.
func CheckStripeSecret(name, v string) error {
	fail := func(why string) error {
		return fmt.Errorf("%s: the secret %s; copy the endpoint's signing secret (whsec_…) from the Stripe Dashboard or `stripe listen`", name, why)
	}
	if why := placeholder(v); why != "" {
		return fail(why)
	}
	raw, ok := strings.CutPrefix(v, "whsec_")
	switch {
	case !ok:
		return fail("does not start with whsec_")
	case raw == "":
		return fail("is empty after whsec_, so anyone could sign")
	case len(raw) < MinSecretBytes:
		return fail(fmt.Sprintf("has %d characters after whsec_, fewer than %d", len(raw), MinSecretBytes))
	case fewDistinct([]byte(raw)):
		return fail("is not random (it repeats a few characters)")
	}
	return nil
}

// CheckToken checks a bearer token read from variable name (compared as it is): at least
// MinSecretBytes characters, not a placeholder.
func CheckToken(name, v string) error {
	fail := func(why string) error {
		return fmt.Errorf("%s: the token %s; generate one with: %s", name, why, genToken)
	}
	if why := placeholder(v); why != "" {
		return fail(why)
	}
	if len(v) < MinSecretBytes {
		return fail(fmt.Sprintf("has %d characters, fewer than %d", len(v), MinSecretBytes))
	}
	if fewDistinct([]byte(v)) {
		return fail("is not random (it repeats a few characters)")
	}
	return nil
}

// checkCodecKeys refuses RECOUP_CODEC_KEYS entries whose key is not random (codec.ParseKeys
// has already checked the syntax and the 32-byte length).
func checkCodecKeys(v string) error {
	for i, entry := range strings.Split(v, ",") {
		_, b64, _ := strings.Cut(strings.TrimSpace(entry), ":")
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue // reported by codec.ParseKeys
		}
		if fewDistinct(key) {
			return fmt.Errorf("RECOUP_CODEC_KEYS: entry %d: the key is not random (it repeats a few byte values); make one with: echo \"k1:$(openssl rand -base64 32)\"", i+1)
		}
	}
	return nil
}

// checkCredential refuses a provider credential (API key, auth token) left at a
// placeholder; its format is the provider's business.
func checkCredential(name, v string) error {
	if why := placeholder(v); why != "" {
		return fmt.Errorf("%s: the credential %s; set the real one or leave it empty", name, why)
	}
	return nil
}

// checkDatabasePassword refuses a DATABASE_URL whose password is a placeholder.
func checkDatabasePassword(v string) error {
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		return nil // not a URL (a key=value DSN) or no password: PostgreSQL decides
	}
	if p, ok := u.User.Password(); ok {
		if why := placeholder(p); why != "" {
			return fmt.Errorf("DATABASE_URL: the password %s; generate one with: %s", why, genToken)
		}
	}
	return nil
}
