package codec

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
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
}

// OIDCVerifier checks access tokens against an OpenID provider's published keys.
type OIDCVerifier struct {
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	client   *http.Client
	emails   map[string]bool
	domains  map[string]bool

	mu     sync.Mutex
	emailc map[[sha256.Size]byte]cachedEmail // userinfo answers, per token until it expires
}

type cachedEmail struct {
	email   string
	expires time.Time
}

// maxCachedEmails bounds the userinfo cache; past it the cache starts afresh.
const maxCachedEmails = 1024

// NewOIDCVerifier checks cfg and discovers the provider (its discovery document must name
// cfg.Issuer as its issuer). An error says which setting is wrong.
func NewOIDCVerifier(ctx context.Context, cfg OIDCConfig) (*OIDCVerifier, error) {
	if err := checkIssuerURL(EnvOIDCIssuer, cfg.Issuer); err != nil {
		return nil, err
	}
	if cfg.DiscoveryURL != "" {
		if err := checkIssuerURL(EnvOIDCDiscoveryURL, cfg.DiscoveryURL); err != nil {
			return nil, err
		}
	}
	if strings.TrimSpace(cfg.Audience) == "" {
		return nil, fmt.Errorf("codec: %s is empty; set it to the client id the Web UI signs in with (TEMPORAL_AUTH_CLIENT_ID), the audience of its access tokens", EnvOIDCAudience)
	}
	emails, domains, err := parseAllowedEmails(cfg.AllowedEmails)
	if err != nil {
		return nil, err
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	// The key set keeps this context for later fetches (go-oidc drops its cancellation).
	kctx := oidc.ClientContext(ctx, hc)
	discovery := strings.TrimSuffix(cfg.Issuer, "/")
	if cfg.DiscoveryURL != "" {
		discovery = strings.TrimSuffix(cfg.DiscoveryURL, "/")
		kctx = oidc.InsecureIssuerURLContext(kctx, cfg.Issuer)
	}
	dctx, cancel := context.WithTimeout(kctx, 30*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(dctx, discovery)
	if err != nil {
		return nil, fmt.Errorf("codec: %s %q: OpenID discovery failed: %w", EnvOIDCIssuer, cfg.Issuer, err)
	}
	return &OIDCVerifier{
		provider: p,
		verifier: p.Verifier(&oidc.Config{ClientID: strings.TrimSpace(cfg.Audience)}),
		client:   hc,
		emails:   emails,
		domains:  domains,
		emailc:   make(map[[sha256.Size]byte]cachedEmail),
	}, nil
}

// Verify returns nil when raw is a currently valid access token of the configured issuer
// and audience for an allowed user, else an error saying why (for the log; it never
// contains the token).
func (v *OIDCVerifier) Verify(ctx context.Context, raw string) error {
	tok, err := v.verifier.Verify(ctx, raw)
	if err != nil {
		return err
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
		if email, err = v.userinfoEmail(ctx, raw, tok.Expiry); err != nil {
			return err
		}
	}
	if !v.allowed(email) {
		return errors.New("the signed-in user is not in " + EnvOIDCAllowedEmails)
	}
	return nil
}

// userinfoEmail asks the provider's userinfo endpoint for the email of the token's user,
// remembering the answer until the token expires (the Web UI sends one request per page of
// payloads).
func (v *OIDCVerifier) userinfoEmail(ctx context.Context, raw string, exp time.Time) (string, error) {
	key := sha256.Sum256([]byte(raw))
	now := time.Now()
	v.mu.Lock()
	if c, ok := v.emailc[key]; ok && now.Before(c.expires) {
		v.mu.Unlock()
		return c.email, nil
	}
	v.mu.Unlock()
	ui, err := v.provider.UserInfo(oidc.ClientContext(ctx, v.client),
		oauth2.StaticTokenSource(&oauth2.Token{AccessToken: raw, TokenType: "Bearer"}))
	if err != nil {
		return "", fmt.Errorf("the token has no email claim and userinfo failed: %w", err)
	}
	if ui.Email == "" {
		return "", errors.New("neither the token nor userinfo names the user's email")
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
