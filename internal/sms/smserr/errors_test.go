package smserr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewFillsPlaceholders(t *testing.T) {
	cases := []struct {
		name   string
		code   Code
		params []string
		want   string
	}{
		{"no placeholder", SMS9001, nil, "Invalid parameters."},
		{"no placeholder, extra param", SMS9001, []string{"name"}, "Invalid parameters."},
		{"%s", SMS0210, []string{"/etc/fstab"}, "Failed to create file /etc/fstab on target server"},
		{"%s twice", SMS0303, []string{"obs.example.com", "timeout"}, "Unable to access domain name obs.example.com. Cause: timeout"},
		{"%s missing", SMS0303, []string{"only-one"}, "Unable to access domain name only-one. Cause:"},
		{"%d", SMS6620, []string{"key-1"}, "Key key-1 is not enabled."},
		{"{0}", SMS9004, []string{"sms:server:list"}, "The current account does not have the permission to execute policy sms:server:list."},
		{"{0[0]}", SMS0204, []string{"no iam:policy"}, "Insufficient permissions. Cause: no iam:policy. Obtain the required fine-grained permissions."},
		{"{0[0]} {0[1]} {0[2]}", SMS3210, []string{"/dev/vda1", "ext4", "busy"}, "Failed to format partition /dev/vda1 to ext4. Cause: busy"},
		{"{0[n]} missing", SMS3210, []string{"/dev/vda1"}, "Failed to format partition /dev/vda1 to . Cause:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := New(tc.code, tc.params...)
			assert.Equal(t, tc.code, e.Code)
			assert.Equal(t, tc.want, e.Message)
			assert.Equal(t, tc.params, e.Params)
			assert.Equal(t, http.StatusBadRequest, e.Status)
		})
	}
}

func TestNewCopiesParams(t *testing.T) {
	params := []string{"a"}
	e := New(SMS0210, params...)
	params[0] = "changed"
	assert.Equal(t, []string{"a"}, e.Params)
}

func TestInternal(t *testing.T) {
	cause := errors.New("disk full")
	cases := []struct {
		name  string
		err   *Error
		cause error
	}{
		{"New(InternalCode)", New(InternalCode), nil},
		{"Internal(nil)", Internal(nil), nil},
		{"Internal(cause)", Internal(cause), cause},
		{"unknown code", New("SMS.0000", "x"), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, InternalCode, tc.err.Code)
			assert.Equal(t, http.StatusInternalServerError, tc.err.Status)
			assert.Equal(t, "Internal error.", tc.err.Message)
			assert.Empty(t, tc.err.Params, "nothing of the request is echoed")
			if tc.cause != nil {
				assert.Same(t, tc.cause, tc.err.Err)
			}
		})
	}
	assert.ErrorContains(t, New("SMS.0000").Err, "unknown code SMS.0000", "the bad code is kept for the logs")
	assert.NoError(t, New(InternalCode).Err, "InternalCode is known: no bogus cause")
	_, inCatalog := Lookup(InternalCode)
	assert.False(t, inCatalog, "the internal code must not collide with a spec code")
}

func TestErrorString(t *testing.T) {
	cases := []struct {
		err  *Error
		want string
	}{
		{New(SMS9001), "SMS.9001: Invalid parameters."},
		{New(SMS9001, "name"), "SMS.9001: Invalid parameters. [name]"},
		{New(SMS9001, "name", "size").Wrap(errors.New("too long")), "SMS.9001: Invalid parameters. [name size]: too long"},
		{Internal(errors.New("db down")), "SMS.9999: Internal error.: db down"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, tc.err.Error())
	}
}

func TestCopies(t *testing.T) {
	base := New(SMS7101, "id-1")
	s := base.WithStatus(http.StatusNotFound)
	d := s.WithDetail("no such template")
	w := d.Wrap(errors.New("cause"))

	assert.Equal(t, http.StatusBadRequest, base.Status, "WithStatus copies")
	assert.Equal(t, http.StatusNotFound, s.Status)
	assert.Empty(t, base.Details)
	assert.Empty(t, s.Details, "WithDetail copies")
	assert.Nil(t, d.Err, "Wrap copies")
	assert.Equal(t, http.StatusNotFound, w.Status)
	assert.Equal(t, []Detail{{Code: "SMS.7101", Message: "no such template"}}, w.Details)

	// Two details added to one error must not share a backing array.
	d1 := d.WithDetail("one")
	d2 := d.WithDetail("two")
	assert.Equal(t, "one", d1.Details[1].Message)
	assert.Equal(t, "two", d2.Details[1].Message)
	s.Params[0] = "changed"
	assert.Equal(t, "id-1", base.Params[0], "copies do not share params")
}

func TestAsAndUnwrap(t *testing.T) {
	cause := errors.New("cause")
	w := New(SMS7101).WithStatus(http.StatusNotFound).Wrap(cause)
	wrapped := fmt.Errorf("handler: %w", w)

	got, ok := As(wrapped)
	require.True(t, ok)
	assert.Same(t, w, got)
	assert.ErrorIs(t, wrapped, cause, "Unwrap exposes the cause")

	_, ok = As(errors.New("plain"))
	assert.False(t, ok)
	_, ok = As(nil)
	assert.False(t, ok)
}

func TestBodyJSON(t *testing.T) {
	cases := []struct {
		name string
		err  *Error
		want string
	}{
		{"no error_param/details keys when empty", New(SMS6012),
			`{"error_code":"SMS.6012","error_msg":"Empty request body."}`},
		{"params and details", New(SMS9001, "name").WithDetail("name: too long"),
			`{"error_code":"SMS.9001","error_msg":"Invalid parameters.","error_param":["name"],"details":[{"error_code":"SMS.9001","error_msg":"name: too long"}]}`},
		{"status and cause stay server-side", Internal(errors.New("secret dsn")).WithStatus(http.StatusServiceUnavailable),
			`{"error_code":"SMS.9999","error_msg":"Internal error."}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.err.Body())
			require.NoError(t, err)
			assert.JSONEq(t, tc.want, string(b))
		})
	}
}
