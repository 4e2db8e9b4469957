package codec

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"go.temporal.io/sdk/converter"
)

// maxRequestBytes bounds the body of an /encode or /decode request.
const maxRequestBytes = 64 << 20

// Handler serves the Temporal remote codec protocol (POST .../encode and
// POST .../decode, Payloads as protobuf JSON; see
// converter.NewPayloadCodecHTTPHandler) for the Temporal Web UI and CLI.
//
// GET /healthz answers "ok" to anyone (the container's health check). Every other request
// except a CORS preflight (OPTIONS) must carry
// "Authorization: Bearer <token>"; otherwise it gets 401. The token is
// compared in constant time.
//
// CORS: for a request whose Origin is exactly one of allowedOrigins (a
// trailing "/" in the configuration is ignored), the response carries
// Access-Control-Allow-Origin: <that origin> and
// Access-Control-Allow-Credentials: true; preflights additionally get
// Access-Control-Allow-Methods: POST, OPTIONS and
// Access-Control-Allow-Headers: Content-Type, Authorization, Authorization-Extras,
// X-Namespace (the Web UI sends the user's ID token in Authorization-Extras next to the
// access token; the codec ignores it),
// with 204. A preflight from any other origin gets 403 and no CORS headers.
// "*" is refused: credentials cannot be combined with a wildcard origin.
//
// Whitespace around token is ignored; an empty token is refused with an
// error naming CODEC_AUTH_TOKEN.
func Handler(c *Codec, token string, allowedOrigins []string) (http.Handler, error) {
	return NewHandler(c, HandlerOptions{Token: token, Origins: allowedOrigins})
}

// HandlerOptions configures NewHandler: who may call the codec endpoint and from where.
type HandlerOptions struct {
	// Token is the static bearer token (CODEC_AUTH_TOKEN), for the CLI and automation.
	Token string
	// OIDC, when set, also admits a signed-in user's access token (what the Web UI sends
	// with TEMPORAL_CODEC_PASS_ACCESS_TOKEN=true), checked by the verifier.
	OIDC *OIDCVerifier
	// Origins are the Web UI origins allowed by CORS (CODEC_CORS_ORIGINS).
	Origins []string
	// Logger records why a request was refused (never the token); nil: not logged.
	Logger *slog.Logger
}

// NewHandler is Handler with the options above: a request is authorized by
// "Authorization: Bearer <token>" where token is either opts.Token or an access token
// opts.OIDC accepts (issuer, audience, signature, expiry, allowed users). At least one of
// the two must be configured. Anything else gets 401 and nothing decoded.
func NewHandler(c *Codec, opts HandlerOptions) (http.Handler, error) {
	if c == nil || len(c.keys) == 0 {
		return nil, errors.New("codec: Handler needs a codec with at least one key")
	}
	token, allowedOrigins := opts.Token, opts.Origins
	if strings.TrimSpace(token) == "" && opts.OIDC == nil {
		return nil, fmt.Errorf("codec: %s is empty and %s is not set; refusing to serve the codec endpoint without authentication", EnvAuthToken, EnvOIDCIssuer)
	}
	origins := make(map[string]struct{}, len(allowedOrigins))
	for _, o := range allowedOrigins {
		o = strings.TrimSuffix(strings.TrimSpace(o), "/")
		if o == "" {
			continue
		}
		if o == "*" {
			return nil, errors.New(`codec: allowed origin "*" is not supported (the Web UI sends credentials); list the UI origins explicitly`)
		}
		origins[o] = struct{}{}
	}
	h := &handler{
		next:    converter.NewPayloadCodecHTTPHandler(c),
		hasTok:  strings.TrimSpace(token) != "",
		oidc:    opts.OIDC,
		origins: origins,
		log:     opts.Logger,
	}
	if h.hasTok {
		h.tokenHash = sha256.Sum256([]byte(strings.TrimSpace(token)))
	}
	return h, nil
}

type handler struct {
	next      http.Handler
	hasTok    bool
	tokenHash [sha256.Size]byte
	oidc      *OIDCVerifier
	origins   map[string]struct{}
	log       *slog.Logger
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	origin := r.Header.Get("Origin")
	_, allowed := h.origins[origin]
	allowed = allowed && origin != ""
	if len(h.origins) > 0 {
		hdr.Add("Vary", "Origin")
	}
	if allowed {
		hdr.Set("Access-Control-Allow-Origin", origin)
		hdr.Set("Access-Control-Allow-Credentials", "true")
	}

	if r.Method == http.MethodGet && r.URL.Path == "/healthz" {
		// Liveness for the container's health check: says nothing about keys or payloads.
		// While the OpenID provider is not discovered it still answers 200 (the static token
		// works) but says so.
		if h.oidc != nil && h.oidc.Pending() != "" {
			_, _ = w.Write([]byte("degraded: OpenID discovery has not succeeded, access tokens are refused (see the log)\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
		return
	}
	if r.Method == http.MethodOptions {
		if origin != "" && !allowed {
			http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
			return
		}
		hdr.Set("Allow", "POST, OPTIONS")
		if allowed {
			hdr.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			hdr.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, Authorization-Extras, X-Namespace")
			hdr.Set("Access-Control-Max-Age", "600")
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}

	if status := h.authorized(r); status != http.StatusOK {
		if status == http.StatusServiceUnavailable {
			hdr.Set("Retry-After", "30")
		} else {
			hdr.Set("WWW-Authenticate", `Bearer realm="recoup-codec"`)
		}
		http.Error(w, http.StatusText(status), status)
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
	}
	h.next.ServeHTTP(w, r)
}

// authorized checks "Authorization: Bearer <token>" (scheme
// case-insensitive): the static token, or else an access token the OIDC verifier accepts.
// Both sides of the static comparison are hashed first so the constant-time comparison
// does not leak the token length. It returns 200 when authorized, 401 when not, and 503
// for a token that is not the static one while the OpenID provider is not discovered yet.
func (h *handler) authorized(r *http.Request) int {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		h.refused(r, "no bearer token")
		return http.StatusUnauthorized
	}
	tok = strings.TrimSpace(tok)
	if h.hasTok {
		got := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(got[:], h.tokenHash[:]) == 1 {
			return http.StatusOK
		}
	}
	if h.oidc == nil {
		h.refused(r, "wrong token")
		return http.StatusUnauthorized
	}
	if err := h.oidc.Verify(r.Context(), tok); err != nil {
		h.refused(r, "access token refused: "+err.Error())
		if errors.Is(err, ErrOIDCPending) {
			return http.StatusServiceUnavailable
		}
		return http.StatusUnauthorized
	}
	return http.StatusOK
}

func (h *handler) refused(r *http.Request, why string) {
	if h.log != nil {
		h.log.Warn("codec: request refused", "path", r.URL.Path, "origin", r.Header.Get("Origin"), "reason", why)
	}
}
