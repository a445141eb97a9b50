// Package store holds the GORM models of smsflow and the queries on them.
//
// Every row carries its tenant (the domain, i.e. the account; the project where
// the spec has one) and every query takes a Tenant, so no code path can read or
// write another account's rows by forgetting a WHERE clause. The same code runs
// on SQLite (the embedded default, pure Go) and MySQL 8 / MariaDB (production).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	// modernc.org/sqlite is the pure-Go SQLite that the embedded Temporal
	// server also links. github.com/glebarez/sqlite cannot be used: its driver
	// registers the same database/sql name ("sqlite") and the process panics at
	// init when both are linked into `smsflow serve`.
	_ "modernc.org/sqlite"
)

// Dialect names the SQL database behind a Store.
type Dialect string

const (
	SQLite Dialect = "sqlite"
	MySQL  Dialect = "mysql"
)

// Store is the database of smsflow. Its methods are grouped by entity, one file
// per entity; consumers depend on narrow interfaces of their own.
type Store struct {
	db      *gorm.DB
	dialect Dialect
	log     *slog.Logger
}

// Tenant scopes every query: DomainID is the account; ProjectID the IAM project
// chosen by the caller (X-Project-Id or the token's scope).
type Tenant struct {
	DomainID  string
	ProjectID string
}

// Options configure Open.
type Options struct {
	// DSN selects the database: empty means a SQLite file in DataDir;
	// "mysql://user:pass@tcp(host:port)/db?..." or a plain go-sql-driver DSN
	// selects MySQL; "sqlite://path" or "file:path" selects a SQLite file.
	DSN     string
	DataDir string
	Logger  *slog.Logger
	// SkipMigrate leaves the schema alone (tests of the migrator itself).
	SkipMigrate bool
}

// Target is a parsed DSN.
type Target struct {
	Dialect Dialect
	// DSN is what the driver gets (secrets included: never log it, use Redacted).
	DSN string
	// Redacted is safe to log.
	Redacted string
}

// ParseDSN decides which database a DSN names and normalises it for the driver.
func ParseDSN(dsn, dataDir string) (Target, error) {
	dsn = strings.TrimSpace(dsn)
	switch {
	case dsn == "":
		if dataDir == "" {
			return Target{}, errors.New("store: empty DSN and no data dir")
		}
		p := filepath.Join(dataDir, "smsflow.db")
		return sqliteTarget(p), nil
	case strings.HasPrefix(dsn, "sqlite://"):
		return sqliteTarget(strings.TrimPrefix(dsn, "sqlite://")), nil
	case strings.HasPrefix(dsn, "file:"):
		p := strings.TrimPrefix(dsn, "file:")
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		return sqliteTarget(p), nil
	case strings.HasPrefix(dsn, "mysql://"):
		dsn = strings.TrimPrefix(dsn, "mysql://")
	}
	cfg, err := mysqldrv.ParseDSN(dsn)
	if err != nil {
		return Target{}, fmt.Errorf("store: DSN is neither empty, sqlite:// nor a MySQL DSN: %w", err)
	}
	if cfg.DBName == "" {
		return Target{}, errors.New("store: MySQL DSN names no database")
	}
	// Times are stored and read as UTC; text is utf8mb4 so names in any script fit.
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	if _, ok := cfg.Params["charset"]; !ok {
		cfg.Params["charset"] = "utf8mb4"
	}
	cfg.MultiStatements = false
	// MySQL counts changed rows, not matched ones: an update that writes the
	// values a row already holds would read as "not found". Found rows give
	// the meaning SQLite has, which the store's RowsAffected checks rely on.
	cfg.ClientFoundRows = true
	out := cfg.FormatDSN()
	red := *cfg
	if red.Passwd != "" {
		red.Passwd = "***"
	}
	return Target{Dialect: MySQL, DSN: out, Redacted: red.FormatDSN()}, nil
}

func sqliteTarget(path string) Target {
	q := url.Values{}
	// WAL lets readers run beside the one writer; IMMEDIATE transactions take
	// the write lock at BEGIN so two writers queue on busy_timeout instead of
	// failing with SQLITE_BUSY when a read transaction tries to upgrade.
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	q.Set("_time_format", "sqlite")
	// The path goes into a SQLite URI: '%', '?' and '#' would end it or be
	// decoded, so a data dir such as "runs#2" would open another file.
	esc := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path)
	dsn := "file:" + esc + "?" + q.Encode()
	return Target{Dialect: SQLite, DSN: dsn, Redacted: path}
}

// Open connects, applies pending schema migrations and returns the Store.
func Open(ctx context.Context, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t, err := ParseDSN(opts.DSN, opts.DataDir)
	if err != nil {
		return nil, err
	}
	gcfg := &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		NowFunc:                func() time.Time { return time.Now().UTC() },
		TranslateError:         false,
	}
	var dial gorm.Dialector
	switch t.Dialect {
	case SQLite:
		if dir := filepath.Dir(t.Redacted); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("store: create data dir: %w", err)
			}
		}
		// The file holds password hashes and sealed secrets: owner only.
		// SQLite gives its -wal and -shm files the database file's mode.
		f, err := os.OpenFile(t.Redacted, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("store: create %s: %w", t.Redacted, err)
		}
		f.Close()
		dial = sqlite.New(sqlite.Config{DriverName: "sqlite", DSN: t.DSN})
	case MySQL:
		dial = mysql.New(mysql.Config{DSN: t.DSN, DefaultStringSize: 255})
	}
	db, err := gorm.Open(dial, gcfg)
	if err != nil {
		return nil, fmt.Errorf("store: open %s %s: %w", t.Dialect, t.Redacted, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	tunePool(sqlDB, t.Dialect)
	if err := sqlDB.PingContext(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("store: ping %s %s: %w", t.Dialect, t.Redacted, err)
	}
	s := &Store{db: db, dialect: t.Dialect, log: log}
	if !opts.SkipMigrate {
		if err := s.Migrate(ctx); err != nil {
			_ = sqlDB.Close()
			return nil, err
		}
	}
	log.Info("database ready", "dialect", t.Dialect, "target", t.Redacted)
	return s, nil
}

func tunePool(db *sql.DB, d Dialect) {
	switch d {
	case SQLite:
		// One writer at a time anyway; a few connections let reads proceed
		// beside it under WAL.
		db.SetMaxOpenConns(4)
		db.SetMaxIdleConns(4)
	case MySQL:
		db.SetMaxOpenConns(32)
		db.SetMaxIdleConns(16)
		db.SetConnMaxLifetime(30 * time.Minute)
	}
}

// Dialect tells which database this Store talks to.
func (s *Store) Dialect() Dialect { return s.dialect }

// DB exposes the GORM handle to tests and migrations of this package's users.
func (s *Store) DB() *gorm.DB { return s.db }

// Close releases the connections.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping checks the database is reachable (health endpoint).
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// tx runs fn in a transaction; helpers take the *gorm.DB they are given so they
// compose inside one another's transactions. A transaction that MySQL picked
// as a deadlock victim is rolled back entirely, so it is safe to run again.
func (s *Store) tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = s.db.WithContext(ctx).Transaction(fn)
		if !isDeadlock(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 5 * time.Millisecond):
		}
	}
	return err
}

// lockTenant serialises transactions of one tenant that check-then-insert
// (quotas, "the first project is the default"): it upserts the tenant's lock
// row, which takes a row lock held until commit. On SQLite every write
// transaction is already exclusive (BEGIN IMMEDIATE); the row costs nothing.
func (s *Store) lockTenant(tx *gorm.DB, domainID, scope string) error {
	q := "INSERT INTO tenant_locks (domain_id, scope, version) VALUES (?, ?, 1) " +
		"ON CONFLICT(domain_id, scope) DO UPDATE SET version = version + 1"
	if s.dialect == MySQL {
		q = "INSERT INTO tenant_locks (domain_id, scope, version) VALUES (?, ?, 1) " +
			"ON DUPLICATE KEY UPDATE version = version + 1"
	}
	if err := tx.Exec(q, domainID, scope).Error; err != nil {
		return fmt.Errorf("lock tenant %s: %w", scope, err)
	}
	return nil
}

// Models lists the live models, for schema checks in tests.
func Models() []any {
	return []any{&Domain{}, &Project{}, &User{}, &AccessKey{}, &Token{}, &MigProject{}, &Template{}, &Source{}, &SourceFacts{}, &Command{}, &PrivacyAgreement{}, &Task{}, &AgentLog{}, &Wave{}, &WaveMember{}}
}

// Analyze refreshes the query planner's statistics (after a bulk import; the
// databases refresh them on their own as tables change).
func (s *Store) Analyze(ctx context.Context) error {
	q := "ANALYZE"
	if s.dialect == MySQL {
		q = "ANALYZE TABLE sources, source_facts, commands"
	}
	rows, err := s.db.WithContext(ctx).Raw(q).Rows()
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return rows.Close()
}
