package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm/schema"

	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
)

var ctx = context.Background()

func TestParseDSN(t *testing.T) {
	cases := []struct {
		in      string
		dialect store.Dialect
		redact  string
		bad     bool
	}{
		{in: "", dialect: store.SQLite, redact: "/data/smsflow.db"},
		{in: "sqlite:///tmp/x.db", dialect: store.SQLite, redact: "/tmp/x.db"},
		{in: "file:/tmp/y.db?cache=shared", dialect: store.SQLite, redact: "/tmp/y.db"},
		{in: "mysql://u:pw@tcp(db:3306)/sms?timeout=5s", dialect: store.MySQL, redact: "u:***@tcp(db:3306)/sms"},
		{in: "root@tcp(127.0.0.1:3306)/test", dialect: store.MySQL, redact: "root@tcp(127.0.0.1:3306)/test"},
		{in: "mysql://u:pw@tcp(db:3306)/", bad: true},
		{in: "postgres://x", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := store.ParseDSN(tc.in, "/data")
			if tc.bad {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.dialect, got.Dialect)
			assert.Contains(t, got.Redacted, tc.redact)
			assert.NotContains(t, got.Redacted, "pw")
			if tc.dialect == store.MySQL {
				assert.Contains(t, got.DSN, "parseTime=true")
				assert.Contains(t, got.DSN, "charset=utf8mb4")
				assert.Contains(t, got.DSN, "clientFoundRows=true")
			}
		})
	}
}

// TestOpenOddDataDir: a data dir whose name holds URI delimiters opens the
// file inside it, not a file named by the part before the '#' or '?' (subtests
// with repeated names get "#01" in their temp dirs, and so can operators).
func TestOpenOddDataDir(t *testing.T) {
	for _, name := range []string{"runs#2", "what?", "100%"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), name)
			require.NoError(t, os.MkdirAll(dir, 0o700))
			s, err := store.Open(ctx, store.Options{DSN: "sqlite://" + filepath.Join(dir, "smsflow.db")})
			require.NoError(t, err)
			require.NoError(t, s.Close())
			_, err = os.Stat(filepath.Join(dir, "smsflow.db"))
			assert.NoError(t, err, "the database file is inside the odd dir")
		})
	}
}

// TestMigrations: applied once, recorded, idempotent on reopen, and every
// column of every live model exists in the migrated schema (a forgotten
// migration fails here).
func TestMigrations(t *testing.T) {
	for _, d := range testdb.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			dsn := testdb.DSN(t, d)
			s, err := store.Open(ctx, store.Options{DSN: dsn})
			require.NoError(t, err)
			ids, err := s.AppliedMigrations(ctx)
			require.NoError(t, err)
			require.NotEmpty(t, ids)
			assert.Equal(t, "0001_tenancy_migprojects_templates", ids[0])
			require.NoError(t, s.Close())

			s2, err := store.Open(ctx, store.Options{DSN: dsn})
			require.NoError(t, err)
			defer s2.Close()
			ids2, err := s2.AppliedMigrations(ctx)
			require.NoError(t, err)
			assert.Equal(t, ids, ids2, "reopening applies nothing twice")

			m := s2.DB().Migrator()
			for _, model := range store.Models() {
				sch, err := schema.Parse(model, &sync.Map{}, s2.DB().NamingStrategy)
				require.NoError(t, err)
				require.True(t, m.HasTable(sch.Table), "table %s", sch.Table)
				for _, f := range sch.Fields {
					if f.DBName == "" {
						continue
					}
					assert.True(t, m.HasColumn(model, f.DBName), "%s.%s missing from migrations", sch.Table, f.DBName)
				}
			}
		})
	}
}

func tenant() store.Tenant {
	return store.Tenant{DomainID: uuid.NewString(), ProjectID: uuid.NewString()}
}

func newMigProject(name string) *store.MigProject {
	return &store.MigProject{ID: uuid.NewString(), Name: name, Region: "region", Type: "MIGRATE_BLOCK",
		StartTargetServer: true, UsePublicIP: true, ExistServer: true, EnterpriseProject: "default"}
}

// countDefaults counts the default projects among the tenant's (at most
// 100) migration projects; total is how many it has.
func countDefaults(t *testing.T, s *store.Store, ten store.Tenant) (defaults int, total int64) {
	t.Helper()
	all, total, err := s.MigProjects(ctx, ten, store.Page{Limit: 100})
	require.NoError(t, err)
	for _, p := range all {
		if p.IsDefault {
			defaults++
		}
	}
	return defaults, total
}

func TestMigProjects(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		a, b := tenant(), tenant()
		p1 := newMigProject("first")
		p1.IsDefault = false // the first one becomes default anyway
		require.NoError(t, s.CreateMigProject(ctx, a, p1))
		assert.True(t, p1.IsDefault)

		p2 := newMigProject("second")
		require.NoError(t, s.CreateMigProject(ctx, a, p2))
		assert.False(t, p2.IsDefault)

		dup := newMigProject("second")
		assert.ErrorIs(t, s.CreateMigProject(ctx, a, dup), store.ErrDuplicate)
		// The same name in another tenant is fine, and is that tenant's default.
		other := newMigProject("second")
		require.NoError(t, s.CreateMigProject(ctx, b, other))
		assert.True(t, other.IsDefault)

		second := newMigProject("third")
		second.IsDefault = true
		assert.ErrorIs(t, s.CreateMigProject(ctx, a, second), store.ErrConflict, "a second default is refused")

		// Tenant isolation: b cannot see, update, delete or default a's rows.
		_, err := s.MigProject(ctx, b, p1.ID)
		assert.ErrorIs(t, err, store.ErrNotFound)
		assert.ErrorIs(t, s.SetDefaultMigProject(ctx, b, p2.ID), store.ErrNotFound)
		assert.ErrorIs(t, s.DeleteMigProject(ctx, b, p2.ID), store.ErrNotFound)
		upd := *p2
		upd.Name = "hijack"
		assert.ErrorIs(t, s.UpdateMigProject(ctx, b, &upd), store.ErrNotFound)

		// Paging and count.
		list, total, err := s.MigProjects(ctx, a, store.Page{Limit: 1, Offset: 1})
		require.NoError(t, err)
		assert.EqualValues(t, 2, total)
		require.Len(t, list, 1)
		assert.Equal(t, p2.ID, list[0].ID)
		list, total, err = s.MigProjects(ctx, a, store.Page{Limit: 0})
		require.NoError(t, err)
		assert.EqualValues(t, 2, total)
		assert.Empty(t, list)

		// Default moves; exactly one default remains.
		require.NoError(t, s.SetDefaultMigProject(ctx, a, p2.ID))
		def, err := s.DefaultMigProject(ctx, a)
		require.NoError(t, err)
		assert.Equal(t, p2.ID, def.ID)
		defaults, _ := countDefaults(t, s, a)
		assert.Equal(t, 1, defaults)

		// Default cannot be deleted; the other can.
		assert.ErrorIs(t, s.DeleteMigProject(ctx, a, p2.ID), store.ErrDefaultProject)
		require.NoError(t, s.DeleteMigProject(ctx, a, p1.ID))
		_, err = s.MigProject(ctx, a, p1.ID)
		assert.ErrorIs(t, err, store.ErrNotFound)

		// Update: rename, clash, default rules.
		p3 := newMigProject("third")
		require.NoError(t, s.CreateMigProject(ctx, a, p3))
		u := *p3
		u.Name = "renamed"
		u.SpeedLimit = 100
		require.NoError(t, s.UpdateMigProject(ctx, a, &u))
		got, err := s.MigProject(ctx, a, p3.ID)
		require.NoError(t, err)
		assert.Equal(t, "renamed", got.Name)
		assert.EqualValues(t, 100, got.SpeedLimit)
		u.Name = "second"
		assert.ErrorIs(t, s.UpdateMigProject(ctx, a, &u), store.ErrDuplicate)
		u.Name = "renamed"
		u.IsDefault = true
		assert.ErrorIs(t, s.UpdateMigProject(ctx, a, &u), store.ErrConflict)
		d := *def
		d.IsDefault = false
		assert.ErrorIs(t, s.UpdateMigProject(ctx, a, &d), store.ErrConflict)
	})
}

// TestMigProjectConcurrentDefault: two creates racing on an empty tenant leave
// exactly one default.
func TestMigProjectConcurrentDefault(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		a := tenant()
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				errs[i] = s.CreateMigProject(ctx, a, newMigProject(fmt.Sprintf("p%d", i)))
			}(i)
		}
		wg.Wait()
		defaults, total := countDefaults(t, s, a)
		assert.Equal(t, 1, defaults, "exactly one default; errors: %v", errs)
		ok := 0
		for _, e := range errs {
			if e == nil {
				ok++
			}
		}
		assert.EqualValues(t, ok, total)
	})
}

func newTemplate(name string) *store.Template {
	cidr := "192.168.0.0/16"
	id := int64(0)
	return &store.Template{
		ID: uuid.NewString(), Name: name, IsTemplate: true, Region: "region", ProjectID: "p1",
		VPC:            &store.VPC{ID: "autoCreate", Name: "autoCreate", CIDR: &cidr},
		NICs:           []store.NIC{{ID: "n1", Name: "subnet", CIDR: "192.168.0.0/24"}},
		SecurityGroups: []store.SecurityGroup{{ID: "sg", Name: "default"}},
		PublicIP:       &store.PublicIP{Type: "5_bgp", BandwidthSize: 5},
		Disks:          []store.TemplateDisk{{ID: &id, Index: 0, Name: "system", DiskType: "SAS", Size: 40}},
	}
}

func TestTemplates(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		a, b := tenant(), tenant()
		t1 := newTemplate("web")
		require.NoError(t, s.CreateTemplate(ctx, a, t1))
		got, err := s.Template(ctx, a, t1.ID)
		require.NoError(t, err)
		assert.Equal(t, t1.VPC, got.VPC)
		assert.Equal(t, t1.NICs, got.NICs)
		assert.Equal(t, t1.Disks, got.Disks)
		assert.Equal(t, t1.PublicIP, got.PublicIP)

		// For display, the nested objects are the stored JSON, in the API's
		// shape; absent ones are empty, whether stored as NULL or null.
		doc, err := s.TemplateDoc(ctx, a, t1.ID)
		require.NoError(t, err)
		assert.Equal(t, "web", doc.Name)
		assert.JSONEq(t, `{"id":"autoCreate","name":"autoCreate","cidr":"192.168.0.0/16"}`, doc.VPC)
		assert.JSONEq(t, `[{"id":"n1","name":"subnet","cidr":"192.168.0.0/24"}]`, doc.NICs)
		assert.JSONEq(t, `[{"id":"sg","name":"default"}]`, doc.SecurityGroups)
		assert.JSONEq(t, `{"type":"5_bgp","bandwidth_size":5}`, doc.PublicIP)
		assert.JSONEq(t, `[{"id":0,"index":0,"name":"system","disktype":"SAS","size":40}]`, doc.Disks)
		bare := &store.Template{ID: uuid.NewString(), Name: "bare", Region: "region", ProjectID: "p1"}
		require.NoError(t, s.CreateTemplate(ctx, a, bare))
		doc, err = s.TemplateDoc(ctx, a, bare.ID)
		require.NoError(t, err)
		for _, raw := range []string{doc.VPC, doc.NICs, doc.SecurityGroups, doc.PublicIP, doc.Disks} {
			assert.Contains(t, []string{"", "null"}, raw)
		}
		_, err = s.TemplateDoc(ctx, b, t1.ID)
		assert.ErrorIs(t, err, store.ErrNotFound, "another tenant's")
		require.NoError(t, s.DeleteTemplates(ctx, a, []string{bare.ID}))

		assert.ErrorIs(t, s.CreateTemplate(ctx, a, newTemplate("web")), store.ErrDuplicate)
		assert.ErrorIs(t, s.CreateTemplate(ctx, a, newTemplate("WEB")), nil, "names are case sensitive on both databases")
		require.NoError(t, s.CreateTemplate(ctx, b, newTemplate("web")), "other tenant")
		// Empty names never collide.
		require.NoError(t, s.CreateTemplate(ctx, a, newTemplate("")))
		require.NoError(t, s.CreateTemplate(ctx, a, newTemplate("")))

		_, err = s.Template(ctx, b, t1.ID)
		assert.ErrorIs(t, err, store.ErrNotFound)

		// Filters and paging.
		z := newTemplate("zoned")
		z.AvailabilityZone = "az1"
		z.Region = "r2"
		require.NoError(t, s.CreateTemplate(ctx, a, z))
		list, total, err := s.Templates(ctx, a, store.TemplateFilter{AvailabilityZone: "az1"}, store.Page{Limit: 50})
		require.NoError(t, err)
		assert.EqualValues(t, 1, total)
		require.Len(t, list, 1)
		assert.Equal(t, z.ID, list[0].ID)
		_, total, err = s.Templates(ctx, a, store.TemplateFilter{Region: "region"}, store.Page{Limit: 50})
		require.NoError(t, err)
		assert.EqualValues(t, 4, total)
		list, total, err = s.Templates(ctx, a, store.TemplateFilter{}, store.Page{Limit: 2, Offset: 4})
		require.NoError(t, err)
		assert.EqualValues(t, 5, total)
		assert.Len(t, list, 1)

		// Update.
		u := *got
		u.Name = "web2"
		u.NICs = nil
		require.NoError(t, s.UpdateTemplate(ctx, a, &u))
		got2, err := s.Template(ctx, a, t1.ID)
		require.NoError(t, err)
		assert.Equal(t, "web2", got2.Name)
		assert.Empty(t, got2.NICs)
		// Writing what the row already holds still finds it (MySQL counts
		// changed rows unless told to count matched ones).
		require.NoError(t, s.UpdateTemplate(ctx, a, &u), "a no-op update is not a not-found")
		require.NoError(t, s.UpdateTemplate(ctx, a, &u), "a no-op update is not a not-found")
		u.Name = "zoned"
		assert.ErrorIs(t, s.UpdateTemplate(ctx, a, &u), store.ErrDuplicate)
		assert.ErrorIs(t, s.UpdateTemplate(ctx, b, &u), store.ErrNotFound)

		// Batch delete is all or nothing.
		err = s.DeleteTemplates(ctx, a, []string{t1.ID, "nope"})
		var miss *store.MissingError
		require.ErrorAs(t, err, &miss)
		assert.Equal(t, []string{"nope"}, miss.IDs)
		assert.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.Template(ctx, a, t1.ID)
		require.NoError(t, err, "nothing deleted")
		require.NoError(t, s.DeleteTemplates(ctx, a, []string{t1.ID, z.ID, t1.ID}))
		_, err = s.Template(ctx, a, z.ID)
		assert.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestTemplateQuota(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		a := tenant()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var limited, ok int
		for i := 0; i < store.MaxTemplatesPerTenant+10; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				err := s.CreateTemplate(ctx, a, newTemplate(fmt.Sprintf("t%02d", i)))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, store.ErrLimit):
					limited++
				default:
					t.Errorf("unexpected: %v", err)
				}
			}(i)
		}
		wg.Wait()
		assert.Equal(t, store.MaxTemplatesPerTenant, ok)
		assert.Equal(t, 10, limited)
		_, total, err := s.Templates(ctx, a, store.TemplateFilter{}, store.Page{Limit: 100})
		require.NoError(t, err)
		assert.EqualValues(t, store.MaxTemplatesPerTenant, total)
	})
}

func TestTenancyRows(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		now := time.Now().UTC()
		d := &store.Domain{ID: "d1", Name: "acme", Enabled: true, CreatedAt: now}
		p := &store.Project{ID: "p1", DomainID: "d1", Name: "region-1", CreatedAt: now}
		u := &store.User{ID: "u1", DomainID: "d1", Name: "admin", PasswordHash: "h", Enabled: true, CreatedAt: now}
		k := &store.AccessKey{AK: "AK1", DomainID: "d1", UserID: "u1", SKEnc: "v1:x", CreatedAt: now}
		created, err := s.Bootstrap(ctx, d, p, u, k)
		require.NoError(t, err)
		assert.True(t, created)
		created, err = s.Bootstrap(ctx, &store.Domain{ID: "d2", Name: "x", Enabled: true, CreatedAt: now}, p, u, k)
		require.NoError(t, err)
		assert.False(t, created, "bootstrap runs only on an empty database")

		got, err := s.ActiveAccessKey(ctx, "AK1")
		require.NoError(t, err)
		assert.Equal(t, "admin", got.UserName)
		assert.Equal(t, "acme", got.DomainName)

		tok := &store.Token{Hash: "h1", DomainID: "d1", UserID: "u1", ProjectID: "p1", ExpiresAt: now.Add(time.Hour), CreatedAt: now}
		require.NoError(t, s.CreateToken(ctx, tok))
		_, err = s.ActiveToken(ctx, "h1", now)
		require.NoError(t, err)
		_, err = s.ActiveToken(ctx, "h1", now.Add(2*time.Hour))
		assert.ErrorIs(t, err, store.ErrNotFound, "expired")

		// Disabling the user kills its key and tokens.
		require.NoError(t, s.SetUserEnabled(ctx, "d1", "u1", false))
		_, err = s.ActiveAccessKey(ctx, "AK1")
		assert.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.ActiveToken(ctx, "h1", now)
		assert.ErrorIs(t, err, store.ErrNotFound)
		require.NoError(t, s.SetUserEnabled(ctx, "d1", "u1", true))
		require.NoError(t, s.SetUserEnabled(ctx, "d1", "u1", true), "enabling an enabled user is not a not-found")
		_, err = s.ActiveAccessKey(ctx, "AK1")
		require.NoError(t, err)

		require.NoError(t, s.RevokeAccessKey(ctx, "d1", "AK1"))
		assert.ErrorIs(t, s.RevokeAccessKey(ctx, "d1", "AK1"), store.ErrNotFound)
		_, err = s.ActiveAccessKey(ctx, "AK1")
		assert.ErrorIs(t, err, store.ErrNotFound)
		keys, err := s.AccessKeys(ctx, "d1")
		require.NoError(t, err)
		require.Len(t, keys, 1)
		assert.NotNil(t, keys[0].RevokedAt)
		assert.Empty(t, keys[0].SKEnc, "listing never loads the SK")

		assert.ErrorIs(t, s.CreateUser(ctx, &store.User{ID: "u2", DomainID: "d1", Name: "admin", CreatedAt: now}), store.ErrDuplicate)
		pr, err := s.Project(ctx, "d1", "region-1")
		require.NoError(t, err)
		assert.Equal(t, "p1", pr.ID)
		_, err = s.Project(ctx, "d2", "p1")
		assert.ErrorIs(t, err, store.ErrNotFound)
	})
}
