package config_test

// Security hardening of the codec server and dev-oidc (from a review of the codecauth
// change): each test guards against the weakness its comment describes.

import (
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/config"
)

// Guards against: dev-oidc refuses only an EMPTY operator password or client secret. .env.example
// promises "The binaries refuse to start with a secret that is ... shorter than 24 bytes, not
// random or a published example", and every other secret goes through CheckToken /
// CheckWebhookSecret; RECOUP_DEV_OIDC_PASSWORD and RECOUP_DEV_OIDC_CLIENT_SECRET
// (TEMPORAL_AUTH_CLIENT_SECRET in compose) do not, so "operator", "password" or "changeme"
// start a provider whose login form (no throttling) is the only gate in front of every
// customer's decrypted data.
func TestDevOIDCRefusesGuessableSecrets(t *testing.T) {
	good := "0f3a9c1be27d48e6a5b0c9d1" // 24 characters, the least accepted (make secrets generates openssl rand -hex 16)
	for _, tc := range []struct{ name, password, secret string }{
		{"RECOUP_DEV_OIDC_PASSWORD", "operator", good + good},
		{"RECOUP_DEV_OIDC_PASSWORD", "password", good + good},
		{"RECOUP_DEV_OIDC_PASSWORD", "changeme", good + good},
		{"RECOUP_DEV_OIDC_CLIENT_SECRET", good, "s"},
	} {
		c, err := config.FromEnv(env(map[string]string{
			"RECOUP_DEV_OIDC_PASSWORD": tc.password, "RECOUP_DEV_OIDC_CLIENT_SECRET": tc.secret,
		}))
		if err == nil {
			err = c.Require(config.RoleDevOIDC)
		}
		if err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("password %q, client secret %q: err = %v; want a refusal naming %s", tc.password, tc.secret, err, tc.name)
		}
	}
}

// With CODEC_OIDC_ISSUER set the codec server needs an explicit allow-list: either who may
// decode, or any-signed-in-user (which cannot be mixed with entries).
func TestCodecServerRequiresAnAllowListWithOIDC(t *testing.T) {
	base := map[string]string{
		"RECOUP_CODEC_KEYS": "k1:8tXgTnqJDTkWgOEcgyNytokDmBuGFvCyC2aL1C9SW6A=",
		"CODEC_OIDC_ISSUER": "https://login.example.com", "CODEC_OIDC_AUDIENCE": "recoup-ui",
	}
	check := func(allowed string) error {
		m := map[string]string{"CODEC_OIDC_ALLOWED_EMAILS": allowed}
		for k, v := range base {
			m[k] = v
		}
		c, err := config.FromEnv(env(m))
		if err != nil {
			return err
		}
		return c.Require(config.RoleCodecServer)
	}
	if err := check(""); err == nil || !strings.Contains(err.Error(), "CODEC_OIDC_ALLOWED_EMAILS") || !strings.Contains(err.Error(), config.AnySignedInUser) {
		t.Errorf("no allow-list: err = %v; want one naming CODEC_OIDC_ALLOWED_EMAILS and the opt-out", err)
	}
	if err := check("@example.com"); err != nil {
		t.Errorf("a domain: %v", err)
	}
	if err := check(config.AnySignedInUser); err != nil {
		t.Errorf("the opt-out: %v", err)
	}
	if err := check(config.AnySignedInUser + ",ops@example.com"); err == nil {
		t.Error("the opt-out mixed with an email: accepted, want an error")
	}
}
