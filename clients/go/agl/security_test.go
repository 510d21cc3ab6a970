// The client with a bearer token and over TLS.

package agl_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/agl-dev/agl/clients/go/agl"
	"github.com/agl-dev/agl/clients/go/internal/testserver"
)

// With --token the server refuses calls without it (UNAUTHENTICATED, with advice) and takes
// them with it.
func TestTokenAuth(t *testing.T) {
	ctx := testContext(t)
	server := testserver.Start(t, "--token", "s3cret")
	t.Setenv("AGL_TOKEN", "")

	_, err := newClient(t, server.Address).GetResources(ctx, "")
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "AGL_TOKEN") {
		t.Fatalf("no token: %v", err)
	}
	_, err = newClient(t, server.Address, agl.WithToken("wrong")).GetResources(ctx, "")
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong token: %v", err)
	}
	client := newClient(t, server.Address, agl.WithToken("s3cret"))
	if _, err := client.AddResources(ctx, "r1", promptResources("{x}")); err != nil {
		t.Fatal(err)
	}
	got, err := client.GetResources(ctx, "")
	if err != nil || got.GetResourcesId() != "r1" {
		t.Fatalf("with the token: %v, %v", got, err)
	}
}

// Over TLS with a private CA.
func TestTLS(t *testing.T) {
	ctx := testContext(t)
	certFile, keyFile, pool := selfSignedCert(t)
	server := testserver.Start(t, "--tls-cert", certFile, "--tls-key", keyFile)

	client := newClient(t, server.Address, agl.WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	if _, err := client.AddResources(ctx, "r-tls", promptResources("{x}")); err != nil {
		t.Fatal(err)
	}
	got, err := client.GetResources(ctx, "r-tls")
	if err != nil || got.GetResources()["prompt"].GetPromptTemplate().GetTemplate() != "{x}" {
		t.Fatalf("over TLS: %v, %v", got, err)
	}
	_, err = newClient(t, server.Address, agl.WithRetryDeadline(time.Second)).GetResources(ctx, "")
	if err == nil {
		t.Fatal("a plaintext client reached a TLS server")
	}
}

func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
