package signer

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	sdksigner "github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/signer"
	sdkreq "github.com/huaweicloud/huaweicloud-sdk-go-v3/core/request"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testAK = "HPUAXXXXXXXXXXXXXXXX"
	testSK = "s3cr3tKEYs3cr3tKEYs3cr3tKEYs3cr3tKEY0000"
)

// received is a request as a server sees it.
type received struct {
	req  *http.Request
	body []byte
}

// capture sends req to a real HTTP server and returns what arrived, so the
// test sees the same escaping and header handling a server does.
func capture(t *testing.T, req *http.Request) received {
	t.Helper()
	got := make(chan received, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- received{req: r, body: b}
	}))
	defer srv.Close()
	target, err := http.NewRequest(req.Method, srv.URL, nil)
	require.NoError(t, err)
	target.URL.Path, target.URL.RawPath, target.URL.RawQuery = req.URL.Path, req.URL.RawPath, req.URL.RawQuery
	target.Header = req.Header.Clone()
	if req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		target.Body = io.NopCloser(bytes.NewReader(b))
		target.ContentLength = int64(len(b))
	}
	resp, err := srv.Client().Do(target)
	require.NoError(t, err)
	resp.Body.Close()
	return <-got
}

type sdkCase struct {
	name    string
	method  string
	path    string
	query   map[string]any
	headers map[string]string
	body    any
}

func sdkCases() []sdkCase {
	return []sdkCase{
		{name: "get list", method: "GET", path: "/v3/migprojects", query: map[string]any{"limit": 10, "offset": 0}},
		{name: "trailing slash", method: "GET", path: "/v3/sources/"},
		{name: "repeated and empty query", method: "GET", path: "/v3/sources", query: map[string]any{"state": []string{"waiting", "error", "a b"}, "name": "", "ip": "10.0.0.1"}},
		{name: "unicode and spaces", method: "GET", path: "/v3/vm/templates", query: map[string]any{"name": "模板 one+two/three&x=y"}},
		{name: "path with space", method: "DELETE", path: "/v3/vm/templates/a b~c"},
		{name: "json body", method: "POST", path: "/v3/migprojects", headers: map[string]string{"Content-Type": "application/json;charset=UTF-8"},
			body: map[string]any{"name": "N121", "region": "r", "type": "MIGRATE_BLOCK"}},
		{name: "project and user agent", method: "PUT", path: "/v3/migprojects/abc/default",
			headers: map[string]string{"X-Project-Id": "0123456789abcdef", "User-Agent": "huaweicloud-usdk-go/3.0; smsflow", "X-Language": "en-us"}},
		{name: "unsigned payload", method: "POST", path: "/v3/tasks/t/log", headers: map[string]string{"Content-Type": "application/octet-stream"}, body: "raw bytes"},
		{name: "underscore header not signed", method: "GET", path: "/v3/config", headers: map[string]string{"X_Custom": "v"}},
	}
}

func buildSDK(t *testing.T, tc sdkCase, date string) *sdkreq.DefaultHttpRequest {
	t.Helper()
	b := sdkreq.NewHttpRequestBuilder().WithEndpoint("http://127.0.0.1:1").WithPath(tc.path).WithMethod(tc.method)
	for k, v := range tc.query {
		b.AddQueryParam(k, reflect.ValueOf(v))
	}
	for k, v := range tc.headers {
		b.AddHeaderParam(k, v)
	}
	b.AddHeaderParam(HeaderDate, date)
	if tc.body != nil {
		b.WithBody("application/json", tc.body)
	}
	return b.Build()
}

// TestAgainstSDK: requests signed by the official SDK verify, and our Sign
// produces the SDK's exact Authorization header for the same request.
func TestAgainstSDK(t *testing.T) {
	now := time.Date(2026, 11, 27, 8, 30, 0, 0, time.UTC)
	date := now.Format(DateFormat)
	for _, tc := range sdkCases() {
		t.Run(tc.name, func(t *testing.T) {
			sreq := buildSDK(t, tc, date)
			hdrs, err := sdksigner.Sign(sreq, testAK, testSK)
			require.NoError(t, err)
			hreq, err := sreq.ConvertRequest()
			require.NoError(t, err)
			// ConvertRequest copies the header params; the signer may have
			// added X-Sdk-Content-Sha256 to them before signing.
			for k, v := range hdrs {
				hreq.Header.Set(k, v)
			}
			got := capture(t, hreq)

			auth, err := ParseAuthorization(got.req.Header.Get("Authorization"))
			require.NoError(t, err)
			assert.Equal(t, testAK, auth.AccessKey)
			require.NoError(t, Verify(got.req, got.body, auth, testSK, now.Add(time.Minute), 15*time.Minute))

			// Our client-side Sign over the same request gives the same header.
			mine := got.req.Clone(got.req.Context())
			mine.Header.Del("Authorization")
			for _, h := range []string{"Accept-Encoding", "Content-Length"} {
				mine.Header.Del(h) // added by the transport, not by the SDK
			}
			if _, set := tc.headers["User-Agent"]; !set {
				mine.Header.Del("User-Agent") // Go's default, added after signing
			}
			require.NoError(t, Sign(mine, got.body, testAK, testSK, now))
			assert.Equal(t, hdrs["Authorization"], mine.Header.Get("Authorization"))
		})
	}
}

func signed(t *testing.T, method, target, body string, now time.Time) received {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Project-Id", "p1")
	req.Header.Set("Content-Type", "application/json")
	require.NoError(t, Sign(req, []byte(body), testAK, testSK, now))
	return capture(t, req)
}

func TestVerifyRefusals(t *testing.T) {
	now := time.Date(2026, 11, 27, 8, 30, 0, 0, time.UTC)
	base := func() received { return signed(t, "POST", "http://x/v3/migprojects?limit=5", `{"name":"a"}`, now) }
	cases := []struct {
		name   string
		mutate func(r *received, sk *string, at *time.Time)
		want   error
	}{
		{"untouched", func(*received, *string, *time.Time) {}, nil},
		{"body", func(r *received, _ *string, _ *time.Time) { r.body = []byte(`{"name":"b"}`) }, ErrBadSignature},
		{"query", func(r *received, _ *string, _ *time.Time) { r.req.URL.RawQuery = "limit=6" }, ErrBadSignature},
		{"path", func(r *received, _ *string, _ *time.Time) { r.req.URL.Path = "/v3/migprojectz" }, ErrBadSignature},
		{"method", func(r *received, _ *string, _ *time.Time) { r.req.Method = "PUT" }, ErrBadSignature},
		{"signed header", func(r *received, _ *string, _ *time.Time) { r.req.Header.Set("X-Project-Id", "p2") }, ErrBadSignature},
		{"wrong sk", func(_ *received, sk *string, _ *time.Time) { *sk = "other" }, ErrBadSignature},
		{"too old", func(_ *received, _ *string, at *time.Time) { *at = now.Add(16 * time.Minute) }, ErrClockSkew},
		{"from the future", func(_ *received, _ *string, at *time.Time) { *at = now.Add(-16 * time.Minute) }, ErrClockSkew},
		{"within skew", func(_ *received, _ *string, at *time.Time) { *at = now.Add(14 * time.Minute) }, nil},
		{"bad date", func(r *received, _ *string, _ *time.Time) { r.req.Header.Set(HeaderDate, "yesterday") }, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			sk, at := testSK, now
			tc.mutate(&r, &sk, &at)
			auth, err := ParseAuthorization(r.req.Header.Get("Authorization"))
			require.NoError(t, err)
			err = Verify(r.req, r.body, auth, sk, at, 15*time.Minute)
			if tc.want == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tc.want)
			}
		})
	}

	// The date must be among the signed headers.
	r := base()
	auth, err := ParseAuthorization(r.req.Header.Get("Authorization"))
	require.NoError(t, err)
	auth.SignedHeaders = []string{"x-project-id"}
	assert.ErrorIs(t, Verify(r.req, r.body, auth, testSK, now, time.Minute), ErrMalformed)
}

func TestParseAuthorization(t *testing.T) {
	sig := strings.Repeat("ab", 32)
	good := "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=user-agent;x-sdk-date, Signature=" + sig
	a, err := ParseAuthorization(good)
	require.NoError(t, err)
	assert.Equal(t, Authorization{AccessKey: "AK1", SignedHeaders: []string{"user-agent", "x-sdk-date"}, Signature: sig}, a)
	for _, bad := range []string{
		"",
		"Bearer x",
		"SDK-HMAC-SHA256",
		"SDK-HMAC-SHA256 Access=AK1",
		"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=x-sdk-date",
		"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=x-sdk-date, Signature=zz",
		"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=X-Sdk-Date, Signature=" + sig,
		"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=;, Signature=" + sig,
		"SDK-HMAC-SHA256 Access=AK1, Foo=1, SignedHeaders=x-sdk-date, Signature=" + sig,
		"SDK-HMAC-SHA256 Access=AK1; SignedHeaders=x-sdk-date; Signature=" + sig,
	} {
		_, err := ParseAuthorization(bad)
		assert.ErrorIs(t, err, ErrMalformed, bad)
	}
}

func TestCanonicalRequestShape(t *testing.T) {
	req := httptest.NewRequest("GET", "/v3/sources?b=2&a=1&a=0&empty", nil)
	req.Header.Set("X-Sdk-Date", "20261127T083000Z")
	req.Header.Set("User-Agent", "  ua  ")
	got := CanonicalRequest(req, []string{"user-agent", "x-sdk-date"}, "HASH")
	assert.Equal(t, "GET\n/v3/sources/\na=0&a=1&b=2&empty=\nuser-agent:ua\nx-sdk-date:20261127T083000Z\n\nuser-agent;x-sdk-date\nHASH", got)
}

func BenchmarkVerify(b *testing.B) {
	now := time.Date(2026, 11, 27, 8, 30, 0, 0, time.UTC)
	req := httptest.NewRequest("GET", "/v3/sources?limit=200&offset=0&state=waiting", nil)
	req.Header.Set("User-Agent", "huaweicloud-usdk-go/3.0")
	req.Header.Set("X-Project-Id", "0123456789abcdef0123456789abcdef")
	if err := Sign(req, nil, testAK, testSK, now); err != nil {
		b.Fatal(err)
	}
	auth, err := ParseAuthorization(req.Header.Get("Authorization"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		a, _ := ParseAuthorization(req.Header.Get("Authorization"))
		_ = a
		if err := Verify(req, nil, auth, testSK, now, 15*time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}
