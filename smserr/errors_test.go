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
		code   Code
		params []string
		want   string
	}{
		{SMS9001, nil, "Invalid parameters."},
		{SMS0210, []string{"/etc/fstab"}, "Failed to create file /etc/fstab on target server"},
		{SMS0303, []string{"obs.example.com", "timeout"}, "Unable to access domain name obs.example.com. Cause: timeout"},
		{SMS0303, []string{"only-one"}, "Unable to access domain name only-one. Cause:"},
		{SMS0204, []string{"no iam:policy"}, "Insufficient permissions. Cause: no iam:policy. Obtain the required fine-grained permissions."},
		{SMS3210, []string{"/dev/vda1", "ext4", "busy"}, "Failed to format partition /dev/vda1 to ext4. Cause: busy"},
	}
	for _, tc := range cases {
		t.Run(string(tc.code), func(t *testing.T) {
			e := New(tc.code, tc.params...)
			assert.Equal(t, tc.want, e.Message)
			assert.Equal(t, tc.params, e.Params)
			assert.Equal(t, http.StatusBadRequest, e.Status)
		})
	}
}

func TestUnknownCodeIsInternal(t *testing.T) {
	e := New("SMS.0000")
	assert.Equal(t, InternalCode, e.Code)
	assert.Equal(t, http.StatusInternalServerError, e.Status)
	assert.Error(t, e.Err)
	_, inCatalog := Lookup(InternalCode)
	assert.False(t, inCatalog, "the internal code must not collide with a spec code")
}

func TestCopies(t *testing.T) {
	base := New(SMS7101, "id-1")
	s := base.WithStatus(http.StatusNotFound)
	d := s.WithDetail("no such template")
	w := d.Wrap(errors.New("cause"))
	assert.Equal(t, http.StatusBadRequest, base.Status, "WithStatus copies")
	assert.Empty(t, base.Details)
	assert.Empty(t, s.Details, "WithDetail copies")
	assert.Nil(t, d.Err)
	assert.Equal(t, http.StatusNotFound, w.Status)
	assert.Equal(t, []Detail{{Code: "SMS.7101", Message: "no such template"}}, w.Details)
	assert.Contains(t, w.Error(), "SMS.7101")
	assert.Contains(t, w.Error(), "cause")

	wrapped := fmt.Errorf("handler: %w", w)
	got, ok := As(wrapped)
	require.True(t, ok)
	assert.Same(t, w, got)
	_, ok = As(errors.New("plain"))
	assert.False(t, ok)
}

func TestBodyJSON(t *testing.T) {
	b, err := json.Marshal(New(SMS6012).Body())
	require.NoError(t, err)
	assert.JSONEq(t, `{"error_code":"SMS.6012","error_msg":"Empty request body."}`, string(b), "no error_param/details keys when empty")

	b, err = json.Marshal(New(SMS9001, "name").WithDetail("name: too long").Body())
	require.NoError(t, err)
	assert.JSONEq(t, `{"error_code":"SMS.9001","error_msg":"Invalid parameters.","error_param":["name"],"details":[{"error_code":"SMS.9001","error_msg":"name: too long"}]}`, string(b))
}
