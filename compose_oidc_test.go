package recoup_test

// Security hardening of the codec server and dev-oidc (from a review of the codecauth
// change): each test guards against the weakness its comment describes.

import "testing"

// Guards against: the README's production recipe ("Point the codec server at the same issuer
// (CODEC_OIDC_ISSUER) ... the audience your provider puts in them (CODEC_OIDC_AUDIENCE: ... an
// API identifier for providers such as Auth0 ...)") cannot be followed with compose:
//   - CODEC_OIDC_AUDIENCE is not read from .env; compose pins it to TEMPORAL_AUTH_CLIENT_ID,
//     so a provider whose access tokens carry an API audience (Auth0, Okta's api://default,
//     Entra, Keycloak's "account") is refused for every user;
//   - CODEC_OIDC_DISCOVERY_URL keeps its default http://dev-oidc:8234/oidc when only
//     CODEC_OIDC_ISSUER is set (the README never mentions the discovery URL for production),
//     so the codec server discovers dev-oidc's keys for the company issuer, with the issuer
//     check that would have caught it switched off (see
//     internal/codec TestDiscoveryURLNamingAnotherIssuerIsRefused).
func TestComposeFollowsTheProductionIdentityProviderSettings(t *testing.T) {
	env := generatedEnv(t)
	env["TEMPORAL_AUTH_PROVIDER_URL"] = "https://login.example.com"
	env["TEMPORAL_AUTH_ISSUER_URL"] = "https://login.example.com"
	env["TEMPORAL_AUTH_CLIENT_ID"] = "recoup-ui"
	env["CODEC_OIDC_ISSUER"] = "https://login.example.com"
	env["CODEC_OIDC_AUDIENCE"] = "https://codec.example.com/api"
	p := mustLoad(t, env)
	cs, err := p.GetService("codec-server")
	if err != nil {
		t.Fatal(err)
	}
	get := func(k string) string {
		if v := cs.Environment[k]; v != nil {
			return *v
		}
		return ""
	}
	if got := get("CODEC_OIDC_AUDIENCE"); got != "https://codec.example.com/api" {
		t.Errorf(".env sets CODEC_OIDC_AUDIENCE=https://codec.example.com/api; the codec server gets %q", got)
	}
	if got := get("CODEC_OIDC_DISCOVERY_URL"); got != "" && got != "https://login.example.com" {
		t.Errorf(".env sets CODEC_OIDC_ISSUER=https://login.example.com only; the codec server discovers keys at %q", got)
	}
}
