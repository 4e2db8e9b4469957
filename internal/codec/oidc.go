package codec

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDCConfig says which signed-in users the codec server decodes for: those whose access
// token (a JWT, sent by the Temporal Web UI with TEMPORAL_CODEC_PASS_ACCESS_TOKEN=true) was
// issued by Issuer for Audience, has not expired, and, when AllowedEmails is set, belongs
// to one of those emails or domains.
type OIDCConfig struct {
	// Issuer is the OpenID provider's issuer URL, exactly as in the tokens' "iss" claim
	// (CODEC_OIDC_ISSUER). Its signing keys are discovered from
	// <DiscoveryURL or Issuer>/.well-known/openid-configuration.
	Issuer string
	// DiscoveryURL is where the provider is reached when it is not reachable under its
	// issuer name from here (CODEC_OIDC_DISCOVERY_URL; in docker compose, the provider's
	// service name while the browser uses localhost). Empty: Issuer.
	DiscoveryURL string
	// Audience is the "aud" the tokens must carry (CODEC_OIDC_AUDIENCE): the Web UI's
	// OIDC client id for most providers.
	Audience string
	// AllowedEmails, when not empty, restricts decoding to these users: an entry is an
	// email ("ops@example.com") or a domain with its "@" ("@example.com"), compared
	// case-insensitively (CODEC_OIDC_ALLOWED_EMAILS). The email is the token's "email"
	// claim (refused when it carries "email_verified": false) or, for access tokens without
	// one, the provider's userinfo answer for the token.
	AllowedEmails []string
	// HTTPClient fetches discovery, keys and userinfo; nil: a client with a 10 s timeout.
	HTTPClient *http.Client
	// Now is the key set's clock (when to read the provider's keys again); nil: time.Now.
	// Tokens' expiry is checked against the real clock.
	Now func() time.Time
}

// OIDCVerifier checks access tokens against an OpenID provider's published keys.
type OIDCVerifier struct {
	cfg     OIDCConfig
	client  *http.Client
	emails  map[string]bool
	domains map[string]bool
	now     func() time.Time

	state   atomic.Pointer[discovered] // nil until discovery succeeded
	pending atomic.Pointer[string]     // why discovery has not succeeded yet

	mu     sync.Mutex
	emailc map[[sha256.Size]byte]cachedEmail // userinfo answers, per token until it expires
}

// discovered is what OpenID discovery found: the provider and its key set.
type discovered struct {
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
}

// ErrOIDCPending is returned by Verify while the provider has not been discovered yet
// (StartOIDCVerifier keeps retrying); the handler answers 503.
var ErrOIDCPending = errors.New("the OpenID provider has not been discovered yet")

type cachedEmail struct {
	email   string
	expires time.Time
}

// maxCachedEmails bounds the userinfo cache; past it the cache starts afresh.
const maxCachedEmails = 1024

// NewOIDCVerifier checks cfg and discovers the provider (its discovery document must name
// cfg.Issuer as its issuer, also when it is fetched from cfg.DiscoveryURL). An error says
// which setting is wrong or why discovery failed.
func NewOIDCVerifier(ctx context.Context, cfg OIDCConfig) (*OIDCVerifier, error) {
	v, err := newOIDCVerifier(cfg)
	if err != nil {
		return nil, err
	}
	if err := v.discover(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// StartOIDCVerifier checks cfg and returns a verifier at once; discovery runs in the
// background until it succeeds or ctx ends, retrying with a growing pause (up to a minute)
// and logging each failure as an error (a wrong issuer stays visible in the log). Until
// then Verify returns ErrOIDCPending and Pending says why.
func StartOIDCVerifier(ctx context.Context, cfg OIDCConfig, log *slog.Logger) (*OIDCVerifier, error) {
	v, err := newOIDCVerifier(cfg)
	if err != nil {
		return nil, err
	}
	why := "OpenID discovery has not finished yet"
	v.pending.Store(&why)
	go v.retryDiscovery(ctx, log)
	return v, nil
}

func (v *OIDCVerifier) retryDiscovery(ctx context.Context, log *slog.Logger) {
	pause := 2 * time.Second
	for {
		err := v.discover(ctx)
		if err == nil {
			if log != nil {
				log.Info("codec: OpenID provider discovered; accepting access tokens", "issuer", v.cfg.Issuer)
			}
			return
		}
		why := err.Error()
		v.pending.Store(&why)
		if log != nil {
			log.Error("codec: OpenID discovery failed; access tokens are refused (503) until it succeeds, the static token still works",
				"issuer", v.cfg.Issuer, "err", err, "retry_in", pause.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Minute)
	}
}

// Pending says why access tokens are refused for now ("" once the provider is discovered).
func (v *OIDCVerifier) Pending() string {
	if v.state.Load() != nil {
		return ""
	}
	if p := v.pending.Load(); p != nil {
		return *p
	}
	return ErrOIDCPending.Error()
}

func newOIDCVerifier(cfg OIDCConfig) (*OIDCVerifier, error) {
	if err := checkIssuerURL(EnvOIDCIssuer, cfg.Issuer); err != nil {
		return nil, err
	}
	if cfg.DiscoveryURL != "" {
		if err := checkIssuerURL(EnvOIDCDiscoveryURL, cfg.DiscoveryURL); err != nil {
			return nil, err
		}
	}
	if strings.TrimSpace(cfg.Audience) == "" {
		return nil, fmt.Errorf("codec: %s is empty; set it to the audience of the provider's access tokens (see README: the Web UI's client id for dev-oidc, an API identifier for most others)", EnvOIDCAudience)
	}
	emails, domains, err := parseAllowedEmails(cfg.AllowedEmails)
	if err != nil {
		return nil, err
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	cfg.Audience = strings.TrimSpace(cfg.Audience)
	return &OIDCVerifier{cfg: cfg, client: hc, emails: emails, domains: domains, now: now,
		emailc: make(map[[sha256.Size]byte]cachedEmail)}, nil
}

// discover reads the provider's discovery document (from DiscoveryURL when set, else the
// issuer) and refuses one that names an issuer other than cfg.Issuer.
func (v *OIDCVerifier) discover(ctx context.Context) error {
	cfg := v.cfg
	kctx := oidc.ClientContext(ctx, v.client)
	from := strings.TrimSuffix(cfg.Issuer, "/")
	if cfg.DiscoveryURL != "" {
		// go-oidc would compare the document's issuer with the discovery URL; the comparison
		// with CODEC_OIDC_ISSUER is made below instead.
		from = strings.TrimSuffix(cfg.DiscoveryURL, "/")
		kctx = oidc.InsecureIssuerURLContext(kctx, cfg.Issuer)
	}
	dctx, cancel := context.WithTimeout(kctx, 30*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(dctx, from)
	if err != nil {
		return fmt.Errorf("codec: %s %q: OpenID discovery failed: %w", EnvOIDCIssuer, cfg.Issuer, err)
	}
	var doc struct {
		Issuer string   `json:"issuer"`
		JWKS   string   `json:"jwks_uri"`
		Algs   []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := p.Claims(&doc); err != nil {
		return fmt.Errorf("codec: %s %q: reading the discovery document: %w", EnvOIDCIssuer, cfg.Issuer, err)
	}
	if doc.Issuer != cfg.Issuer {
		return fmt.Errorf("codec: the discovery document at %s names issuer %q, not %s %q: fix %s or %s (the codec server only trusts the keys of the issuer it is told)",
			from, doc.Issuer, EnvOIDCIssuer, cfg.Issuer, EnvOIDCIssuer, EnvOIDCDiscoveryURL)
	}
	if doc.JWKS == "" {
		return fmt.Errorf("codec: the discovery document of %q has no jwks_uri", cfg.Issuer)
	}
	ks := newKeySet(v.client, doc.JWKS, doc.Algs, v.now)
	v.state.Store(&discovered{
		provider: p,
		verifier: oidc.NewVerifier(cfg.Issuer, ks, &oidc.Config{ClientID: cfg.Audience, SupportedSigningAlgs: doc.Algs}),
	})
	return nil
}

// Verify returns nil when raw is a currently valid access token of the configured issuer
// and audience for an allowed user, else an error saying why (for the log; it never
// contains the token). Before discovery succeeded it returns ErrOIDCPending.
func (v *OIDCVerifier) Verify(ctx context.Context, raw string) error {
	st := v.state.Load()
	if st == nil {
		return fmt.Errorf("%w: %s", ErrOIDCPending, v.Pending())
	}
	tok, err := st.verifier.Verify(ctx, raw)
	if err != nil {
		return err
	}
	if why := notAccessToken(raw, tok); why != "" {
		return errors.New(why)
	}
	if len(v.emails) == 0 && len(v.domains) == 0 {
		return nil
	}
	var c struct {
		Email         string `json:"email"`
		EmailVerified *bool  `json:"email_verified"`
	}
	if err := tok.Claims(&c); err != nil {
		return fmt.Errorf("reading the token's claims: %w", err)
	}
	if c.EmailVerified != nil && !*c.EmailVerified {
		return errors.New("the token's email is not verified")
	}
	email := c.Email
	if email == "" {
		if email, err = v.userinfoEmail(ctx, st.provider, raw, tok.Expiry); err != nil {
			return err
		}
	}
	if !v.allowed(email) {
		return errors.New("the signed-in user is not in " + EnvOIDCAllowedEmails)
	}
	return nil
}

// notAccessToken says why a verified token is not an access token, or "". Providers that
// mark types (RFC 9068 "typ": "at+jwt" header, as dev-oidc does; Keycloak's "typ" claim) are
// believed; a token of another explicit type is refused, and so is one carrying an ID
// token's nonce or at_hash. A refresh token that is a JWT with the same claims as an access
// token cannot be told apart.
func notAccessToken(raw string, tok *oidc.IDToken) string {
	if tok.Nonce != "" || tok.AccessTokenHash != "" {
		return "the token is an ID token (it carries a nonce or at_hash), not an access token"
	}
	head, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "the token's header is not base64url"
	}
	var h struct {
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return "the token's header is not JSON"
	}
	switch typ := strings.TrimPrefix(strings.ToLower(h.Typ), "application/"); typ {
	case "", "jwt", "at+jwt":
	default:
		return fmt.Sprintf("the token's type is %q, not an access token (at+jwt)", h.Typ)
	}
	// Keycloak marks its tokens with a "typ" claim: Bearer, ID, Refresh (and Logout).
	var c struct {
		Typ any `json:"typ"`
	}
	if err := tok.Claims(&c); err != nil {
		return "reading the token's claims: " + err.Error()
	}
	if typ, ok := c.Typ.(string); ok && typ != "" && !strings.EqualFold(typ, "Bearer") {
		return fmt.Sprintf("the token's typ claim is %q, not an access token (Bearer)", typ)
	}
	return ""
}

// userinfoEmail asks the provider's userinfo endpoint for the email of the token's user,
// remembering the answer until the token expires (the Web UI sends one request per page of
// payloads).
func (v *OIDCVerifier) userinfoEmail(ctx context.Context, p *oidc.Provider, raw string, exp time.Time) (string, error) {
	key := sha256.Sum256([]byte(raw))
	now := time.Now()
	v.mu.Lock()
	if c, ok := v.emailc[key]; ok && now.Before(c.expires) {
		v.mu.Unlock()
		return c.email, nil
	}
	v.mu.Unlock()
	ui, err := p.UserInfo(oidc.ClientContext(ctx, v.client),
		oauth2.StaticTokenSource(&oauth2.Token{AccessToken: raw, TokenType: "Bearer"}))
	if err != nil {
		return "", fmt.Errorf("the token has no email claim and userinfo failed: %w", err)
	}
	if ui.Email == "" {
		return "", errors.New("neither the token nor userinfo names the user's email")
	}
	if !ui.EmailVerified {
		// An address nobody proved (or a provider that does not say): refused, since the
		// allow-list by domain would otherwise admit whoever registered it.
		return "", errors.New("userinfo does not say the user's email is verified (email_verified)")
	}
	v.mu.Lock()
	if len(v.emailc) >= maxCachedEmails {
		clear(v.emailc)
	}
	v.emailc[key] = cachedEmail{email: ui.Email, expires: exp}
	v.mu.Unlock()
	return ui.Email, nil
}

func (v *OIDCVerifier) allowed(email string) bool {
	email = strings.ToLower(strings.TrimSpace(email))
	at := strings.LastIndexByte(email, '@')
	if at <= 0 {
		return false
	}
	return v.emails[email] || v.domains[email[at:]]
}

// parseAllowedEmails splits CODEC_OIDC_ALLOWED_EMAILS entries into emails and "@domain"s.
func parseAllowedEmails(list []string) (emails, domains map[string]bool, err error) {
	emails, domains = map[string]bool{}, map[string]bool{}
	for _, e := range list {
		e = strings.ToLower(strings.TrimSpace(e))
		switch at := strings.LastIndexByte(e, '@'); {
		case e == "":
		case at < 0 || at == len(e)-1 || strings.ContainsAny(e, " ,;<>"):
			return nil, nil, fmt.Errorf("codec: %s: %q is neither an email (ops@example.com) nor a domain (@example.com)", EnvOIDCAllowedEmails, e)
		case at == 0:
			domains[e] = true
		default:
			emails[e] = true
		}
	}
	return emails, domains, nil
}

// checkIssuerURL refuses what cannot be an issuer: not http(s), no host, a query or fragment.
func checkIssuerURL(name, v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("codec: %s is empty", name)
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("codec: %s %q is not an http(s) URL of an OpenID provider (like https://login.example.com/realms/ops)", name, v)
	}
	return nil
}

// The environment variables of the codec server's OIDC settings, named in errors.
const (
	EnvOIDCIssuer        = "CODEC_OIDC_ISSUER"
	EnvOIDCDiscoveryURL  = "CODEC_OIDC_DISCOVERY_URL"
	EnvOIDCAudience      = "CODEC_OIDC_AUDIENCE"
	EnvOIDCAllowedEmails = "CODEC_OIDC_ALLOWED_EMAILS"
)
