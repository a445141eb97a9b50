package secret

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testBox(t *testing.T) *Box {
	t.Helper()
	b, err := NewBox(make([]byte, KeySize))
	require.NoError(t, err)
	return b
}

func TestSealOpen(t *testing.T) {
	b := testBox(t)
	for _, pt := range []string{"", "x", "S3cr3t!", strings.Repeat("é", 1024)} {
		sealed, err := b.Seal(pt)
		require.NoError(t, err)
		if pt != "" {
			assert.True(t, strings.HasPrefix(sealed, "v1:"))
			if len(pt) > 4 {
				assert.NotContains(t, sealed, pt, "ciphertext must not contain the plaintext")
			}
		}
		got, err := b.Open(sealed)
		require.NoError(t, err)
		assert.Equal(t, pt, got)
	}
	s1, _ := b.Seal("same")
	s2, _ := b.Seal("same")
	assert.NotEqual(t, s1, s2, "nonces must differ")
}

func TestOpenRejectsTamperingAndWrongKey(t *testing.T) {
	b := testBox(t)
	sealed, err := b.Seal("secret")
	require.NoError(t, err)
	raw := []byte(sealed)
	raw[len(raw)-2] ^= 1
	_, err = b.Open(string(raw))
	assert.ErrorIs(t, err, ErrUndecryptable)

	k := make([]byte, KeySize)
	k[0] = 1
	other, err := NewBox(k)
	require.NoError(t, err)
	_, err = other.Open(sealed)
	assert.ErrorIs(t, err, ErrUndecryptable)

	for _, bad := range []string{"v2:abc", "v1:!!!", "v1:", "plain"} {
		_, err := b.Open(bad)
		assert.ErrorIs(t, err, ErrUndecryptable, bad)
	}
}

func TestParseKey(t *testing.T) {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = byte(i)
	}
	for _, s := range []string{
		base64.StdEncoding.EncodeToString(k),
		base64.RawURLEncoding.EncodeToString(k),
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	} {
		got, err := ParseKey(s)
		require.NoError(t, err, s)
		assert.Equal(t, k, got)
	}
	for _, s := range []string{"", "short", base64.StdEncoding.EncodeToString(k[:16])} {
		_, err := ParseKey(s)
		assert.Error(t, err, s)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateKey("", dir)
	require.NoError(t, err)
	st, err := os.Stat(filepath.Join(dir, KeyFileName))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	k2, err := LoadOrCreateKey("", dir)
	require.NoError(t, err)
	assert.Equal(t, k1, k2, "the key file is reused")

	conf := base64.StdEncoding.EncodeToString(make([]byte, KeySize))
	k3, err := LoadOrCreateKey(conf, dir)
	require.NoError(t, err)
	assert.Equal(t, make([]byte, KeySize), k3, "a configured key wins over the file")
}

func TestPasswordHash(t *testing.T) {
	old := PasswordIterations
	PasswordIterations = 1000
	t.Cleanup(func() { PasswordIterations = old })

	h, err := HashPassword("correct horse")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(h, "pbkdf2-sha256$1000$"))
	assert.NotContains(t, h, "correct horse")
	assert.True(t, CheckPassword(h, "correct horse"))
	assert.False(t, CheckPassword(h, "correct horsE"))
	assert.False(t, CheckPassword(h, ""))
	for _, bad := range []string{"", "x$1$a$b", "pbkdf2-sha256$0$AA$AA", "pbkdf2-sha256$1000$!!$AA", "pbkdf2-sha256$99999999999$AA$AA"} {
		assert.False(t, CheckPassword(bad, "correct horse"), bad)
	}
	h2, _ := HashPassword("correct horse")
	assert.NotEqual(t, h, h2, "salts differ")
}

func TestRandomString(t *testing.T) {
	s := RandomString(40, UpperDigits)
	assert.Len(t, s, 40)
	for _, c := range s {
		assert.Contains(t, UpperDigits, string(c))
	}
	assert.NotEqual(t, s, RandomString(40, UpperDigits))
}
