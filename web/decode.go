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

	"github.com/smsflow/smsflow/smserr"
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
