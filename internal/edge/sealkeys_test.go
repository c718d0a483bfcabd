package edge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/seal"
)

func newBox(t *testing.T) *seal.Box {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	b, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A store's own private key is sealed with the master key in sites.json;
// the next start opens it and serves the certificate; another key is
// refused with a clear error; a key an older Slipway stored in clear is
// sealed at the next start.
func TestCustomKeySealedAtRest(t *testing.T) {
	dir := t.TempDir()
	box := newBox(t)
	certPEM, keyPEM, leaf := selfSigned(t, time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour), "shop.test")
	open := func(s Sealer) (*Manager, error) {
		return New(context.Background(), Options{Dir: dir, HTTPAddr: "127.0.0.1:80", Sealer: s})
	}
	m, err := open(box)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Configure(context.Background(), "us", []string{"shop.test"}, proxy.Site{TLS: "custom", CertPEM: certPEM, KeyPEM: keyPEM}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	assertNoKey(t, dir, keyPEM)

	m, err = open(box)
	if err != nil {
		t.Fatalf("reopening with the same key: %v", err)
	}
	e := m.table.Load().lookup("shop.test")
	if e == nil || e.mode != modeCustom || e.custom == nil || !e.custom.Leaf.Equal(leaf) {
		t.Fatalf("after a restart the store's certificate is not served: %+v", e)
	}
	m.Close()

	if _, err := open(newBox(t)); err == nil || !strings.Contains(err.Error(), "private key of us") || !strings.Contains(err.Error(), "master key") {
		t.Errorf("another master key: %v, want an error naming the store's key and the master key", err)
	}

	// A file written without sealing (before this version): sealed at the next start.
	plainDir := t.TempDir()
	m, err = New(context.Background(), Options{Dir: plainDir, HTTPAddr: "127.0.0.1:80"})
	if err != nil {
		t.Fatal(err)
	}
	m.Configure(context.Background(), "us", []string{"shop.test"}, proxy.Site{TLS: "custom", CertPEM: certPEM, KeyPEM: keyPEM})
	m.Close()
	raw, _ := os.ReadFile(filepath.Join(plainDir, "sites.json"))
	var f sitesFile
	json.Unmarshal(raw, &f)
	f.Version = 1 // as the previous Slipway wrote it
	raw, _ = json.Marshal(f)
	os.WriteFile(filepath.Join(plainDir, "sites.json"), raw, 0o600)
	if !bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString(keyPEM))) {
		t.Fatal("the legacy file should hold the key in clear")
	}
	m, err = New(context.Background(), Options{Dir: plainDir, HTTPAddr: "127.0.0.1:80", Sealer: box})
	if err != nil {
		t.Fatalf("opening a legacy file: %v", err)
	}
	m.Close()
	assertNoKey(t, plainDir, keyPEM)
}

// assertNoKey fails if sites.json holds the key, as PEM or as JSON's base64.
func assertNoKey(t *testing.T, dir string, keyPEM []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "sites.json"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, keyPEM) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString(keyPEM))) || bytes.Contains(b, []byte("PRIVATE KEY")) {
		t.Fatalf("sites.json holds the private key in clear:\n%s", b)
	}
	if !bytes.Contains(b, []byte(`"sealed_keys"`)) {
		t.Fatalf("sites.json has no sealed key:\n%s", b)
	}
}
