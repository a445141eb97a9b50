package iam_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/identity/signer"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
	"github.com/smsflow/smsflow/internal/testkit/testutil"
)

var ctx = context.Background()

func newService(t *testing.T, s *store.Store, logs *testutil.Buffer, now func() time.Time) *iam.Service {
	t.Helper()
	box, err := secret.NewBox(bytes.Repeat([]byte{3}, secret.KeySize))
	require.NoError(t, err)
	return iam.New(s, box, iam.Options{CacheTTL: 10 * time.Second, Now: now,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
}

// dumpDB concatenates every text cell of the tables holding secrets.
func dumpDB(t *testing.T, s *store.Store) string {
	t.Helper()
	var sb strings.Builder
	for _, table := range []string{"domains", "projects", "users", "access_keys", "tokens"} {
		rows, err := s.DB().Table(table).Rows()
		require.NoError(t, err)
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(t, rows.Scan(ptrs...))
			for _, v := range vals {
				switch x := v.(type) {
				case string:
					sb.WriteString(x + "\n")
				case []byte:
					sb.Write(x)
					sb.WriteByte('\n')
				}
			}
		}
		rows.Close()
	}
	return sb.String()
}

func TestBootstrap(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		logs := &testutil.Buffer{}
		svc := newService(t, s, logs, nil)
		dir := t.TempDir()
		env := map[string]string{
			"SMSFLOW_ADMIN_PASSWORD":   "Admin-Pa55word",
			"SMSFLOW_ADMIN_AK":         "HPUABOOTSTRAPAK00001",
			"SMSFLOW_ADMIN_SK":         "bootstrap-secret-key-0123456789",
			"SMSFLOW_ADMIN_PROJECT_ID": "0123456789abcdef0123456789abcdef",
		}
		path, err := svc.Bootstrap(ctx, dir, func(k string) string { return env[k] })
		require.NoError(t, err)
		require.Equal(t, filepath.Join(dir, iam.CredentialsFile), path)
		st, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		var m map[string]string
		require.NoError(t, json.Unmarshal(raw, &m))
		for _, k := range []string{"domain_id", "domain_name", "project_id", "user", "password", "ak", "sk"} {
			assert.NotEmpty(t, m[k], k)
		}
		assert.Equal(t, env["SMSFLOW_ADMIN_PASSWORD"], m["password"])
		assert.Equal(t, env["SMSFLOW_ADMIN_AK"], m["ak"])
		assert.Equal(t, env["SMSFLOW_ADMIN_SK"], m["sk"])
		assert.Equal(t, env["SMSFLOW_ADMIN_PROJECT_ID"], m["project_id"])

		// Secrets are neither in the database in clear nor in the logs.
		db := dumpDB(t, s)
		for _, secretValue := range []string{m["password"], m["sk"]} {
			assert.NotContains(t, db, secretValue)
			assert.NotContains(t, logs.String(), secretValue)
		}
		assert.Contains(t, logs.String(), path, "the log names the file")

		// The credentials work: a token, and a signed request.
		tok, err := svc.IssueToken(ctx, iam.PasswordAuth{DomainName: m["domain_name"], UserName: m["user"], Password: m["password"]})
		require.NoError(t, err)
		assert.Equal(t, m["project_id"], tok.Principal.ProjectID)
		req, _ := http.NewRequest("GET", "http://h/v3/migprojects", nil)
		req.Header.Set("X-Project-Id", m["project_id"])
		require.NoError(t, signer.Sign(req, nil, m["ak"], m["sk"], time.Now()))
		p, err := svc.AuthenticateSigned(ctx, req, nil)
		require.NoError(t, err)
		assert.Equal(t, m["domain_id"], p.DomainID)
		assert.Equal(t, "aksk", p.Method)
		assert.NotContains(t, logs.String(), tok.Token)

		// A second start changes nothing.
		path2, err := svc.Bootstrap(ctx, t.TempDir(), nil)
		require.NoError(t, err)
		assert.Empty(t, path2)
	})
}

func TestBootstrapRandomAndInvalid(t *testing.T) {
	s := testdb.Open(t, store.SQLite)
	svc := newService(t, s, &testutil.Buffer{}, nil)
	_, err := svc.Bootstrap(ctx, t.TempDir(), func(k string) string {
		return map[string]string{"SMSFLOW_ADMIN_AK": "ONLYAKNOSK000000"}[k]
	})
	assert.ErrorContains(t, err, "SMSFLOW_ADMIN_SK")
	_, err = svc.Bootstrap(ctx, t.TempDir(), func(k string) string {
		return map[string]string{"SMSFLOW_ADMIN_PASSWORD": "short"}[k]
	})
	assert.ErrorContains(t, err, "SMSFLOW_ADMIN_PASSWORD")

	dir := t.TempDir()
	path, err := svc.Bootstrap(ctx, dir, func(string) string { return "" })
	require.NoError(t, err)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var c iam.Credentials
	require.NoError(t, json.Unmarshal(raw, &c))
	assert.Len(t, c.AK, 20)
	assert.Len(t, c.SK, 40)
	assert.GreaterOrEqual(t, len(c.Password), 20)
	assert.Len(t, c.ProjectID, 32)
}

func TestTokenCacheHonoursExpiryAndRevocation(t *testing.T) {
	s := testdb.Open(t, store.SQLite)
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	svc := newService(t, s, &testutil.Buffer{}, clock)
	_, err := svc.Bootstrap(ctx, t.TempDir(), nil)
	require.NoError(t, err)
	_, pw, err := svc.CreateUser(ctx, "smsflow", "ops", "")
	require.NoError(t, err)

	tok, err := svc.IssueToken(ctx, iam.PasswordAuth{DomainName: "smsflow", UserName: "ops", Password: pw})
	require.NoError(t, err)
	assert.Equal(t, now.Add(24*time.Hour), tok.ExpiresAt)
	_, err = svc.AuthenticateToken(ctx, tok.Token)
	require.NoError(t, err)

	advance(24*time.Hour + time.Second)
	_, err = svc.AuthenticateToken(ctx, tok.Token)
	assert.ErrorIs(t, err, iam.ErrBadToken, "expired, even though it was cached")

	tok2, err := svc.IssueToken(ctx, iam.PasswordAuth{DomainName: "smsflow", UserName: "ops", Password: pw})
	require.NoError(t, err)
	_, err = svc.AuthenticateToken(ctx, tok2.Token)
	require.NoError(t, err)
	require.NoError(t, svc.SetUserEnabled(ctx, "smsflow", "ops", false))
	_, err = svc.AuthenticateToken(ctx, tok2.Token)
	assert.ErrorIs(t, err, iam.ErrBadToken, "disabling the user revokes at once in this process")
	_, err = svc.IssueToken(ctx, iam.PasswordAuth{DomainName: "smsflow", UserName: "ops", Password: pw})
	assert.ErrorIs(t, err, iam.ErrBadCredentials)
}

func TestAccessKeyRevocation(t *testing.T) {
	s := testdb.Open(t, store.SQLite)
	svc := newService(t, s, &testutil.Buffer{}, nil)
	_, err := svc.Bootstrap(ctx, t.TempDir(), nil)
	require.NoError(t, err)
	k, err := svc.CreateAccessKey(ctx, "smsflow", "admin", "ci")
	require.NoError(t, err)
	req, _ := http.NewRequest("GET", "http://h/v3/migprojects", nil)
	require.NoError(t, signer.Sign(req, nil, k.AK, k.SK, time.Now()))
	_, err = svc.AuthenticateSigned(ctx, req, nil)
	require.NoError(t, err)
	require.NoError(t, svc.RevokeAccessKey(ctx, "smsflow", k.AK))
	_, err = svc.AuthenticateSigned(ctx, req, nil)
	assert.ErrorIs(t, err, iam.ErrBadSignature)
	assert.ErrorIs(t, svc.RevokeAccessKey(ctx, "smsflow", k.AK), store.ErrNotFound)
}

func BenchmarkAuthenticateSigned(b *testing.B) {
	s := testdb.Open(b, store.SQLite)
	box, _ := secret.NewBox(bytes.Repeat([]byte{3}, secret.KeySize))
	svc := iam.New(s, box, iam.Options{CacheTTL: time.Minute})
	dir := b.TempDir()
	path, err := svc.Bootstrap(ctx, dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	var c iam.Credentials
	_ = json.Unmarshal(raw, &c)
	req, _ := http.NewRequest("GET", "http://h/v3/sources?limit=200&offset=0", nil)
	req.Header.Set("X-Project-Id", c.ProjectID)
	req.Header.Set("User-Agent", "huaweicloud-usdk-go/3.0")
	if err := signer.Sign(req, nil, c.AK, c.SK, time.Now()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.AuthenticateSigned(ctx, req, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAuthenticateToken(b *testing.B) {
	s := testdb.Open(b, store.SQLite)
	box, _ := secret.NewBox(bytes.Repeat([]byte{3}, secret.KeySize))
	svc := iam.New(s, box, iam.Options{CacheTTL: time.Minute})
	path, err := svc.Bootstrap(ctx, b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	var c iam.Credentials
	_ = json.Unmarshal(raw, &c)
	tok, err := svc.IssueToken(ctx, iam.PasswordAuth{DomainName: c.DomainName, UserName: c.User, Password: c.Password})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.AuthenticateToken(ctx, tok.Token); err != nil {
			b.Fatal(err)
		}
	}
}

// TestProjectHeaderMustBeSigned: X-Project-Id picks the tenant scope, so a
// header added after signing is refused.
func TestProjectHeaderMustBeSigned(t *testing.T) {
	s := testdb.Open(t, store.SQLite)
	svc := newService(t, s, &testutil.Buffer{}, nil)
	_, err := svc.Bootstrap(ctx, t.TempDir(), nil)
	require.NoError(t, err)
	k, err := svc.CreateAccessKey(ctx, "smsflow", "admin", "")
	require.NoError(t, err)
	req, _ := http.NewRequest("GET", "http://h/v3/migprojects", nil)
	require.NoError(t, signer.Sign(req, nil, k.AK, k.SK, time.Now()))
	req.Header.Set("X-Project-Id", "injected")
	_, err = svc.AuthenticateSigned(ctx, req, nil)
	assert.ErrorIs(t, err, iam.ErrMalformed)
}
