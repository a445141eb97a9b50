package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/sms/smserr"
)

// bindJSON reads the body (already bounded by readBody) into dst, a struct of
// pointer fields so absent fields stay nil. It answers the spec's codes:
// SMS.6012 empty body, SMS.6016 wrong content type, SMS.6010 not JSON,
// SMS.6011 not an object, SMS.9001 a field of the wrong type (named).
func bindJSON(c *gin.Context, dst any) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	if ct := c.GetHeader("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return smserr.New(smserr.SMS6016).WithDetail("Content-Type must be application/json, got " + truncate(ct, 64))
		}
	}
	return decodeJSON(body, dst)
}

// validator is a request body that checks its fields.
type validator interface{ validate() error }

// bindValid is bindJSON, then the body's own checks.
func bindValid(c *gin.Context, dst validator) error {
	if err := bindJSON(c, dst); err != nil {
		return err
	}
	return dst.validate()
}

// bindIDs decodes the {"ids": [...]} body of a batch delete: the list is
// required, each id 0 to 255 characters.
func bindIDs(c *gin.Context) ([]string, error) {
	var b struct {
		IDs *[]string `json:"ids"`
	}
	if err := bindJSON(c, &b); err != nil {
		return nil, err
	}
	var v checks
	if !v.required("ids", b.IDs != nil) {
		return nil, v.err()
	}
	for i := range *b.IDs {
		v.str(fmt.Sprintf("ids[%d]", i), &(*b.IDs)[i], required, 0, 255)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	return *b.IDs, nil
}

// decodeJSON is bindJSON without the HTTP parts (fuzzed directly).
func decodeJSON(body []byte, dst any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return smserr.New(smserr.SMS6012)
	}
	if trimmed[0] != '{' {
		return smserr.New(smserr.SMS6011).WithDetail("the request body must be a JSON object")
	}
	if !utf8.Valid(trimmed) {
		return smserr.New(smserr.SMS6010).WithDetail("the request body is not valid UTF-8")
	}
	if err := json.Unmarshal(trimmed, dst); err != nil {
		return jsonError(err)
	}
	return nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return smserr.New(smserr.SMS6010).WithDetail(fmt.Sprintf("invalid JSON at byte %d: %s", syn.Offset, syn.Error()))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return smserr.New(smserr.SMS6011).WithDetail("the request body must be a JSON object")
		}
		return smserr.New(smserr.SMS9001, field).
			WithDetail(fmt.Sprintf("%s: expected %s, got JSON %s", field, jsonKind(typ.Type), typ.Value))
	}
	return smserr.New(smserr.SMS6010).WithDetail(truncate(err.Error(), 200))
}

// jsonKind names a Go type the way an API user thinks of it.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int32:
		return "an integer from -2147483648 to 2147483647"
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// FlexInt64 is an int64 that also accepts a string of digits: the spec's
// template example sends a disk "id" as "0" although the field is a Long.
// Answers always carry a JSON integer.
type FlexInt64 int64

func (f *FlexInt64) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return &json.UnmarshalTypeError{Value: "value " + truncate(string(b), 32), Type: reflect.TypeOf(int64(0))}
	}
	*f = FlexInt64(n)
	return nil
}

// FlexSize is a byte count that also accepts the strings agents print
// (btrfs' "3.30GiB", "16384", "4.00KiB"): the spec's register example sends
// them; answers always carry an integer.
type FlexSize int64

var sizeUnits = map[string]float64{
	"": 1, "B": 1,
	"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15,
	"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50,
	"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40, "PIB": 1 << 50,
}

func (f *FlexSize) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	bad := &json.UnmarshalTypeError{Value: "value " + truncate(s, 32), Type: reflect.TypeOf(int64(0))}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*f = FlexSize(n)
		return nil
	}
	i := len(s)
	for i > 0 && (s[i-1] < '0' || s[i-1] > '9') && s[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(s[:i]), strings.ToUpper(strings.TrimSpace(s[i:]))
	mult, ok := sizeUnits[unit]
	x, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || x < 0 || x*mult > 9e18 {
		return bad
	}
	*f = FlexSize(int64(x * mult))
	return nil
}
