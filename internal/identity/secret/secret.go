// Package secret keeps secrets out of the database in clear: it encrypts what
// must be recovered (AK/SK secret keys, target-server passwords) with AES-256-GCM
// and hashes what must only be checked (user passwords, PBKDF2-SHA256).
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// KeySize is the AES-256 key length.
const KeySize = 32

// KeyFileName is the key file created in the data dir when no key is configured.
const KeyFileName = "secret.key"

// Box encrypts and decrypts small secrets. Ciphertexts are "v1:" followed by
// base64(nonce || sealed), so the scheme can change without ambiguity.
type Box struct {
	aead cipher.AEAD
}

// NewBox makes a Box from a 32-byte key.
func NewBox(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret: key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	return &Box{aead: aead}, nil
}

// ParseKey decodes a configured key: base64 (std or URL, padded or not) or hex
// of exactly 32 bytes.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KeySize {
			return b, nil
		}
	}
	if b, err := hex.DecodeString(s); err == nil && len(b) == KeySize {
		return b, nil
	}
	return nil, errors.New("secret: key must be 32 bytes in base64 or hex")
}

// LoadOrCreateKey returns the configured key, or the one in
// <dataDir>/secret.key, creating that file (mode 0600) with a random key on
// first start. Losing the file makes stored secrets unreadable: back it up
// with the database.
func LoadOrCreateKey(configured, dataDir string) ([]byte, error) {
	if configured != "" {
		return ParseKey(configured)
	}
	if dataDir == "" {
		return nil, errors.New("secret: no key configured and no data dir")
	}
	path := filepath.Join(dataDir, KeyFileName)
	if b, err := os.ReadFile(path); err == nil {
		k, err := ParseKey(string(b))
		if err != nil {
			return nil, fmt.Errorf("secret: %s: %w", path, err)
		}
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("secret: read key: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("secret: create data dir: %w", err)
	}
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	// O_EXCL: when two processes start at once, one writes and the other reads.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreateKey("", dataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("secret: create key file: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		return nil, fmt.Errorf("secret: write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("secret: write key file: %w", err)
	}
	return k, nil
}

const prefixV1 = "v1:"

// Seal encrypts plaintext. The empty string seals to the empty string, so
// "no secret" stays distinguishable without decrypting.
func (b *Box) Seal(plaintext string) (string, error) {
	if plaintext == "" {
		return "", nil
	}
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	out := b.aead.Seal(nonce, nonce, []byte(plaintext), nil)
	return prefixV1 + base64.RawStdEncoding.EncodeToString(out), nil
}

// ErrUndecryptable means a ciphertext is corrupt or sealed with another key.
var ErrUndecryptable = errors.New("secret: cannot decrypt (wrong key or corrupt value)")

// Open decrypts what Seal produced.
func (b *Box) Open(sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	if !strings.HasPrefix(sealed, prefixV1) {
		return "", ErrUndecryptable
	}
	raw, err := base64.RawStdEncoding.DecodeString(sealed[len(prefixV1):])
	if err != nil || len(raw) < b.aead.NonceSize() {
		return "", ErrUndecryptable
	}
	ns := b.aead.NonceSize()
	pt, err := b.aead.Open(nil, raw[:ns], raw[ns:], nil)
	if err != nil {
		return "", ErrUndecryptable
	}
	return string(pt), nil
}

// PasswordIterations is the PBKDF2-SHA256 work factor for new hashes (OWASP's
// 2023 figure). Stored hashes carry their own count, so raising it later only
// affects new passwords. Tests may lower it.
var PasswordIterations = 600_000

// HashPassword returns "pbkdf2-sha256$<iter>$<salt>$<hash>".
func HashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	dk, err := pbkdf2.Key(sha256.New, password, salt, PasswordIterations, 32)
	if err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	return fmt.Sprintf("pbkdf2-sha256$%d$%s$%s", PasswordIterations,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(dk)), nil
}

// CheckPassword tells whether password matches a hash from HashPassword, in
// constant time with respect to the hash contents.
func CheckPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > 10_000_000 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[2])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, iter, len(want))
	if err != nil {
		return false
	}
	return hmac.Equal(got, want)
}

// RandomString returns n characters from alphabet using crypto/rand.
func RandomString(n int, alphabet string) string {
	out := make([]byte, n)
	buf := make([]byte, n)
	limit := 256 - 256%len(alphabet) // reject bytes that would bias the draw
	for i := 0; i < n; {
		if _, err := rand.Read(buf); err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		for _, c := range buf {
			if int(c) < limit && i < n {
				out[i] = alphabet[int(c)%len(alphabet)]
				i++
			}
		}
	}
	return string(out)
}

// Alphabets for generated credentials.
const (
	Upper        = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	UpperDigits  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	AlphaNumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	Hex          = "0123456789abcdef"
)
