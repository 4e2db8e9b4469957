package config_test

// Review (branch review2) of the codecauth change: this test demonstrates a finding and fails
// against the change as merged.

import (
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/config"
)

// Finding: dev-oidc refuses only an EMPTY operator password or client secret. .env.example
// promises "The binaries refuse to start with a secret that is ... shorter than 24 bytes, not
// random or a published example", and every other secret goes through CheckToken /
// CheckWebhookSecret; RECOUP_DEV_OIDC_PASSWORD and RECOUP_DEV_OIDC_CLIENT_SECRET
// (TEMPORAL_AUTH_CLIENT_SECRET in compose) do not, so "operator", "password" or "changeme"
// start a provider whose login form (no throttling) is the only gate in front of every
// customer's decrypted data.
func TestReviewDevOIDCRefusesGuessableSecrets(t *testing.T) {
	good := "0f3a9c1be27d48e6a5b0c9d1" // the shape make secrets generates (openssl rand -hex 12)
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
