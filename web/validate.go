package web

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/provider"
	"github.com/smsflow/smsflow/internal/sms/smserr"
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

func (v *checks) add(field, msg string, missing bool) {
	if len(v.fields) == 0 {
		v.missing = missing
	}
	if len(v.fields) < 20 {
		v.fields = append(v.fields, field)
		v.msgs = append(v.msgs, field+": "+msg)
	}
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

func (v *checks) required(field string, present bool) bool {
	if !present {
		v.add(field, "is required", true)
	}
	return present
}

// str checks a string's length in characters (the spec's min/max length).
func (v *checks) str(field string, s *string, required bool, lo, hi int) {
	if s == nil {
		if required {
			v.required(field, false)
		}
		return
	}
	n := utf8.RuneCountInString(*s)
	switch {
	case n < lo:
		v.add(field, fmt.Sprintf("must have at least %d characters", lo), false)
	case n > hi:
		v.add(field, fmt.Sprintf("must have at most %d characters", hi), false)
	case strings.ContainsRune(*s, 0):
		v.add(field, "must not contain NUL characters", false)
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
		v.add(field, err.Error(), false)
	}
}

// enum checks a string against the allowed values (allowEmpty for fields the
// spec's own examples send as "").
func (v *checks) enum(field string, s *string, required, allowEmpty bool, allowed ...string) {
	if s == nil {
		if required {
			v.required(field, false)
		}
		return
	}
	if *s == "" && allowEmpty {
		return
	}
	for _, a := range allowed {
		if *s == a {
			return
		}
	}
	v.add(field, "must be one of "+strings.Join(allowed, ", "), false)
}

// between checks an integer range.
func between[T ~int32 | ~int64 | ~int](v *checks, field string, n *T, required bool, lo, hi T) {
	if n == nil {
		if required {
			v.required(field, false)
		}
		return
	}
	if *n < lo || *n > hi {
		v.add(field, fmt.Sprintf("must be between %d and %d", lo, hi), false)
	}
}

// pageQuery parses the spec's limit/offset query parameters: limit 0..maxLimit
// (default defLimit), offset 0..65535 (default 0).
func pageQuery(c *gin.Context, defLimit, maxLimit int) (limit, offset int, err error) {
	var v checks
	limit = queryInt(c, &v, "limit", defLimit, 0, maxLimit)
	offset = queryInt(c, &v, "offset", 0, 0, 65535)
	return limit, offset, v.err()
}

func queryInt(c *gin.Context, v *checks, name string, def, lo, hi int) int {
	raw, present := c.GetQuery(name)
	if !present || raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil {
		v.add(name, "must be an integer", false)
		return def
	}
	if n < lo || n > hi {
		v.add(name, fmt.Sprintf("must be between %d and %d", lo, hi), false)
		return def
	}
	return n
}

// queryString reads an optional string filter with a maximum length.
func queryString(c *gin.Context, v *checks, name string, limit int) string {
	s := c.Query(name)
	if utf8.RuneCountInString(s) > limit {
		v.add(name, fmt.Sprintf("must have at most %d characters", limit), false)
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
