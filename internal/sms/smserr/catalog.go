// Package smserr is the catalog of the SMS error codes of spec §5.1 and the
// API error type every handler answers with. The catalog is generated from
// the spec's table (kept in testdata), and a test checks it against the table.
package smserr

//go:generate go run ./internal/gencatalog

import "sort"

// Code is an SMS error code such as "SMS.9001".
type Code string

// Entry is one code of the catalog.
type Entry struct {
	Code        Code
	Status      int    // HTTP status the spec lists
	Message     string // English error_msg, with %s / {0[0]} placeholders
	Description string // Chinese description
	Action      string // what the user should do (Chinese)
}

var byCode = func() map[Code]Entry {
	m := make(map[Code]Entry, len(catalog))
	for _, e := range catalog {
		m[e.Code] = e
	}
	return m
}()

// Lookup finds a code.
func Lookup(c Code) (Entry, bool) {
	e, ok := byCode[c]
	return e, ok
}

// All lists every code, sorted.
func All() []Entry {
	out := append([]Entry(nil), catalog...)
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}
