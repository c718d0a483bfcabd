// Package seal encrypts what Slipway keeps at rest that must never be
// readable on disk: secret values, runtime env, the specs (env included) of
// the instances serve restarts after a crash. It uses AES-256-GCM from the
// standard library with a 32-byte master key the operator controls: the
// SLIPWAY_MASTER_KEY environment variable, or <state-dir>/master.key (0600),
// generated on first start.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeyEnv names the environment variable that carries the master key (base64
// or hex of 32 bytes). It wins over the key file.
const KeyEnv = "SLIPWAY_MASTER_KEY"

// KeyFile is the master key's file name inside the state dir.
const KeyFile = "master.key"

// prefix marks a sealed value; the version lets a later scheme coexist.
const prefix = "sealed:v1:"

// KeySize is the master key's length in bytes.
const KeySize = 32

// Box seals and opens values with one master key.
type Box struct {
	aead cipher.AEAD
	// Source says where the key came from ("SLIPWAY_MASTER_KEY" or a path), for messages.
	Source string
}

// ErrOpen means a sealed value did not open: another key, or tampering.
var ErrOpen = errors.New("cannot decrypt: the master key does not match (another SLIPWAY_MASTER_KEY or master.key?) or the value was altered")

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("master key: %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return &Box{aead: aead}, nil
}

// ParseKey reads a key written as base64 (standard or URL alphabet, padded or
// not) or as 64 hex digits.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*KeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KeySize {
			return b, nil
		}
	}
	return nil, fmt.Errorf("not a %d-byte key in base64 or hex (make one with: head -c %d /dev/urandom | base64)", KeySize, KeySize)
}

// Load returns the Box of a state dir: the key in getenv(KeyEnv) if set, else
// the one in <dir>/master.key, else a new random key written there with mode
// 0600 (created exclusively, so two starts cannot write different keys). A key
// file readable by others is made 0600.
func Load(dir string, getenv func(string) string) (*Box, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if v := getenv(KeyEnv); v != "" {
		key, err := ParseKey(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", KeyEnv, err)
		}
		b, err := New(key)
		if err != nil {
			return nil, err
		}
		b.Source = KeyEnv
		return b, nil
	}
	path := filepath.Join(dir, KeyFile)
	key, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKeyFile(path)
	}
	if err != nil {
		return nil, err
	}
	b, err := New(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b.Source = path
	return b, nil
}

func readKeyFile(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("making %s private: %w", path, err)
	}
	key, err := ParseKey(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

func createKeyFile(path string) ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generating the master key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readKeyFile(path) // another start won the race
	}
	if err != nil {
		return nil, fmt.Errorf("writing the master key %s: %w", path, err)
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("writing the master key %s: %w", path, err)
	}
	return key, nil
}

// Seal encrypts plain for the given context (e.g. "env/us/API_KEY"): a value
// sealed for one context does not open for another, so rows cannot be swapped.
func (b *Box) Seal(plain []byte, context string) string {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Sprintf("seal: reading random bytes: %v", err)) // the system's RNG failing is not recoverable
	}
	out := b.aead.Seal(nonce, nonce, plain, []byte(context))
	return prefix + base64.RawStdEncoding.EncodeToString(out)
}

// Open decrypts a value Seal made for the same context.
func (b *Box) Open(sealed, context string) ([]byte, error) {
	if !IsSealed(sealed) {
		return nil, errors.New("not a sealed value")
	}
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(sealed, prefix))
	n := b.aead.NonceSize()
	if err != nil || len(raw) < n+b.aead.Overhead() {
		return nil, ErrOpen
	}
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], []byte(context))
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// IsSealed reports whether s is a value Seal made (rather than legacy plaintext).
func IsSealed(s string) bool { return strings.HasPrefix(s, prefix) }
