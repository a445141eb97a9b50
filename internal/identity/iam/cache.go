package iam

import "time"

// cached is a value of one of the service's caches (access keys, tokens,
// projects), good until expires.
type cached[V any] struct {
	v       V
	expires time.Time
}

// cacheGet finds key's live value in m, one of s's caches; with CacheTTL 0
// the caches are off and every lookup misses.
func cacheGet[V any](s *Service, m map[string]cached[V], key string, now time.Time) (V, bool) {
	if s.opts.CacheTTL <= 0 {
		var zero V
		return zero, false
	}
	s.mu.Lock()
	c, ok := m[key]
	s.mu.Unlock()
	if !ok || !now.Before(c.expires) {
		var zero V
		return zero, false
	}
	return c.v, true
}

// cachePut keeps v for key in m until expires, unless the caches are off.
func cachePut[V any](s *Service, m map[string]cached[V], key string, v V, expires time.Time) {
	if s.opts.CacheTTL <= 0 {
		return
	}
	s.mu.Lock()
	m[key] = cached[V]{v: v, expires: expires}
	s.mu.Unlock()
}
