package codec

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// selfSignedValidity is how long a self-signed certificate is made for; one with less than
// selfSignedRenewBefore left is replaced at start.
const (
	selfSignedValidity    = 90 * 24 * time.Hour
	selfSignedRenewBefore = 14 * 24 * time.Hour
)

// SelfSignedTLS is a TLS configuration with a certificate made now for hosts (names or IP
// addresses), valid for 90 days and trusted by nobody: CODEC_TLS_SELF_SIGNED=true, for the
// demo and compose on one machine, where the Web UI passes the signed-in user's access
// token only to an https:// codec endpoint. The browser must be told once to accept it
// (open the codec's /healthz and proceed). Without a directory to keep it in (see
// SelfSignedTLSIn) a restart makes a new one.
func SelfSignedTLS(hosts []string) (*tls.Config, error) {
	certPEM, keyPEM, err := makeSelfSigned(hosts, time.Now())
	if err != nil {
		return nil, err
	}
	return tlsConfig(certPEM, keyPEM)
}

// SelfSignedTLSIn is SelfSignedTLS keeping the certificate in dir
// (CODEC_TLS_SELF_SIGNED_DIR: cert.pem, and key.pem readable by the owner only): one made
// earlier for the same hosts is reused while it has more than 14 days left, so the browser's
// exception survives restarts; otherwise a new one is made and written there. An empty dir
// is SelfSignedTLS.
func SelfSignedTLSIn(dir string, hosts []string) (*tls.Config, error) {
	return selfSignedIn(dir, hosts, time.Now())
}

func selfSignedIn(dir string, hosts []string, now time.Time) (*tls.Config, error) {
	if dir == "" {
		return SelfSignedTLS(hosts)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if c, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil && reusable(c, hosts, now) {
		return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{c}}, nil
	}
	certPEM, keyPEM, err := makeSelfSigned(hosts, now)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("CODEC_TLS_SELF_SIGNED_DIR: %w", err)
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("CODEC_TLS_SELF_SIGNED_DIR: %w", err)
	}
	return tlsConfig(certPEM, keyPEM)
}

// reusable says whether c was made for exactly hosts and is valid for a while yet.
func reusable(c tls.Certificate, hosts []string, now time.Time) bool {
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil || now.Before(leaf.NotBefore) || leaf.NotAfter.Sub(now) < selfSignedRenewBefore {
		return false
	}
	var names []string
	names = append(names, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	want := make([]string, 0, len(hosts))
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			h = ip.String()
		}
		want = append(want, h)
	}
	slices.Sort(names)
	slices.Sort(want)
	return slices.Equal(names, want)
}

func makeSelfSigned(hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "recoup codec server (self-signed)"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(selfSignedValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

func tlsConfig(certPEM, keyPEM []byte) (*tls.Config, error) {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{c}}, nil
}

// writeFileAtomic writes b to name through a temporary file in the same directory.
func writeFileAtomic(name string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name))
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}
