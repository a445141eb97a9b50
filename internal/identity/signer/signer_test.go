package signer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	sdksigner "github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/signer"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	sdkreq "github.com/huaweicloud/huaweicloud-sdk-go-v3/core/request"
	sms "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/sms/v3"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/sms/v3/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testAK = "HPUAXXXXXXXXXXXXXXXX"
	testSK = "s3cr3tKEYs3cr3tKEYs3cr3tKEYs3cr3tKEY0000"
)

var testNow = time.Date(2026, 11, 27, 8, 30, 0, 0, time.UTC)

// received is a request as a Go server sees it.
type received struct {
	req  *http.Request
	body []byte
}

// recorder is a real HTTP server that keeps what arrives, so the tests see
// the escaping and header handling of Go's client and server.
type recorder struct {
	srv *httptest.Server
	got chan received
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	r := &recorder{got: make(chan received, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		// A copy: the server still reads its request after the handler.
		r.got <- received{req: req.Clone(context.Background()), body: b}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) next(t *testing.T) received {
	t.Helper()
	select {
	case g := <-r.got:
		return g
	case <-time.After(5 * time.Second):
		t.Fatal("no request reached the server")
		return received{}
	}
}

// send sends req (with body) to the recorder and returns what arrived.
func (r *recorder) send(t *testing.T, req *http.Request) received {
	t.Helper()
	u, err := url.Parse(r.srv.URL)
	require.NoError(t, err)
	req.URL.Scheme, req.URL.Host, req.Host = u.Scheme, u.Host, ""
	resp, err := r.srv.Client().Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return r.next(t)
}

// resign signs, with our Sign, a copy of a received request stripped of what
// the SDK did not set: the result must be the SDK's own Authorization.
func resign(t *testing.T, got received, keepUA bool) string {
	t.Helper()
	mine := got.req.Clone(got.req.Context())
	mine.Header.Del("Authorization")
	mine.Header.Del("Accept-Encoding") // added by the transport
	if !keepUA {
		mine.Header.Del("User-Agent") // Go's default, not signed by the SDK
	}
	require.NoError(t, Sign(mine, got.body, testAK, testSK, time.Time{}), "X-Sdk-Date is kept from the request")
	return mine.Header.Get("Authorization")
}

func mustVerify(t *testing.T, got received, now time.Time) Authorization {
	t.Helper()
	auth, err := ParseAuthorization(got.req.Header.Get("Authorization"))
	require.NoError(t, err)
	assert.Equal(t, testAK, auth.AccessKey)
	require.NoError(t, Verify(got.req, got.body, auth, testSK, now, 15*time.Minute),
		"canonical request:\n%s", CanonicalRequest(got.req, auth.SignedHeaders, "<payload>"))
	return auth
}

// TestSDKClient drives the official SMS client, unmodified, against a server
// and checks every request it sends: Verify accepts it and our Sign computes
// the same Authorization header.
func TestSDKClient(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // the SDK may write ~/.huaweicloud
	rec := newRecorder(t)
	_, port, err := net.SplitHostPort(rec.srv.Listener.Addr().String())
	require.NoError(t, err)
	cred, err := basic.NewCredentialsBuilder().WithAk(testAK).WithSk(testSK).WithProjectId("0123456789abcdef0123456789abcdef").SafeBuild()
	require.NoError(t, err)
	hc, err := sms.SmsClientBuilder().
		WithEndpoint("http://127.0.0.1:" + port).
		WithCredential(cred).
		WithHttpConfig(config.DefaultHttpConfig().WithUserAgent("smsflow-signer-test").WithRetries(0)).
		SafeBuild()
	require.NoError(t, err)
	c := sms.NewSmsClient(hc)

	calls := []struct {
		name string
		call func() error
		path string // as decoded by the server
		body bool
	}{
		{"list with query", func() error {
			_, err := c.ListServers(&model.ListServersRequest{
				Name: new("模板 one+two/three&x=y;z%41"), State: new(model.GetListServersRequestStateEnum().WAITING),
				Limit: new(int32(200)), Offset: new(int32(0)), Connected: new(true), Ip: new("10.0.0.1"),
			})
			return err
		}, "/v3/sources", false},
		{"empty query value", func() error {
			_, err := c.ListTasks(&model.ListTasksRequest{Name: new(""), Limit: new(int32(1))})
			return err
		}, "/v3/tasks", false},
		{"path parameter with space, percent and unicode", func() error {
			_, err := c.ShowTemplate(&model.ShowTemplateRequest{Id: "a b%2F模板~!"})
			return err
		}, "/v3/vm/templates/a b%2F模板~!", false},
		{"delete", func() error {
			_, err := c.DeleteServer(&model.DeleteServerRequest{SourceId: "src-1"})
			return err
		}, "/v3/sources/src-1", false},
		{"put json", func() error {
			_, err := c.UpdateServerName(&model.UpdateServerNameRequest{SourceId: "src-1", Body: &model.PutSourceServerBody{Name: new("new name <&>")}})
			return err
		}, "/v3/sources/src-1", true},
		{"post json", func() error {
			_, err := c.CreateMigproject(&model.CreateMigprojectRequest{Body: &model.PostMigProjectBody{
				Name: "N121", Region: "region", Type: model.GetPostMigProjectBodyTypeEnum().MIGRATE_BLOCK, SpeedLimit: new(int32(0)),
			}})
			return err
		}, "/v3/migprojects", true},
		{"post json array", func() error {
			_, err := c.DeleteTemplates(&model.DeleteTemplatesRequest{Body: &model.DeletetemplatesReq{Ids: []string{"a", "b"}}})
			return err
		}, "/v3/vm/templates/delete", true},
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			require.NoError(t, tc.call())
			got := rec.next(t)
			assert.Equal(t, tc.path, got.req.URL.Path)
			if tc.body {
				assert.True(t, strings.HasSuffix(string(got.body), "}\n"), "SDK JSON bodies end in a newline: %q", got.body)
			}
			date, err := time.Parse(DateFormat, got.req.Header.Get(HeaderDate))
			require.NoError(t, err)
			assert.WithinDuration(t, start, date, 2*time.Second)

			auth := mustVerify(t, got, time.Now())
			assert.Equal(t, []string{"user-agent", "x-project-id", "x-sdk-date"}, auth.SignedHeaders,
				"the SDK signs User-Agent and X-Project-Id but neither Host nor Content-Type")
			assert.Equal(t, got.req.Header.Get("Authorization"), resign(t, got, true))
		})
	}
}

// sdkCase is a request built and signed with the SDK's own request builder
// and signer (what its credentials do), then converted and sent by the SDK's
// ConvertRequest through Go's client.
type sdkCase struct {
	name    string
	method  string
	path    string
	query   map[string]any
	headers map[string]string
	body    any
	// differs says why our Sign, which lists each header once and never
	// signs Host, cannot reproduce the SDK's header (Verify must still pass).
	differs string
}

func sdkCases() []sdkCase {
	jsonCT := map[string]string{"Content-Type": "application/json;charset=UTF-8"}
	raw := `{"raw":true}`
	rawHash := sha256.Sum256([]byte(raw))
	return []sdkCase{
		{name: "get list", method: "GET", path: "/v3/migprojects", query: map[string]any{"limit": 10, "offset": 0}},
		{name: "trailing slash", method: "GET", path: "/v3/sources/"},
		{name: "root", method: "GET", path: "/"},
		{name: "empty path", method: "GET", path: ""},
		{name: "double slash and dots", method: "GET", path: "/v3//sources/./a/../b"},
		{name: "repeated, empty and spaced query values", method: "GET", path: "/v3/sources",
			query: map[string]any{"state": []string{"waiting", "error", "a b", ""}, "name": "", "ip": "10.0.0.1", "flag": true}},
		{name: "unicode and reserved characters in the query", method: "GET", path: "/v3/vm/templates",
			query: map[string]any{"name": "模板 one+two/three&x=y;z?#%41~*'()", "key with space": "v", "é": "ü"}},
		{name: "map query parameter", method: "GET", path: "/v3/tasks", query: map[string]any{"tags": map[string]string{"env": "prod", "team": "a b"}}},
		{name: "space and tilde in the path", method: "DELETE", path: "/v3/vm/templates/a b~c"},
		{name: "percent in the path", method: "DELETE", path: "/v3/vm/templates/50%25 off%zz"},
		{name: "unicode in the path", method: "GET", path: "/v3/vm/templates/模板/é"},
		{name: "every ASCII punctuation in the path", method: "GET", path: "/v3/x/!\"#$&'()*+,:;<=>?@[\\]^_`{|}~-."},
		{name: "json body", method: "POST", path: "/v3/migprojects", headers: jsonCT,
			body: map[string]any{"name": "N121", "region": "r", "type": "MIGRATE_BLOCK", "html": "<&>"}},
		{name: "json body without content type", method: "PATCH", path: "/v3/migprojects/x", body: []string{"a"}},
		{name: "string body", method: "PUT", path: "/v3/migprojects/x", headers: jsonCT, body: raw},
		{name: "project, user agent, language, token", method: "PUT", path: "/v3/migprojects/abc/default",
			headers: map[string]string{"X-Project-Id": "0123456789abcdef", "User-Agent": "huaweicloud-usdk-go/3.0; smsflow",
				"X-Language": "en-us", "X-Security-Token": "tok/+="}},
		{name: "header values with spaces and empty", method: "GET", path: "/v3/config",
			headers: map[string]string{"X-Spaced": "  a  b  ", "X-Empty": "", "X-Unicode": "é模"}},
		{name: "unsigned payload", method: "POST", path: "/v3/tasks/t/log",
			headers: map[string]string{"Content-Type": "application/octet-stream"}, body: "raw bytes"},
		{name: "explicit content hash", method: "POST", path: "/v3/tasks/t/log",
			headers: map[string]string{"Content-Type": "application/json", HeaderContentSHA256: hex.EncodeToString(rawHash[:])}, body: raw},
		{name: "underscore header not signed", method: "GET", path: "/v3/config", headers: map[string]string{"X_Custom": "v"}},
		{name: "header names differing in case", method: "GET", path: "/v3/config",
			headers: map[string]string{"X-Dup": "b", "x-dup": "a", "X-DUP": "c"}, differs: "the SDK signs x-dup;x-dup;x-dup"},
		{name: "host header parameter", method: "GET", path: "/v3/config", headers: map[string]string{"Host": "<endpoint host>"},
			differs: "the SDK signs host, our Sign never does"},
	}
}

func TestAgainstSDKSigner(t *testing.T) {
	rec := newRecorder(t)
	endpoint := rec.srv.URL
	date := testNow.Format(DateFormat)
	for _, tc := range sdkCases() {
		t.Run(tc.name, func(t *testing.T) {
			b := sdkreq.NewHttpRequestBuilder().WithEndpoint(endpoint).WithPath(tc.path).WithMethod(tc.method)
			for k, v := range tc.query {
				b.AddQueryParam(k, reflect.ValueOf(v))
			}
			for k, v := range tc.headers {
				if v == "<endpoint host>" {
					v = strings.TrimPrefix(endpoint, "http://")
				}
				b.AddHeaderParam(k, v)
			}
			b.AddHeaderParam(HeaderDate, date)
			if tc.body != nil {
				b.WithBody("", tc.body)
			}
			sreq := b.Build()
			extra, err := sdksigner.Sign(sreq, testAK, testSK)
			require.NoError(t, err)
			for k, v := range extra { // as the SDK's credentials do
				sreq.AddHeaderParam(k, v)
			}
			hreq, err := sreq.ConvertRequest()
			require.NoError(t, err)
			resp, err := rec.srv.Client().Do(hreq)
			require.NoError(t, err)
			_ = resp.Body.Close()
			got := rec.next(t)

			if _, isMap := tc.body.(map[string]any); isMap {
				assert.True(t, strings.HasSuffix(string(got.body), "\n"), "JSON body ends in a newline")
			}
			mustVerify(t, got, testNow.Add(time.Minute))
			if tc.differs == "" {
				_, setUA := tc.headers["User-Agent"]
				assert.Equal(t, extra["Authorization"], resign(t, got, setUA))
			}
		})
	}
}

// signedRequest signs a request with our Sign and sends it.
func signedRequest(t *testing.T, rec *recorder, method, target, body string, hdr map[string]string) received {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.RequestURI = ""
	req.Header.Set("X-Project-Id", "p1")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "smsflow-agent/1.0")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	require.NoError(t, Sign(req, []byte(body), testAK, testSK, testNow))
	return rec.send(t, req)
}

func TestOurSignVerifies(t *testing.T) {
	rec := newRecorder(t)
	got := signedRequest(t, rec, "POST", "http://x/v3/vm/templates/a%20b%25?limit=5&name=%E6%A8%A1+x&empty&flag=", `{"name":"a"}`+"\n", nil)
	auth := mustVerify(t, got, testNow)
	assert.Equal(t, []string{"user-agent", "x-project-id", "x-sdk-date"}, auth.SignedHeaders)
	assert.Equal(t, "/v3/vm/templates/a b%", got.req.URL.Path)
}

func TestVerifyRefusals(t *testing.T) {
	rec := newRecorder(t)
	const body = `{"name":"a"}`
	bodyHash := sha256.Sum256([]byte(body))
	type env struct {
		r    *received
		auth *Authorization
		sk   *string
		at   *time.Time
	}
	cases := []struct {
		name   string
		hdr    map[string]string // extra headers set before signing
		mutate func(e env)
		want   error // nil: accepted
	}{
		{"untouched", nil, func(env) {}, nil},
		{"query reordered", nil, func(e env) { e.r.req.URL.RawQuery = "offset=0&limit=5" }, nil},
		{"query differently encoded", nil, func(e env) { e.r.req.URL.RawQuery = "%6Cimit=%35&offset=0" }, nil},
		{"unsigned header added", nil, func(e env) { e.r.req.Header.Set("X-Other", "1") }, nil},
		{"content type changed", nil, func(e env) { e.r.req.Header.Set("Content-Type", "text/plain") }, nil},
		{"upper-case signature", nil, func(e env) { e.auth.Signature = strings.ToUpper(e.auth.Signature) }, nil},
		{"at the skew bound, late", nil, func(e env) { *e.at = testNow.Add(15 * time.Minute) }, nil},
		{"at the skew bound, early", nil, func(e env) { *e.at = testNow.Add(-15 * time.Minute) }, nil},

		{"body", nil, func(e env) { e.r.body = []byte(`{"name":"b"}`) }, ErrBadSignature},
		{"body emptied", nil, func(e env) { e.r.body = nil }, ErrBadSignature},
		{"body trailing newline", nil, func(e env) { e.r.body = append(e.r.body, '\n') }, ErrBadSignature},
		{"query value", nil, func(e env) { e.r.req.URL.RawQuery = "limit=6&offset=0" }, ErrBadSignature},
		{"query parameter added", nil, func(e env) { e.r.req.URL.RawQuery += "&admin=1" }, ErrBadSignature},
		{"query parameter repeated", nil, func(e env) { e.r.req.URL.RawQuery += "&limit=5" }, ErrBadSignature},
		{"query removed", nil, func(e env) { e.r.req.URL.RawQuery = "" }, ErrBadSignature},
		{"path", nil, func(e env) { e.r.req.URL.Path = "/v3/migprojectz" }, ErrBadSignature},
		{"trailing slash does not matter", nil, func(e env) { e.r.req.URL.Path += "/" }, nil},
		{"method", nil, func(e env) { e.r.req.Method = "PUT" }, ErrBadSignature},
		{"signed header changed", nil, func(e env) { e.r.req.Header.Set("X-Project-Id", "p2") }, ErrBadSignature},
		{"signed header repeated", nil, func(e env) { e.r.req.Header.Add("X-Project-Id", "p2") }, ErrBadSignature},
		{"signed header removed", nil, func(e env) { e.r.req.Header.Del("User-Agent") }, ErrBadSignature},
		{"signed header list shortened", nil, func(e env) { e.auth.SignedHeaders = []string{"x-project-id", "x-sdk-date"} }, ErrBadSignature},
		{"date changed", nil, func(e env) { e.r.req.Header.Set(HeaderDate, testNow.Add(time.Second).Format(DateFormat)) }, ErrBadSignature},
		{"wrong sk", nil, func(e env) { *e.sk = "other" }, ErrBadSignature},
		{"empty sk", nil, func(e env) { *e.sk = "" }, ErrBadSignature},
		{"signature flipped", nil, func(e env) {
			e.auth.Signature = strings.Repeat("0", 63) + "1"
		}, ErrBadSignature},
		{"body swapped with the old hash in an unsigned X-Sdk-Content-Sha256", nil, func(e env) {
			e.r.body = []byte(`{"name":"evil"}`)
			e.r.req.Header.Set(HeaderContentSHA256, hex.EncodeToString(bodyHash[:]))
		}, ErrBadSignature},
		{"unsigned UNSIGNED-PAYLOAD added", nil, func(e env) {
			e.r.body = []byte(`{"name":"evil"}`)
			e.r.req.Header.Set(HeaderContentSHA256, UnsignedPayload)
		}, ErrBadSignature},
		{"signed content hash, body changed", map[string]string{HeaderContentSHA256: hex.EncodeToString(bodyHash[:])},
			func(e env) { e.r.body = []byte(`{"name":"b"}`) }, ErrBadSignature},
		{"signed content hash, untouched", map[string]string{HeaderContentSHA256: hex.EncodeToString(bodyHash[:])},
			func(env) {}, nil},
		{"signed UNSIGNED-PAYLOAD: the body is not covered (SDK behaviour)", map[string]string{HeaderContentSHA256: UnsignedPayload},
			func(e env) { e.r.body = []byte("anything") }, nil},
		{"too old", nil, func(e env) { *e.at = testNow.Add(15*time.Minute + time.Second) }, ErrClockSkew},
		{"from the future", nil, func(e env) { *e.at = testNow.Add(-15*time.Minute - time.Second) }, ErrClockSkew},
		{"far future", nil, func(e env) { *e.at = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC) }, ErrClockSkew},
		{"bad date", nil, func(e env) { e.r.req.Header.Set(HeaderDate, "yesterday") }, ErrMalformed},
		{"local date format", nil, func(e env) { e.r.req.Header.Set(HeaderDate, testNow.Format(time.RFC1123)) }, ErrMalformed},
		{"date missing", nil, func(e env) { e.r.req.Header.Del(HeaderDate) }, ErrMalformed},
		{"date repeated", nil, func(e env) { e.r.req.Header.Add(HeaderDate, testNow.Format(DateFormat)) }, ErrMalformed},
		{"x-sdk-date not signed", nil, func(e env) { e.auth.SignedHeaders = []string{"user-agent", "x-project-id"} }, ErrMalformed},
		{"no signed headers", nil, func(e env) { e.auth.SignedHeaders = nil }, ErrMalformed},
		{"signature not hex", nil, func(e env) { e.auth.Signature = strings.Repeat("z", 64) }, ErrMalformed},
		{"signature short", nil, func(e env) { e.auth.Signature = "abcd" }, ErrMalformed},
		{"query with a bad escape", nil, func(e env) { e.r.req.URL.RawQuery += "&x=%zz" }, ErrMalformed},
		{"query with a semicolon", nil, func(e env) { e.r.req.URL.RawQuery += "&x;y" }, ErrMalformed},
		{"query with too many parameters", nil, func(e env) { e.r.req.URL.RawQuery += strings.Repeat("&a", maxQueryParams) }, ErrMalformed},
		{"repeated X-Sdk-Content-Sha256", map[string]string{HeaderContentSHA256: UnsignedPayload},
			func(e env) { e.r.req.Header.Add(HeaderContentSHA256, UnsignedPayload) }, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := signedRequest(t, rec, "POST", "http://x/v3/migprojects?limit=5&offset=0", body, tc.hdr)
			auth, err := ParseAuthorization(r.req.Header.Get("Authorization"))
			require.NoError(t, err)
			sk, at := testSK, testNow
			tc.mutate(env{&r, &auth, &sk, &at})
			err = Verify(r.req, r.body, auth, sk, at, 15*time.Minute)
			if tc.want == nil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tc.want)
			for _, other := range []error{ErrBadSignature, ErrClockSkew, ErrMalformed} {
				if other != tc.want {
					assert.NotErrorIs(t, err, other)
				}
			}
		})
	}
}

func TestVerifyNeverPanics(t *testing.T) {
	sig := strings.Repeat("ab", 32)
	good := Authorization{AccessKey: "AK", SignedHeaders: []string{"x-sdk-date"}, Signature: sig}
	withDate := func() *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set(HeaderDate, testNow.Format(DateFormat))
		return r
	}
	cases := []struct {
		name string
		req  *http.Request
		auth Authorization
		want error
	}{
		{"nil request", nil, good, ErrMalformed},
		{"nil URL", &http.Request{Header: http.Header{HeaderDate: {testNow.Format(DateFormat)}}}, good, ErrMalformed},
		{"nil header", &http.Request{URL: &url.URL{Path: "/"}}, good, ErrMalformed},
		{"zero authorization", withDate(), Authorization{}, ErrMalformed},
		{"odd signed names", withDate(), Authorization{SignedHeaders: []string{"", "HOST", "host", "a b", strings.Repeat("x", 100), "x-sdk-date", "é"}, Signature: sig}, ErrBadSignature},
		{"empty method", &http.Request{URL: &url.URL{}, Header: http.Header{HeaderDate: {testNow.Format(DateFormat)}}}, good, ErrBadSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.NotPanics(t, func() {
				assert.ErrorIs(t, Verify(tc.req, nil, tc.auth, "sk", testNow, time.Minute), tc.want)
				_ = CanonicalRequest(tc.req, tc.auth.SignedHeaders, "")
			})
		})
	}
	// Negative skew is treated as zero.
	r := httptest.NewRequest("GET", "/", nil)
	require.NoError(t, Sign(r, nil, "AK", "SK", testNow))
	auth, err := ParseAuthorization(r.Header.Get("Authorization"))
	require.NoError(t, err)
	assert.NoError(t, Verify(r, nil, auth, "SK", testNow, -time.Hour))
	assert.ErrorIs(t, Verify(r, nil, auth, "SK", testNow.Add(time.Second), -time.Hour), ErrClockSkew)
}

func TestParseAuthorization(t *testing.T) {
	sig := strings.Repeat("ab", 32)
	want := Authorization{AccessKey: "AK1", SignedHeaders: []string{"user-agent", "x-sdk-date"}, Signature: sig}
	for _, good := range []string{
		"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=user-agent;x-sdk-date, Signature=" + sig,
		"SDK-HMAC-SHA256 Access=AK1,SignedHeaders=user-agent;x-sdk-date,Signature=" + sig,
		"SDK-HMAC-SHA256  Signature=" + sig + " ,\tSignedHeaders=user-agent;x-sdk-date , Access=AK1 ",
	} {
		a, err := ParseAuthorization(good)
		require.NoError(t, err, good)
		assert.Equal(t, want, a, good)
	}
	a, err := ParseAuthorization("SDK-HMAC-SHA256 Access=AK1, SignedHeaders=x-a;x-a;x-sdk-date, Signature=" + strings.ToUpper(sig))
	require.NoError(t, err)
	assert.Equal(t, []string{"x-a", "x-a", "x-sdk-date"}, a.SignedHeaders, "duplicates are kept, in order")
	assert.True(t, a.Signs("X-A"))
	assert.False(t, a.Signs("x-b"))

	for _, bad := range []string{
		"",
		"Bearer x",
		"SDK-HMAC-SHA256",
		"SDK-HMAC-SHA256 ",
		"sdk-hmac-sha256 Access=AK1, SignedHeaders=x-sdk-date, Signature=" + sig,
		"SDK-HMAC-SM3 Access=AK1, SignedHeaders=x-sdk-date, Signature=" + sig,
		"SDK-HMAC-SHA256 Access=AK1",
		"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=x-sdk-date",
		"SDK-HMAC-SHA256 Access=, SignedHeaders=x-sdk-date, Signature=" + sig,
		"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=, Signature=" + sig,
		"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=x-sdk-date, Signature=zz",
		"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=x-sdk-date, Signature=" + sig + "0",
		"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=x-sdk-date, Signature=" + sig[:62] + "g0",
		"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=X-Sdk-Date, Signature=" + sig,
		"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=;, Signature=" + sig,
		"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=x-sdk-date;, Signature=" + sig,
		"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=x sdk, Signature=" + sig,
		"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=x:y, Signature=" + sig,
		"SDK-HMAC-SHA256 Access=AK1, Foo=1, SignedHeaders=x-sdk-date, Signature=" + sig,
		"SDK-HMAC-SHA256 Access=AK1, Access=AK2, SignedHeaders=x-sdk-date, Signature=" + sig,
		"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=x-sdk-date, Signature=" + sig + ", Signature=" + sig,
		"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=x-sdk-date, Signature=" + sig + ",",
		"SDK-HMAC-SHA256 Access=AK1; SignedHeaders=x-sdk-date; Signature=" + sig,
		"SDK-HMAC-SHA256 access=AK1, signedheaders=x-sdk-date, signature=" + sig,
	} {
		_, err := ParseAuthorization(bad)
		assert.ErrorIs(t, err, ErrMalformed, bad)
	}
}

func TestCanonicalRequest(t *testing.T) {
	req := httptest.NewRequest("GET", "/v3/a%20b/50%25/%E6%A8%A1%E6%9D%BF?b=2&a=1&a=0&empty&sp=x+y&plus=%2B&sl=%2F", nil)
	req.Header.Set(HeaderDate, "20261127T083000Z")
	req.Header.Set("User-Agent", "  ua  ")
	req.Header.Add("X-Multi", "b")
	req.Header.Add("X-Multi", " a")
	got := CanonicalRequest(req, []string{"host", "user-agent", "x-missing", "x-multi", "x-sdk-date"}, "HASH")
	assert.Equal(t, "GET\n"+
		"/v3/a%20b/50%25/%E6%A8%A1%E6%9D%BF/\n"+
		"a=0&a=1&b=2&empty=&plus=%2B&sl=%2F&sp=x%20y\n"+
		"host:example.com\n"+
		"user-agent:ua\n"+
		"x-multi:a\n"+
		"x-multi:b\n"+
		"x-sdk-date:20261127T083000Z\n"+
		"\n"+
		"host;user-agent;x-missing;x-multi;x-sdk-date\n"+
		"HASH", got)

	// The design note's example: /v3/tasks -> /v3/tasks/.
	req = httptest.NewRequest("POST", "/v3/tasks", nil)
	assert.Equal(t, "POST\n/v3/tasks/\n\n\n\nHASH", CanonicalRequest(req, nil, "HASH"))
	assert.Equal(t, "GET\n/\n\n\n\n", CanonicalRequest(nil, nil, ""))
}

func TestEscape(t *testing.T) {
	var all []byte
	for c := 0; c < 256; c++ {
		all = append(all, byte(c))
	}
	var want strings.Builder
	for _, c := range all {
		if strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-~.", c) >= 0 {
			want.WriteByte(c)
		} else {
			want.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
		}
	}
	assert.Equal(t, want.String(), string(appendEscaped(nil, string(all))))
	assert.Equal(t, "/a%20b/%25/"+strings.ReplaceAll(want.String(), "%2F", "/")+"/", string(appendURI(nil, "/a b/%/"+string(all))))
}

func TestSign(t *testing.T) {
	t.Run("headers it signs", func(t *testing.T) {
		req := httptest.NewRequest("PUT", "http://h/v3/x", nil)
		req.Header = http.Header{
			"x-lower":          {" v "},
			"X-Lower":          {"w"},
			"Content-Type":     {"application/json"},
			"Content-Type-Ext": {"x"},
			"X_under":          {"u"},
			"Host":             {"h"},
			"Content-Length":   {"0"},
			"User-Agent":       {"ua1", "ua2"},
			"X-Empty":          {},
			"Authorization":    {"old"},
		}
		require.NoError(t, Sign(req, nil, "AK", "SK", testNow))
		auth, err := ParseAuthorization(req.Header.Get("Authorization"))
		require.NoError(t, err)
		assert.Equal(t, []string{"user-agent", "x-lower", "x-sdk-date"}, auth.SignedHeaders)
		assert.Equal(t, testNow.Format(DateFormat), req.Header.Get(HeaderDate))
		assert.ElementsMatch(t, []string{"v", "w"}, req.Header["X-Lower"], "merged under the canonical name, trimmed")
		assert.Equal(t, []string{"ua1"}, req.Header["User-Agent"], "Go sends the first User-Agent only")
		assert.NoError(t, Verify(req, nil, auth, "SK", testNow, 0))
	})
	t.Run("keeps a valid date, replaces a bad one", func(t *testing.T) {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set(HeaderDate, "20200101T000000Z")
		require.NoError(t, Sign(req, nil, "AK", "SK", testNow))
		assert.Equal(t, "20200101T000000Z", req.Header.Get(HeaderDate))
		req.Header.Set(HeaderDate, "2020-01-01")
		require.NoError(t, Sign(req, nil, "AK", "SK", testNow.In(time.FixedZone("X", 3600))))
		assert.Equal(t, "20261127T083000Z", req.Header.Get(HeaderDate), "UTC")
	})
	t.Run("content hash header under any spelling", func(t *testing.T) {
		body := []byte("raw")
		sum := sha256.Sum256(body)
		for _, v := range []string{UnsignedPayload, hex.EncodeToString(sum[:]), strings.ToUpper(hex.EncodeToString(sum[:]))} {
			req := httptest.NewRequest("POST", "/x", nil)
			req.Header["x-sdk-content-sha256"] = []string{" " + v}
			require.NoError(t, Sign(req, body, "AK", "SK", testNow))
			assert.Equal(t, v, req.Header.Get(HeaderContentSHA256))
			auth, err := ParseAuthorization(req.Header.Get("Authorization"))
			require.NoError(t, err)
			assert.True(t, auth.Signs(HeaderContentSHA256))
			assert.NoError(t, Verify(req, body, auth, "SK", testNow, 0), v)
		}
	})
	t.Run("empty method is GET", func(t *testing.T) {
		req := &http.Request{URL: &url.URL{Path: "/x"}}
		require.NoError(t, Sign(req, nil, "AK", "SK", testNow))
		auth, err := ParseAuthorization(req.Header.Get("Authorization"))
		require.NoError(t, err)
		req.Method = "GET"
		assert.NoError(t, Verify(req, nil, auth, "SK", testNow, 0))
	})
	for _, tc := range []struct {
		name     string
		req      *http.Request
		ak, sk   string
		hdr      http.Header
		contains string
	}{
		{"nil request", nil, "AK", "SK", nil, "URL"},
		{"nil URL", &http.Request{}, "AK", "SK", nil, "URL"},
		{"no AK", httptest.NewRequest("GET", "/", nil), "", "SK", nil, "required"},
		{"no SK", httptest.NewRequest("GET", "/", nil), "AK", "", nil, "required"},
		{"AK with a comma", httptest.NewRequest("GET", "/", nil), "A,K", "SK", nil, "AK"},
		{"opaque URL", &http.Request{URL: &url.URL{Scheme: "mailto", Opaque: "x@y"}}, "AK", "SK", nil, "opaque"},
		{"relative path", &http.Request{URL: &url.URL{Path: "a:b"}}, "AK", "SK", nil, "start with /"},
		{"bad query", httptest.NewRequest("GET", "/?a=%zz", nil), "AK", "SK", nil, "query"},
		{"bad header name", httptest.NewRequest("GET", "/", nil), "AK", "SK", http.Header{"Bad Name": {"v"}}, "header name"},
		{"wrong content hash", httptest.NewRequest("GET", "/", nil), "AK", "SK", http.Header{HeaderContentSHA256: {"abc"}}, "Content-Sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.hdr != nil {
				tc.req.Header = tc.hdr
			}
			err := Sign(tc.req, nil, tc.ak, tc.sk, testNow)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.contains)
		})
	}
}

func benchRequest(b *testing.B, method, target string, body []byte) (*http.Request, Authorization) {
	req := httptest.NewRequest(method, target, nil)
	req.Header.Set("User-Agent", "huaweicloud-usdk-go/3.0; smsflow-agent")
	req.Header.Set("X-Project-Id", "0123456789abcdef0123456789abcdef")
	if body != nil {
		req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	}
	if err := Sign(req, body, testAK, testSK, testNow); err != nil {
		b.Fatal(err)
	}
	auth, err := ParseAuthorization(req.Header.Get("Authorization"))
	if err != nil {
		b.Fatal(err)
	}
	return req, auth
}

// BenchmarkVerify: a typical GET with 3 signed headers (user-agent,
// x-project-id, x-sdk-date) and a query.
func BenchmarkVerify(b *testing.B) {
	req, auth := benchRequest(b, "GET", "/v3/sources?limit=200&offset=0&state=waiting&name=%E6%A8%A1%20x", nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(req, nil, auth, testSK, testNow, 15*time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyWithParse adds ParseAuthorization, as a server does it.
func BenchmarkVerifyWithParse(b *testing.B) {
	req, _ := benchRequest(b, "GET", "/v3/sources?limit=200&offset=0&state=waiting", nil)
	b.ReportAllocs()
	for b.Loop() {
		auth, err := ParseAuthorization(req.Header.Get("Authorization"))
		if err != nil {
			b.Fatal(err)
		}
		if err := Verify(req, nil, auth, testSK, testNow, 15*time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyPOST1K: a 1 KiB JSON body.
func BenchmarkVerifyPOST1K(b *testing.B) {
	body := []byte(`{"name":"` + strings.Repeat("x", 1010) + `"}` + "\n")
	req, auth := benchRequest(b, "POST", "/v3/migprojects", body)
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(req, body, auth, testSK, testNow, 15*time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	req, _ := benchRequest(b, "GET", "/v3/sources?limit=200&offset=0&state=waiting", nil)
	b.ReportAllocs()
	for b.Loop() {
		req.Header.Del("Authorization")
		if err := Sign(req, nil, testAK, testSK, testNow); err != nil {
			b.Fatal(err)
		}
	}
}
