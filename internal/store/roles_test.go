package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
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
			// The bootstrap domain: its admin opened the Temporal UI, its
			// other users did not, and must not after the upgrade.
			require.NoError(t, db.Exec("INSERT INTO domains (id, name, enabled, created_at) VALUES (?, ?, ?, ?)", "d0", "smsflow", true, now).Error)
			for _, u := range [][2]string{{"u0", "admin"}, {"u9", "bob"}} {
				require.NoError(t, db.Exec("INSERT INTO users (id, domain_id, name, password_hash, enabled, created_at) VALUES (?, ?, ?, ?, ?, ?)",
					u[0], "d0", u[1], "x", true, now).Error)
			}
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
			u, err = s2.UserByName(ctx, "d0", "admin")
			require.NoError(t, err)
			assert.Equal(t, "admin", u.Role, "the bootstrap user")
			u, err = s2.UserByName(ctx, "d0", "bob")
			require.NoError(t, err)
			assert.Equal(t, "operator", u.Role, "another user of the bootstrap domain gains no Temporal UI")
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

// TestAgentKeyBinding: registering with an agent key binds it to the
// source, once; two registrations of different machines racing with one
// fresh key bind it to exactly one, and the loser writes nothing.
func TestAgentKeyBinding(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ten := tenant()
		now := time.Now().UTC()
		require.NoError(t, s.CreateDomain(ctx, &store.Domain{ID: ten.DomainID, Name: "d-" + ten.DomainID[:8], Enabled: true, CreatedAt: now}))
		require.NoError(t, s.CreateUser(ctx, &store.User{ID: "u-" + ten.DomainID[:8], DomainID: ten.DomainID, Name: "agent",
			PasswordHash: "x", Enabled: true, Role: "agent", CreatedAt: now}))
		key := func(ak string) string {
			require.NoError(t, s.CreateAccessKey(ctx, &store.AccessKey{AK: ak, DomainID: ten.DomainID, UserID: "u-" + ten.DomainID[:8],
				SKEnc: "enc", Role: "agent", CreatedAt: now}))
			return ak
		}
		machine := func(name string) store.Registration {
			mk := "mk-" + name
			return store.Registration{NewID: uuid.NewString, Source: &store.Source{Name: name, Hostname: name, IP: "10.0.0.1",
				OSType: "LINUX", OSVersion: "CENTOS7.9", AgentVersion: "test", State: "waiting", MigrationCycle: "checking", MachineKey: &mk}}
		}
		count := func() int64 {
			_, n, err := s.Sources(ctx, ten, store.SourceFilter{}, store.Page{Limit: 1})
			require.NoError(t, err)
			return n
		}

		a := key("AGENTKEYA" + ten.DomainID[:8])
		reg := machine("a")
		reg.AgentKey = a
		id, created, err := s.RegisterSource(ctx, ten, reg)
		require.NoError(t, err)
		assert.True(t, created)
		got, err := s.AccessKeySource(ctx, a)
		require.NoError(t, err)
		assert.Equal(t, id, got)

		reg = machine("b")
		reg.AgentKey = a
		_, _, err = s.RegisterSource(ctx, ten, reg)
		require.ErrorIs(t, err, store.ErrBoundElsewhere)
		assert.Equal(t, int64(1), count(), "the refused registration created nothing")

		// A second key cannot take machine a while key a is live.
		b := key("AGENTKEYB" + ten.DomainID[:8])
		reg = machine("a")
		reg.AgentKey = b
		_, _, err = s.RegisterSource(ctx, ten, reg)
		require.ErrorIs(t, err, store.ErrBoundElsewhere)

		// Racing: one fresh key, two machines at once; one wins.
		c := key("AGENTKEYC" + ten.DomainID[:8])
		errs := make(chan error, 2)
		for _, name := range []string{"c1", "c2"} {
			go func() {
				reg := machine(name)
				reg.AgentKey = c
				_, _, err := s.RegisterSource(ctx, ten, reg)
				errs <- err
			}()
		}
		e1, e2 := <-errs, <-errs
		assert.True(t, (e1 == nil) != (e2 == nil), "exactly one wins: %v, %v", e1, e2)
		for _, err := range []error{e1, e2} {
			if err != nil {
				assert.ErrorIs(t, err, store.ErrBoundElsewhere)
			}
		}
		assert.Equal(t, int64(2), count(), "machine a and the winner")
	})
}
