package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
)

// TestRolesMigration: a database from before roles (0006) keeps working:
// 0007 makes its users and keys admin, its keys bound to no source.
func TestRolesMigration(t *testing.T) {
	for _, d := range testdb.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			dsn := testdb.DSN(t, d)
			s, err := store.Open(ctx, store.Options{DSN: dsn, DataDir: t.TempDir()})
			require.NoError(t, err)
			// Back to the schema before 0007, with rows written then.
			db := s.DB()
			m := db.Migrator()
			for _, c := range []struct {
				model any
				col   string
			}{
				{&store.User{}, "role"}, {&store.AccessKey{}, "role"}, {&store.AccessKey{}, "source_id"},
			} {
				require.NoError(t, m.DropColumn(c.model, c.col))
			}
			require.NoError(t, db.Exec("DELETE FROM schema_migrations WHERE id = ?", "0007_roles").Error)
			now := time.Now().UTC()
			require.NoError(t, db.Exec("INSERT INTO domains (id, name, enabled, created_at) VALUES (?, ?, ?, ?)", "d1", "acme", true, now).Error)
			require.NoError(t, db.Exec("INSERT INTO users (id, domain_id, name, password_hash, enabled, created_at) VALUES (?, ?, ?, ?, ?, ?)",
				"u1", "d1", "alice", "x", true, now).Error)
			require.NoError(t, db.Exec("INSERT INTO access_keys (ak, domain_id, user_id, sk_enc, description, created_at) VALUES (?, ?, ?, ?, ?, ?)",
				"AK1", "d1", "u1", "enc", "old", now).Error)
			require.NoError(t, s.Close())

			s2, err := store.Open(ctx, store.Options{DSN: dsn, DataDir: t.TempDir()})
			require.NoError(t, err)
			defer s2.Close()
			ids, err := s2.AppliedMigrations(ctx)
			require.NoError(t, err)
			assert.Contains(t, ids, "0007_roles")
			u, err := s2.UserByName(ctx, "d1", "alice")
			require.NoError(t, err)
			assert.Equal(t, "admin", u.Role)
			k, err := s2.ActiveAccessKey(ctx, "AK1")
			require.NoError(t, err)
			assert.Equal(t, "admin", k.Role)
			assert.Equal(t, "admin", k.UserRole)
			assert.Nil(t, k.SourceID)
			src, err := s2.AccessKeySource(ctx, "AK1")
			require.NoError(t, err)
			assert.Empty(t, src)

			// Rows written now carry their own role.
			require.NoError(t, s2.CreateUser(ctx, &store.User{ID: "u2", DomainID: "d1", Name: "vera", PasswordHash: "x",
				Enabled: true, Role: "viewer", CreatedAt: now}))
			require.NoError(t, s2.SetUserRole(ctx, "d1", "u1", "operator"))
			u, err = s2.UserByName(ctx, "d1", "alice")
			require.NoError(t, err)
			assert.Equal(t, "operator", u.Role)
			assert.ErrorIs(t, s2.SetUserRole(ctx, "other", "u1", "viewer"), store.ErrNotFound, "another domain's user")
		})
	}
}
