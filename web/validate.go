package web

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
)

// checks collects every field problem of a request, so one answer names them
// all (the spec's error_param/details arrays hold up to 20).
type checks struct {
	fields []string
	msgs   []string
	// missing is set when the first problem is an absent required field
	// (SMS.6013) rather than a bad value (SMS.9001).
	missing bool
}

// invalid records a field whose value breaks a rule (SMS.9001).
func (v *checks) invalid(field, msg string) { v.note(field, msg, smserr.SMS9001) }

// absent records a required field that is missing (SMS.6013).
func (v *checks) absent(field string) { v.note(field, "is required", smserr.SMS6013) }

// note records a problem; the first one decides the answer's code.
func (v *checks) note(field, msg string, code smserr.Code) {
	if len(v.fields) == 0 {
		v.missing = code == smserr.SMS6013
	}
	if len(v.fields) < 20 {
		v.fields = append(v.fields, field)
		v.msgs = append(v.msgs, field+": "+msg)
	}
}

// presence is a validator's rule for an absent field (a nil pointer).
type presence uint8

const (
	// optional: an absent field passes.
	optional presence = iota
	// required: an absent field is SMS.6013.
	required
)

// purpose says what a body is sent for: fields required to create a
// resource are optional in an update, which changes only what it carries.
type purpose uint8

const (
	// creating: a create or a registration.
	creating purpose = iota + 1
	// updating: a PUT of some fields.
	updating
)

// requiredIf is required when cond holds (a create, a registration) and
// optional otherwise (an update, a refresh).
func requiredIf(cond bool) presence {
	if cond {
		return required
	}
	return optional
}

// err is nil when every check passed.
func (v *checks) err() error {
	if len(v.fields) == 0 {
		return nil
	}
	code := smserr.SMS9001
	if v.missing {
		code = smserr.SMS6013
	}
	e := smserr.New(code, v.fields...)
	for _, m := range v.msgs {
		e = e.WithDetail(m)
	}
	return e
}

// required records field as absent unless present, and tells whether it is.
func (v *checks) required(field string, present bool) bool {
	if !present {
		v.absent(field)
	}
	return present
}

// str checks a string's length in characters (the spec's min/max length).
func (v *checks) str(field string, s *string, p presence, lo, hi int) {
	if s == nil {
		if p == required {
			v.absent(field)
		}
		return
	}
	n := utf8.RuneCountInString(*s)
	switch {
	case n < lo:
		v.invalid(field, fmt.Sprintf("must have at least %d characters", lo))
	case n > hi:
		v.invalid(field, fmt.Sprintf("must have at most %d characters", hi))
	case strings.ContainsRune(*s, 0):
		v.invalid(field, "must not contain NUL characters")
	}
}

// serverID checks an existing server's id (target_server.vm_id): a plain
// name (provider.CheckServerID), since a provider may use it as a folder
// name. Empty means none: the task creates its target.
func (v *checks) serverID(field string, s *string) {
	if s == nil || *s == "" {
		return
	}
	if err := provider.CheckServerID(*s); err != nil {
		v.invalid(field, err.Error())
	}
}

// enum checks a string against the allowed values.
func (v *checks) enum(field string, s *string, p presence, allowed ...string) {
	if s == nil {
		if p == required {
			v.absent(field)
		}
		return
	}
	for _, a := range allowed {
		if *s == a {
			return
		}
	}
	v.invalid(field, "must be one of "+strings.Join(allowed, ", "))
}

// enumOrEmpty is enum that also accepts "", for fields the spec's own
// examples send empty.
func (v *checks) enumOrEmpty(field string, s *string, p presence, allowed ...string) {
	if s != nil && *s == "" {
		return
	}
	v.enum(field, s, p, allowed...)
}

// between checks an integer range.
func between[T ~int32 | ~int64 | ~int](v *checks, field string, n *T, p presence, lo, hi T) {
	if n == nil {
		if p == required {
			v.absent(field)
		}
		return
	}
	if *n < lo || *n > hi {
		v.invalid(field, fmt.Sprintf("must be between %d and %d", lo, hi))
	}
}

// pageQuery parses the spec's limit/offset query parameters: limit 0..maxLimit
// (default defLimit), offset 0..65535 (default 0).
func pageQuery(c *gin.Context, defLimit, maxLimit int) (limit, offset int, err error) {
	var v checks
	pg := v.page(c, defLimit, maxLimit)
	return pg.Limit, pg.Offset, v.err()
}

// page is pageQuery for a list that checks other query parameters too: the
// problems join v's.
func (v *checks) page(c *gin.Context, defLimit, maxLimit int) store.Page {
	return store.Page{Limit: queryInt(c, v, "limit", defLimit, 0, maxLimit), Offset: queryInt(c, v, "offset", 0, 0, 65535)}
}

func queryInt(c *gin.Context, v *checks, name string, def, lo, hi int) int {
	raw, present := c.GetQuery(name)
	if !present || raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil {
		v.invalid(name, "must be an integer")
		return def
	}
	if n < lo || n > hi {
		v.invalid(name, fmt.Sprintf("must be between %d and %d", lo, hi))
		return def
	}
	return n
}

// queryString reads an optional string filter with a maximum length.
func queryString(c *gin.Context, v *checks, name string, limit int) string {
	s := c.Query(name)
	if utf8.RuneCountInString(s) > limit {
		v.invalid(name, fmt.Sprintf("must have at most %d characters", limit))
		return ""
	}
	return s
}

// pathID reads a path id; the spec bounds ids at 255 characters.
func pathID(c *gin.Context, name string) (string, error) {
	id := c.Param(name)
	if id == "" || utf8.RuneCountInString(id) > 255 {
		return "", smserr.New(smserr.SMS9001, name).WithDetail(name + ": must have 1 to 255 characters")
	}
	return id, nil
}

func itoa(i int) string { return strconv.Itoa(i) }
