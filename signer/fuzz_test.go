package signer

import (
	"bytes"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func FuzzParseAuthorization(f *testing.F) {
	f.Add("SDK-HMAC-SHA256 Access=AK1, SignedHeaders=user-agent;x-sdk-date, Signature=" + string(bytes.Repeat([]byte("ab"), 32)))
	f.Add("SDK-HMAC-SHA256 Access=, SignedHeaders=, Signature=")
	f.Add("SDK-HMAC-SHA256 ,,,==")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := ParseAuthorization(h)
		if err == nil && (a.AccessKey == "" || len(a.SignedHeaders) == 0 || len(a.Signature) != 64) {
			t.Fatalf("accepted an incomplete header %q: %+v", h, a)
		}
	})
}

// FuzzVerify: whatever the path, query, header and body, Sign then Verify
// holds, a changed body fails, and nothing panics.
func FuzzVerify(f *testing.F) {
	f.Add("/v3/sources", "limit=10&offset=0", "p1", []byte(`{"a":1}`))
	f.Add("/v3/vm/templates/a b", "name=%E6%A8%A1&x", "", []byte{})
	f.Add("/", "a=%zz&&=", "\t", []byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, path, rawQuery, project string, body []byte) {
		now := time.Date(2026, 11, 27, 8, 30, 0, 0, time.UTC)
		req := &http.Request{Method: "POST", URL: &url.URL{Path: path, RawQuery: rawQuery}, Header: http.Header{}, Host: "h"}
		if project != "" {
			req.Header.Set("X-Project-Id", project)
		}
		if err := Sign(req, body, "AK", "SK", now); err != nil {
			t.Fatal(err)
		}
		auth, err := ParseAuthorization(req.Header.Get("Authorization"))
		if err != nil {
			// A header value the signer copied verbatim may break the
			// Authorization syntax (e.g. a project with ", "): never a panic.
			return
		}
		if err := Verify(req, body, auth, "SK", now, time.Minute); err != nil {
			t.Fatalf("round trip failed: %v", err)
		}
		if err := Verify(req, append(append([]byte(nil), body...), 'x'), auth, "SK", now, time.Minute); err == nil {
			t.Fatal("a changed body verified")
		}
	})
}
