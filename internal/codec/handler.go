package codec

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
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
// Access-Control-Allow-Headers: Content-Type, Authorization, X-Namespace,
// with 204. A preflight from any other origin gets 403 and no CORS headers.
// "*" is refused: credentials cannot be combined with a wildcard origin.
//
// Whitespace around token is ignored; an empty token is refused with an
// error naming CODEC_AUTH_TOKEN.
func Handler(c *Codec, token string, allowedOrigins []string) (http.Handler, error) {
	if c == nil || len(c.keys) == 0 {
		return nil, errors.New("codec: Handler needs a codec with at least one key")
	}
	if strings.TrimSpace(token) == "" {
		return nil, fmt.Errorf("codec: %s is empty; refusing to serve the codec endpoint without authentication", EnvAuthToken)
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
	return &handler{
		next:      converter.NewPayloadCodecHTTPHandler(c),
		tokenHash: sha256.Sum256([]byte(strings.TrimSpace(token))),
		origins:   origins,
	}, nil
}

type handler struct {
	next      http.Handler
	tokenHash [sha256.Size]byte
	origins   map[string]struct{}
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
			hdr.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, X-Namespace")
			hdr.Set("Access-Control-Max-Age", "600")
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}

	if !h.authorized(r) {
		hdr.Set("WWW-Authenticate", `Bearer realm="recoup-codec"`)
		http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
	}
	h.next.ServeHTTP(w, r)
}

// authorized checks "Authorization: Bearer <token>" (scheme
// case-insensitive). Both sides are hashed first so the constant-time
// comparison does not leak the token length.
func (h *handler) authorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], h.tokenHash[:]) == 1
}
