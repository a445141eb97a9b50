package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
	"github.com/smsflow/smsflow/internal/wave"
)

// TestConsoleBodyLimit: a console form post — the sign-in, which anyone
// can send, and a signed-in form alike — is read up to the largest form the
// console takes (a wave's member file and its fields), never to its end:
// an endless multipart body is refused, not buffered in memory and
// temporary files.
func TestConsoleBodyLimit(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		limit := int64(wave.MaxCSVBytes + 64<<10 + 1)
		for _, path := range []string{"/console/login", "/console/projects", "/console/waves"} {
			// A file part whose content goes on for 64 MiB, far more than
			// any form: the multipart reader would hold 32 MiB of it in
			// memory and write the rest to temporary files.
			body := &countingBody{left: 64 << 20}
			head := "--xyz\r\nContent-Disposition: form-data; name=\"members\"; filename=\"a.csv\"\r\n\r\n"
			req := httptest.NewRequest(http.MethodPost, path, nil)
			req.Body = io.NopCloser(io.MultiReader(strings.NewReader(head), body))
			req.ContentLength = -1
			req.Header.Set("Content-Type", "multipart/form-data; boundary=xyz")
			u, err := url.Parse(e.srv.URL + path)
			require.NoError(t, err)
			for _, ck := range b.c.Jar.Cookies(u) {
				req.AddCookie(ck)
			}
			w := httptest.NewRecorder()
			e.handler.ServeHTTP(w, req)
			assert.GreaterOrEqual(t, w.Code, 400, path)
			assert.Less(t, w.Code, 500, path)
			// Readers ask in chunks: allow one chunk past the limit.
			assert.LessOrEqual(t, body.reads.Load(), limit+64<<10, "%s read %d bytes", path, body.reads.Load())
			_, _ = io.Copy(io.Discard, w.Result().Body)
		}
	})
}

// TestConsoleBulkIDWithSlash: a bulk action's id holding a '/' names no
// source; escaped into the API path it would be unescaped by the router
// and reach another route (".../changestate").
func TestConsoleBulkIDWithSlash(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, _ *fakeWaves) {
		id := register(t, e, e.token, linuxSource("slash", nextMAC()))
		project := createMigProject(t, e, e.token, "slash-proj")
		b := newBrowser(t, e)
		b.signIn(e.creds.DomainName, e.creds.User, e.creds.Password)
		r := b.post("/console/sources/bulk", url.Values{"csrf": {b.csrf}, "op": {"move"}, "ids": {id + "/changestate"},
			"project": {project}, "back": {"/console/sources"}})
		assert.Equal(t, http.StatusNotFound, r.status, r.body)
		got := e.do("GET", "/v3/sources/"+id, "", e.token).json(t)
		assert.NotEqual(t, project, got["migprojectid"])
	})
}
