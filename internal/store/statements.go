package store

import (
	"sync/atomic"

	"gorm.io/gorm"
)

// StatementCounter counts the SQL statements a store runs while it is
// armed, so tests can hold a request's query count flat without reaching
// into GORM themselves.
type StatementCounter struct {
	skip  map[string]bool
	armed atomic.Bool
	n     atomic.Int64
}

// CountStatements registers a StatementCounter on the store's queries,
// rows, raw statements and updates; statements on the tables in skip (a
// background poller's, say) are not counted. Call it before anything else
// uses the store: GORM's callback registration is not safe beside running
// queries.
func (s *Store) CountStatements(skip ...string) *StatementCounter {
	c := &StatementCounter{skip: map[string]bool{}}
	for _, t := range skip {
		c.skip[t] = true
	}
	inc := func(tx *gorm.DB) {
		if c.armed.Load() && !c.skip[tx.Statement.Table] {
			c.n.Add(1)
		}
	}
	cb := s.db.Callback()
	_ = cb.Query().After("gorm:query").Register("store:count", inc)
	_ = cb.Row().After("gorm:row").Register("store:count", inc)
	_ = cb.Raw().After("gorm:raw").Register("store:count", inc)
	_ = cb.Update().After("gorm:update").Register("store:count", inc)
	return c
}

// Count runs fn armed and returns how many statements it ran.
func (c *StatementCounter) Count(fn func()) int {
	c.n.Store(0)
	c.armed.Store(true)
	fn()
	c.armed.Store(false)
	return int(c.n.Load())
}
