package signer

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzParseAuthorization: no panic; an accepted header is complete and
// well-formed, and writing it back parses to the same value.
func FuzzParseAuthorization(f *testing.F) {
	sig := strings.Repeat("ab", 32)
	f.Add("SDK-HMAC-SHA256 Access=AK1, SignedHeaders=user-agent;x-sdk-date, Signature=" + sig)
	f.Add("SDK-HMAC-SHA256 Signature=" + strings.ToUpper(sig) + ",SignedHeaders=x-a;x-a;x-sdk-date,Access=A=K")
	f.Add("SDK-HMAC-SHA256 Access=, SignedHeaders=, Signature=")
	f.Add("SDK-HMAC-SHA256 ,,,==")
	f.Add("SDK-HMAC-SHA256 Access=AK1, Access=AK1, SignedHeaders=x-sdk-date, Signature=" + sig)
	f.Fuzz(func(t *testing.T, h string) {
		a, err := ParseAuthorization(h)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if a.AccessKey == "" || strings.Contains(a.AccessKey, ",") || len(a.SignedHeaders) == 0 || !isHex64(a.Signature) {
			t.Fatalf("accepted an incomplete header %q: %+v", h, a)
		}
		for _, name := range a.SignedHeaders {
			if !isLowerToken(name) {
				t.Fatalf("accepted signed header %q in %q", name, h)
			}
		}
		again, err := ParseAuthorization(Algorithm + " Access=" + a.AccessKey + ", SignedHeaders=" +
			strings.Join(a.SignedHeaders, ";") + ", Signature=" + a.Signature)
		if err != nil || again.AccessKey != a.AccessKey || again.Signature != a.Signature || !slices.Equal(again.SignedHeaders, a.SignedHeaders) {
			t.Fatalf("%q: %+v does not round-trip: %+v, %v", h, a, again, err)
		}
	})
}

// FuzzVerify: for any path, query, header value, body and method, nothing
// panics; Sign then Verify holds, both in process and on the request a Go
// server parses from what a Go client writes; a changed body or query fails;
// garbage signatures and headers are refused, not crashed on.
func FuzzVerify(f *testing.F) {
	f.Add("/v3/sources", "limit=10&offset=0", "p1", []byte(`{"a":1}`+"\n"), "POST", "")
	f.Add("/v3/vm/templates/a b", "name=%E6%A8%A1&x", "", []byte{}, "GET", "x-sdk-date")
	f.Add("/v3/vm/templates/50%25%zz/", "a=%2B+b&a=&=&&", " p ", []byte(nil), "DELETE", "host;x-sdk-date;user-agent")
	f.Add("/", "a=%zz&&=", "\t", []byte("\x00\xff"), "PUT", "20261127T083000Z")
	f.Add("//a/./../b", "k;v", "é模", []byte("x"), "get", strings.Repeat("ab", 32))
	f.Add("", "", "", []byte(nil), "", "SDK-HMAC-SHA256 Access=AK, SignedHeaders=x-sdk-date, Signature="+strings.Repeat("0", 64))
	now := time.Date(2026, 11, 27, 8, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, path, rawQuery, project string, body []byte, method, junk string) {
		// Garbage in: errors, no panic.
		junkReq := &http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: rawQuery}, Host: junk,
			Header: http.Header{HeaderDate: {junk}, "X-Project-Id": {project, junk}, HeaderContentSHA256: {junk}}}
		junkAuth := Authorization{AccessKey: junk, SignedHeaders: append(strings.Split(junk, ";"), "x-sdk-date"), Signature: junk}
		_ = CanonicalRequest(junkReq, junkAuth.SignedHeaders, junk)
		if err := Verify(junkReq, body, junkAuth, junk, now, time.Minute); err == nil {
			t.Fatalf("garbage verified: %+v", junkAuth)
		}
		if a, err := ParseAuthorization(junk); err == nil {
			_ = Verify(junkReq, body, a, "SK", now, time.Minute)
		}

		// Sign, then Verify the same request.
		if !isToken(method) || method == "CONNECT" {
			method = "POST"
		}
		req := &http.Request{
			Method: method, URL: &url.URL{Scheme: "http", Host: "example.com", Path: path, RawQuery: rawQuery},
			Header: http.Header{}, Host: "example.com",
			Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
		}
		if project != "" {
			req.Header.Set("X-Project-Id", project)
		}
		if err := Sign(req, body, "AK", "SK", now); err != nil {
			_, qerr := url.ParseQuery(rawQuery)
			if qerr == nil && strings.Count(rawQuery, "&") < maxQueryParams && (path == "" || path[0] == '/') {
				t.Fatalf("Sign refused a decodable request: %v", err)
			}
			return
		}
		auth, err := ParseAuthorization(req.Header.Get("Authorization"))
		if err != nil {
			t.Fatalf("Sign wrote an unparsable header: %v", err)
		}
		if err := Verify(req, body, auth, "SK", now, time.Minute); err != nil {
			t.Fatalf("round trip failed: %v", err)
		}

		// What a server receives: serialise as Go's client does, parse as
		// Go's server does. Skip what the transport would refuse to send.
		if !sendable(project) || strings.ContainsFunc(rawQuery, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return
		}
		var wire bytes.Buffer
		if err := req.Write(&wire); err != nil {
			return
		}
		sreq, err := http.ReadRequest(bufio.NewReader(&wire))
		if err != nil {
			return // the server answers 400
		}
		sbody, err := io.ReadAll(sreq.Body)
		if err != nil || !bytes.Equal(sbody, body) {
			t.Fatalf("body did not survive the wire: %v", err)
		}
		if err := Verify(sreq, sbody, auth, "SK", now, time.Minute); err != nil {
			t.Fatalf("server side: %v\nclient path %q query %q\nserver path %q query %q\n%s", err,
				path, rawQuery, sreq.URL.Path, sreq.URL.RawQuery, CanonicalRequest(sreq, auth.SignedHeaders, ""))
		}

		// Tampering is caught.
		if err := Verify(sreq, append(bytes.Clone(sbody), 'x'), auth, "SK", now, time.Minute); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("a changed body gave %v", err)
		}
		sreq.URL.RawQuery += "&x=1"
		if err := Verify(sreq, sbody, auth, "SK", now, time.Minute); !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("a changed query gave %v", err)
		}
	})
}

// sendable reports whether Go's transport accepts v as a header value.
func sendable(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c != '\t' && (c < ' ' || c == 0x7f) {
			return false
		}
	}
	return true
}
