package store

import (
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Small query helpers every table's code uses.

// first reads the first row q finds into a new T: ErrNotFound when there
// is none.
func first[T any](q *gorm.DB) (*T, error) {
	var v T
	if err := q.First(&v).Error; err != nil {
		return nil, notFound(err)
	}
	return &v, nil
}

// forUpdate makes q take its rows' locks (SELECT … FOR UPDATE) on MySQL;
// SQLite has one writer at a time, so there the transaction is lock enough.
func (s *Store) forUpdate(q *gorm.DB) *gorm.DB {
	if s.dialect == MySQL {
		return q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return q
}

// inChunk is the most values one IN list binds: longer lists are split so
// that no statement passes a database's limit on bound parameters.
const inChunk = 500

// inChunks calls fn with vals cut in runs of at most inChunk, in order,
// and stops at the first error.
func inChunks[T any](vals []T, fn func(chunk []T) error) error {
	for start := 0; start < len(vals); start += inChunk {
		if err := fn(vals[start:min(start+inChunk, len(vals))]); err != nil {
			return err
		}
	}
	return nil
}

// whereIs narrows q to the rows whose col equals val; an empty val (a
// filter not given) leaves q as it is.
func whereIs[S ~string](q *gorm.DB, col string, val S) *gorm.DB {
	if val == "" {
		return q
	}
	return q.Where(col+" = ?", string(val))
}

// listPage counts the rows q matches and reads page pg of them in order;
// kind names the rows in errors ("count waves: …").
func listPage[T any](q *gorm.DB, order string, pg Page, kind string) ([]T, int64, error) {
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("count %s: %w", kind, err)
	}
	out := []T{}
	if pg.Limit > 0 && int64(pg.Offset) < total {
		if err := q.Order(order).Limit(pg.Limit).Offset(pg.Offset).Find(&out).Error; err != nil {
			return nil, 0, fmt.Errorf("list %s: %w", kind, err)
		}
	}
	return out, total, nil
}
