// Package testdb gives tests a fresh, migrated store on SQLite and, when
// SMSFLOW_TEST_MYSQL_DSN is set, on MySQL: each call creates its own database
// (a temp-dir SQLite file, or a uniquely named MySQL schema dropped at cleanup),
// so parallel test runs never collide.
package testdb

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"

	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/store"
)

// EnvMySQL names the variable holding an admin DSN of a MySQL/MariaDB server,
// for example root@tcp(127.0.0.1:3306)/test.
const EnvMySQL = "SMSFLOW_TEST_MYSQL_DSN"

func init() {
	// Password hashing at production cost would dominate test time.
	secret.PasswordIterations = 1000
}

// Dialects lists the databases the suite runs on here.
func Dialects() []store.Dialect {
	d := []store.Dialect{store.SQLite}
	if os.Getenv(EnvMySQL) != "" {
		d = append(d, store.MySQL)
	}
	return d
}

// Each runs fn as a subtest once per available database.
func Each(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Helper()
	for _, d := range Dialects() {
		t.Run(string(d), func(t *testing.T) {
			fn(t, Open(t, d))
		})
	}
}

// Open returns a fresh migrated store on the given database.
func Open(tb testing.TB, d store.Dialect) *store.Store {
	tb.Helper()
	dsn := DSN(tb, d)
	s, err := store.Open(context.Background(), store.Options{DSN: dsn, DataDir: tb.TempDir()})
	if err != nil {
		tb.Fatalf("open %s store: %v", d, err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// DSN returns the DSN of a fresh empty database (created for this test and
// dropped at its end, for MySQL).
func DSN(tb testing.TB, d store.Dialect) string {
	tb.Helper()
	switch d {
	case store.SQLite:
		return "sqlite://" + tb.TempDir() + "/smsflow.db"
	case store.MySQL:
		admin := os.Getenv(EnvMySQL)
		if admin == "" {
			tb.Skip(EnvMySQL + " not set")
		}
		cfg, err := mysqldrv.ParseDSN(strings.TrimPrefix(admin, "mysql://"))
		if err != nil {
			tb.Fatalf("%s: %v", EnvMySQL, err)
		}
		name := fmt.Sprintf("smsflow_t_%d_%s", time.Now().UnixNano()%1e12, secret.RandomString(6, "abcdefghijklmnopqrstuvwxyz"))
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			tb.Fatalf("mysql: %v", err)
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
			tb.Fatalf("create database %s: %v", name, err)
		}
		tb.Cleanup(func() {
			db, err := sql.Open("mysql", cfg.FormatDSN())
			if err != nil {
				return
			}
			defer db.Close()
			_, _ = db.Exec("DROP DATABASE IF EXISTS `" + name + "`")
		})
		cfg.DBName = name
		return cfg.FormatDSN()
	}
	tb.Fatalf("unknown dialect %s", d)
	return ""
}
