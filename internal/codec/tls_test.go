package codec_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/recoup-dunning/recoup/internal/codec"
)

// The self-signed certificate is valid for the names it was made for, so a browser told to
// trust it (or a client holding it) reaches the codec over HTTPS under those names.
func TestSelfSignedTLSServesTheCodecForItsNames(t *testing.T) {
	cfg, err := codec.SelfSignedTLS([]string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := codec.Handler(mustParse(t, "k1:"+testKey(1)), testToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = cfg
	srv.StartTLS()
	defer srv.Close()
	leaf, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(srv.URL + "/healthz") // https://127.0.0.1:port
	if err != nil {
		t.Fatalf("HTTPS with the certificate trusted: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Errorf("not valid for localhost: %v", err)
	}
	if _, err := http.Get(srv.URL + "/healthz"); err == nil {
		t.Error("a client that does not trust the certificate got through")
	}
}
