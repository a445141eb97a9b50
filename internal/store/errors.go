package store

import (
	"errors"
	"fmt"
	"strings"

	mysqldrv "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
)

var (
	// ErrNotFound: no row of this tenant matches. Another tenant's row is
	// reported the same way, so ids of other accounts cannot be probed.
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicate: a unique key (usually a name within the tenant) is taken.
	ErrDuplicate = errors.New("store: duplicate")
	// ErrLimit: a per-tenant quota would be exceeded.
	ErrLimit = errors.New("store: limit reached")
	// ErrConflict: the row's state forbids the change (a default project
	// cannot be deleted, a project with sources cannot be deleted, ...).
	ErrConflict = errors.New("store: conflict")
	// ErrDefaultProject: the default migration project cannot be deleted.
	ErrDefaultProject = errors.New("store: default migration project")
	// ErrInUse: other rows refer to this one (sources in a project, tasks
	// using a template).
	ErrInUse = errors.New("store: in use")
)

// isUniqueViolation recognises a unique-key violation on both databases.
func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	var me *mysqldrv.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1062
	}
	// modernc.org/sqlite: SQLITE_CONSTRAINT_UNIQUE (2067) / PRIMARYKEY (1555);
	// its error text carries the constraint name, which is stable.
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "constraint failed: UNIQUE")
}

// insertNamed creates row, a row whose name is unique in its scope: a
// taken name is ErrDuplicate, named by kind and name (project "p1").
func insertNamed(db *gorm.DB, row any, kind, name string) error {
	if err := db.Create(row).Error; err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("%s %q: %w", kind, name, ErrDuplicate)
		}
		return fmt.Errorf("create %s: %w", kind, err)
	}
	return nil
}

func isDeadlock(err error) bool {
	var me *mysqldrv.MySQLError
	return errors.As(err, &me) && me.Number == 1213
}

func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNotFound
	}
	return err
}

// MissingError names the ids of a batch that the tenant does not have; it
// matches ErrNotFound with errors.Is.
type MissingError struct{ IDs []string }

func (e *MissingError) Error() string        { return fmt.Sprintf("store: not found: %v", e.IDs) }
func (e *MissingError) Is(target error) bool { return target == ErrNotFound }
