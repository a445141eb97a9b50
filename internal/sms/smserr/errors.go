package smserr

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// InternalCode answers failures that are not the caller's (HTTP 500). It is
// deliberately outside the catalog (a test keeps it so). The nearest spec code,
// SMS.6000 "Service error.", is listed as a 400, and the other "internal"
// ones (SMS.5106 ...) are agent-side faults with a specific meaning. Reusing
// one for our own faults would make one code mean two things. A distinct
// code lets clients and alerts tell server faults apart (README: "Server
// faults are 500 with SMS.9999").
const InternalCode Code = "SMS.9999"

// internalMessage says nothing about the cause: that goes to the logs only.
const internalMessage = "Internal error."

// Detail is one element of the spec's details array.
type Detail struct {
	Code    string `json:"error_code"`
	Message string `json:"error_msg"`
}

// Error is an API error: an SMS code, the HTTP status to answer with, and
// the spec's error body fields. The cause (Err) is logged, never sent.
type Error struct {
	Code    Code
	Status  int
	Message string
	Params  []string
	Details []Detail
	Err     error
}

// Body is the spec's error body.
type Body struct {
	Code    string   `json:"error_code"`
	Message string   `json:"error_msg"`
	Params  []string `json:"error_param,omitempty"`
	Details []Detail `json:"details,omitempty"`
}

// placeholderRE matches every placeholder form the catalog's messages use:
// %s, %d (SMS.6620), {0} (SMS.9004) and {0[0]}, {0[1]}, ...
var placeholderRE = regexp.MustCompile(`%[sd]|\{0\[\d+\]\}|\{\d*\}`)

// New makes the error of a catalog code, filling the message's placeholders
// (%s, %d, {0}, {0[0]}, {0[1]}, ...) with params in order; a placeholder
// without a param becomes empty. InternalCode gives Internal(nil). Any other
// unknown code is a programming error: it becomes an internal error (with
// the bad code as its cause, for the logs) rather than a panic.
func New(code Code, params ...string) *Error {
	if code == InternalCode {
		return Internal(nil)
	}
	e, ok := Lookup(code)
	if !ok {
		return &Error{Code: InternalCode, Status: http.StatusInternalServerError, Message: internalMessage,
			Err: fmt.Errorf("smserr: unknown code %s", code)}
	}
	i := 0
	msg := placeholderRE.ReplaceAllStringFunc(e.Message, func(string) string {
		if i < len(params) {
			i++
			return params[i-1]
		}
		return ""
	})
	var ps []string
	if len(params) > 0 {
		ps = append([]string(nil), params...)
	}
	return &Error{Code: code, Status: e.Status, Message: strings.TrimSpace(msg), Params: ps}
}

// Internal is the error for a server-side failure, wrapping its cause.
func Internal(cause error) *Error {
	return &Error{Code: InternalCode, Status: http.StatusInternalServerError, Message: internalMessage, Err: cause}
}

func (e *Error) clone() *Error {
	c := *e
	c.Params = append([]string(nil), e.Params...)
	c.Details = append([]Detail(nil), e.Details...)
	if len(c.Params) == 0 {
		c.Params = nil
	}
	if len(c.Details) == 0 {
		c.Details = nil
	}
	return &c
}

// WithStatus returns a copy answered with another HTTP status (401 for
// authentication failures, 404 for missing resources, where the spec's table
// lists 400).
func (e *Error) WithStatus(status int) *Error {
	c := e.clone()
	c.Status = status
	return c
}

// WithDetail returns a copy with one more details entry under the same code.
func (e *Error) WithDetail(msg string) *Error {
	c := e.clone()
	c.Details = append(c.Details, Detail{Code: string(e.Code), Message: msg})
	return c
}

// Wrap returns a copy carrying a cause for the logs.
func (e *Error) Wrap(err error) *Error {
	c := e.clone()
	c.Err = err
	return c
}

func (e *Error) Error() string {
	s := string(e.Code) + ": " + e.Message
	if len(e.Params) > 0 {
		s += " " + fmt.Sprint(e.Params)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Body is what goes on the wire.
func (e *Error) Body() Body {
	return Body{Code: string(e.Code), Message: e.Message, Params: e.Params, Details: e.Details}
}

// As finds an *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}
