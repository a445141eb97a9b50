package smsapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/identity/signer"
)

// Every request is signed (SDK-HMAC-SHA256, the body included), carries
// the project and the machine id; answers decode, errors keep their code.
func TestClient(t *testing.T) {
	var gotCT, gotBody, gotQuery string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		auth, err := signer.ParseAuthorization(r.Header.Get("Authorization"))
		if err == nil {
			err = signer.Verify(r, body, auth, "sk", time.Now(), time.Minute)
		}
		if err != nil || auth.AccessKey != "ak" || r.Header.Get("X-Project-Id") != "p1" || r.Header.Get("X-Smsflow-Machine-Id") != "m1" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error_code":"SMS.9004","error_msg":"signature"}`)
			return
		}
		gotCT, gotBody, gotQuery = r.Header.Get("Content-Type"), string(body), r.URL.RawQuery
		switch r.URL.Path {
		case "/v3/sources":
			fmt.Fprint(w, `{"id":"s1"}`)
		case "/v3/busy":
			w.WriteHeader(503)
			fmt.Fprint(w, `{"error_code":"SMS.9999","error_msg":"later"}`)
		case "/v3/bad":
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error_code":"SMS.6010","error_msg":"bad body"}`)
		case "/v3/plain":
			w.WriteHeader(502)
			fmt.Fprint(w, "bad gateway\n")
		default:
			fmt.Fprint(w, `{}`)
		}
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL + "/", AK: "ak", SK: "sk", ProjectID: "p1", MachineID: "m1"}
	ctx := context.Background()

	id, err := c.Register(ctx, map[string]string{"name": "web-01"})
	require.NoError(t, err)
	assert.Equal(t, "s1", id)
	assert.Equal(t, "application/json", gotCT)
	assert.JSONEq(t, `{"name":"web-01"}`, gotBody)

	require.NoError(t, c.UploadLog(ctx, "t1", "support logs", []byte("line\n")))
	assert.Equal(t, "text/plain; charset=utf-8", gotCT)
	assert.Equal(t, "line\n", gotBody)
	assert.Equal(t, "bucket=support+logs", gotQuery)

	for _, tc := range []struct {
		path      string
		status    int
		code, msg string
		temporary bool
	}{
		{"/v3/busy", 503, "SMS.9999", "later", true},
		{"/v3/bad", 400, "SMS.6010", "bad body", false},
		{"/v3/plain", 502, "", "bad gateway", true},
	} {
		err := c.Call(ctx, "GET", tc.path, nil, nil)
		var ae *APIError
		require.ErrorAs(t, err, &ae, tc.path)
		assert.Equal(t, tc.status, ae.Status, tc.path)
		assert.Equal(t, tc.code, ae.Code, tc.path)
		assert.Equal(t, tc.msg, ae.Msg, tc.path)
		assert.Equal(t, tc.temporary, IsTemporary(err), tc.path)
	}

	wrong := *c
	wrong.SK = "guess"
	err = wrong.Call(ctx, "GET", "/v3/x", nil, nil)
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, 401, ae.Status, "a wrong SK makes a signature the server refuses")
	assert.False(t, IsTemporary(err))
}

func TestIsTemporary(t *testing.T) {
	assert.True(t, IsTemporary(errors.New("dial tcp: connection refused")), "network errors are retried")
	assert.False(t, IsTemporary(nil))
	assert.False(t, IsTemporary(context.Canceled))
	assert.True(t, IsTemporary(&APIError{Status: 429}))
	assert.False(t, IsTemporary(&APIError{Status: 404}))
}
