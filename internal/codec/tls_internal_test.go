package codec

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A certificate kept in CODEC_TLS_SELF_SIGNED_DIR is served again after a restart (the
// browser's exception still holds), and replaced once it nears expiry or the names change.
func TestSelfSignedCertificateIsKeptAndRenewedNearExpiry(t *testing.T) {
	dir := t.TempDir()
	hosts := []string{"localhost", "127.0.0.1"}
	now := time.Now()
	first, err := selfSignedIn(dir, hosts, now)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem: %v, mode %v; want 0600", err, fi)
	}
	again, err := selfSignedIn(dir, hosts, now.Add(30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Certificates[0].Certificate[0], again.Certificates[0].Certificate[0]) {
		t.Fatal("a restart 30 days later made a new certificate; want the kept one")
	}
	renewed, err := selfSignedIn(dir, hosts, now.Add(80*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first.Certificates[0].Certificate[0], renewed.Certificates[0].Certificate[0]) {
		t.Fatal("10 days before expiry the old certificate is still served; want a new one")
	}
	other, err := selfSignedIn(dir, []string{"codec.internal"}, now.Add(80*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(renewed.Certificates[0].Certificate[0], other.Certificates[0].Certificate[0]) {
		t.Fatal("other host names reuse the certificate made for localhost")
	}
}
