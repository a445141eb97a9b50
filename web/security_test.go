package web_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/identity/signer"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
	"github.com/smsflow/smsflow/web"
)

// countingBody is a request body that records how much of it was read.
type countingBody struct {
	left  int64
	reads atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), b.left))
	clear(p[:n])
	b.left -= int64(n)
	b.reads.Add(int64(n))
	return n, nil
}

func (b *countingBody) Close() error { return nil }

// TestRefusedBeforeBody: a caller the headers already refuse (no
// credentials, a bad token, an unknown AK, a stale X-Sdk-Date, a malformed
// signature header) gets today's answer without a byte of its body read.
func TestRefusedBeforeBody(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		signed := func(ak, sk string, at time.Time) map[string]string {
			req := httptest.NewRequest("POST", "/v3/migprojects", strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			require.NoError(t, signer.Sign(req, []byte("{}"), ak, sk, at))
			return map[string]string{"Authorization": req.Header.Get("Authorization"),
				"X-Sdk-Date": req.Header.Get("X-Sdk-Date")}
		}
		cases := []struct {
			name    string
			headers map[string]string
			code    string
		}{
			{"anonymous", nil, "SMS.6522"},
			{"bad token", map[string]string{"X-Auth-Token": "not-a-token"}, "SMS.6521"},
			{"unknown AK", signed("NOSUCHKEY", "secret", time.Now()), "SMS.0202"},
			{"stale date", signed(e.creds.AK, e.creds.SK, time.Now().Add(-time.Hour)), "SMS.0205"},
			{"malformed", map[string]string{"Authorization": "SDK-HMAC-SHA256 Access=x"}, "SMS.0202"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				body := &countingBody{left: web.MaxBodyBytes}
				req := httptest.NewRequest("POST", "/v3/migprojects", body)
				req.ContentLength = web.MaxBodyBytes
				req.Header.Set("Content-Type", "application/json")
				for k, v := range tc.headers {
					req.Header.Set(k, v)
				}
				rec := httptest.NewRecorder()
				e.handler.ServeHTTP(rec, req)
				r := response{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
				assert.Equal(t, http.StatusUnauthorized, r.status, r.body)
				code, _ := r.smsError(t)
				assert.Equal(t, tc.code, code)
				assert.Zero(t, body.reads.Load(), "body bytes read before refusing")
				assert.Equal(t, "close", rec.Header().Get("Connection"))
			})
		}
	})
}

// TestSignedBodyStillVerified: the signature still covers the body, read
// after the headers passed: a changed body is refused, the signed one served.
func TestSignedBodyStillVerified(t *testing.T) {
	e := newEnv(t, testdb.Open(t, store.SQLite))
	send := func(signedBody, sentBody string) response {
		req, err := http.NewRequest("POST", e.srv.URL+"/v3/migprojects", strings.NewReader(sentBody))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		require.NoError(t, signer.Sign(req, []byte(signedBody), e.creds.AK, e.creds.SK, time.Now()))
		resp, err := e.srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
	}
	good := `{"name":"signed-body","region":"r","use_public_ip":true,"exist_server":false,"type":"MIGRATE_BLOCK","syncing":false}`
	r := send(good, strings.Replace(good, "signed-body", "swapped-body", 1))
	require.Equal(t, http.StatusUnauthorized, r.status, r.body)
	code, _ := r.smsError(t)
	assert.Equal(t, "SMS.0202", code)
	r = send(good, good)
	assert.Equal(t, http.StatusOK, r.status, r.body)
}

// rawRequest sends head, then bodyLen zero bytes (paced by pace when not
// zero), on its own connection, reading the answer as it comes: the server
// may answer and close before the body is through, which a client that
// waits to finish writing would see as a reset. It returns the response and
// the body bytes written.
func rawRequest(t *testing.T, addr, head string, bodyLen int64, pace time.Duration, timeout time.Duration) (*http.Response, string, int64, error) {
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(timeout)))
	_, err = io.WriteString(conn, head)
	require.NoError(t, err)
	var written atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		var chunk [32 << 10]byte
		if pace > 0 {
			t := time.NewTicker(pace)
			defer t.Stop()
			for written.Load() < bodyLen {
				if _, err := conn.Write(chunk[:1]); err != nil {
					return
				}
				written.Add(1)
				<-t.C
			}
			return
		}
		for left := bodyLen; left > 0; {
			n, err := conn.Write(chunk[:min(left, int64(len(chunk)))])
			written.Add(int64(n))
			left -= int64(n)
			if err != nil {
				return
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	var body string
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
	}
	conn.Close() // ends the writer
	<-done
	return resp, body, written.Load(), err
}

// TestAnonymousBodiesMemory: 50 anonymous 12 MiB bodies at once (no
// credentials, bad tokens, unknown AKs, token requests) cost the server next
// to nothing: they are refused from their headers. Everything the process
// allocates while they run is counted (TotalAlloc, which only grows: no
// sampling to miss a peak), so the bound holds whatever the GC does; the
// old middleware read every body first, 600 MiB in all.
func TestAnonymousBodiesMemory(t *testing.T) {
	e := newEnv(t, testdb.Open(t, store.SQLite))
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	unknownAK := func() string {
		req := httptest.NewRequest("POST", "/v3/tasks", nil)
		require.NoError(t, signer.Sign(req, nil, "NOSUCHKEY", "secret", time.Now()))
		return "Authorization: " + req.Header.Get("Authorization") + "\r\nX-Sdk-Date: " + req.Header.Get("X-Sdk-Date") + "\r\n"
	}()
	kinds := []struct {
		path, headers string
		status        int
	}{
		{"/v3/tasks", "", http.StatusUnauthorized},
		{"/v3/tasks", "X-Auth-Token: guessed\r\n", http.StatusUnauthorized},
		{"/v3/tasks", unknownAK, http.StatusUnauthorized},
		{"/v3/auth/tokens", "", http.StatusRequestEntityTooLarge},
		{"/v3/sources", "", http.StatusUnauthorized},
	}
	const n = 50
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	var wg sync.WaitGroup
	var sent atomic.Int64
	errs := make(chan error, n)
	for i := range n {
		k := kinds[i%len(kinds)]
		wg.Go(func() {
			head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n",
				k.path, addr, web.MaxBodyBytes, k.headers)
			resp, body, w, err := rawRequest(t, addr, head, web.MaxBodyBytes, 0, 30*time.Second)
			sent.Add(w)
			if err != nil {
				errs <- fmt.Errorf("%s: %w", k.path, err)
				return
			}
			if resp.StatusCode != k.status || !strings.Contains(body, `"error_code"`) {
				errs <- fmt.Errorf("%s %q: %d %s", k.path, k.headers, resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("client sent %d MiB of bodies; the process allocated %.1f MiB", sent.Load()>>20, float64(allocated)/(1<<20))
	assert.Less(t, allocated, uint64(50<<20), "bytes allocated while 50 anonymous 12 MiB bodies were refused")
	runtime.GC()
	runtime.ReadMemStats(&after)
	assert.Less(t, int64(after.HeapInuse)-int64(before.HeapInuse), int64(50<<20), "heap growth left behind")
}

// TestSlowBodyCut: an authenticated body trickled at 20 bytes/s is cut once
// it falls behind the minimum rate (408, the spec's body), instead of holding
// its connection for as long as the client likes.
func TestSlowBodyCut(t *testing.T) {
	e := newEnvWith(t, testdb.Open(t, store.SQLite), envOptions{
		body: web.BodyOptions{MinRate: 1 << 10, Grace: 300 * time.Millisecond}})
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	head := fmt.Sprintf("POST /v3/migprojects HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"X-Auth-Token: %s\r\nContent-Length: 2000\r\n\r\n", addr, e.token)
	start := time.Now()
	// At 50 ms a byte the body would take 100 s; the answer must come long before.
	resp, body, written, err := rawRequest(t, addr, head, 2000, 50*time.Millisecond, 20*time.Second)
	require.NoError(t, err, "no answer while the body trickled")
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode, body)
	assert.Contains(t, body, `"error_code":"SMS.6010"`)
	assert.Less(t, written, int64(2000))
	assert.Less(t, time.Since(start), 15*time.Second)
}

// TestBodySlotsFull: with every body slot taken, another body waits
// SlotWait and is answered 503 with Retry-After and the spec's body.
func TestBodySlotsFull(t *testing.T) {
	e := newEnvWith(t, testdb.Open(t, store.SQLite), envOptions{
		body: web.BodyOptions{Slots: 1, SlotWait: 50 * time.Millisecond, MinRate: 1, Grace: time.Minute}})
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	// The holder sends one byte of ten and waits: it keeps the only slot.
	holder, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer holder.Close()
	_, err = fmt.Fprintf(holder, "POST /v3/migprojects HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"X-Auth-Token: %s\r\nContent-Length: 10\r\n\r\n{", addr, e.token)
	require.NoError(t, err)

	// The holder reaches the gate on its own time: ask until it has.
	deadline := time.Now().Add(10 * time.Second)
	var r response
	for time.Now().Before(deadline) {
		r = e.do("POST", "/v3/migprojects", `{}`, e.token)
		if r.status == http.StatusServiceUnavailable {
			break
		}
		require.Equal(t, http.StatusBadRequest, r.status, r.body)
	}
	require.Equal(t, http.StatusServiceUnavailable, r.status, r.body)
	code, _ := r.smsError(t)
	assert.Equal(t, string(web.ThrottledCode), code)
	assert.Equal(t, "1", r.header.Get("Retry-After"))

	// Once the holder is done, bodies are read again.
	_, err = io.WriteString(holder, "}        ")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(holder), nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	r = e.do("POST", "/v3/migprojects", `{}`, e.token)
	assert.Equal(t, http.StatusBadRequest, r.status, r.body)
}

// TestLoginThrottledHTTP: after the failures allowed for a user, POST
// /v3/auth/tokens answers 429 with Retry-After and the spec's error body,
// even for the right password; another user still signs in.
func TestLoginThrottledHTTP(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnvWith(t, s, envOptions{login: iam.LoginThrottle{UserFailures: 3, Window: time.Hour}})
		body := func(user, domain, pw string) string {
			return `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":` + q(user) +
				`,"password":` + q(pw) + `,"domain":{"name":` + q(domain) + `}}}}}}`
		}
		for range 3 {
			r := e.do("POST", "/v3/auth/tokens", body("admin", "smsflow", "wrong-guess"), "")
			require.Equal(t, http.StatusUnauthorized, r.status, r.body)
		}
		r := e.do("POST", "/v3/auth/tokens", body("admin", "smsflow", e.creds.Password), "")
		require.Equal(t, http.StatusTooManyRequests, r.status, r.body)
		code, _ := r.smsError(t)
		assert.Equal(t, "APIGW.0308", code)
		secs, err := strconv.Atoi(r.header.Get("Retry-After"))
		require.NoError(t, err, r.header.Get("Retry-After"))
		assert.InDelta(t, 3600, secs, 60)
		_, pw, err := e.iam.CreateUser(context.Background(), "smsflow", "ops", "")
		require.NoError(t, err)
		e.login("smsflow", "ops", pw)
	})
}

// holdBody opens a connection that sends the head and the first byte of a
// body of n bytes, then waits: its request holds a body slot until closed.
func holdBody(t *testing.T, addr, path, headers string, n int64) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n{",
		path, addr, headers, n)
	require.NoError(t, err)
	return conn
}

// waitGateFull asks until the route answers 503: every slot of its gate is
// held by now.
func waitGateFull(t *testing.T, e *env, path, body, token string, other int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r := e.do("POST", path, body, token)
		if r.status == http.StatusServiceUnavailable {
			return
		}
		require.Equal(t, other, r.status, r.body)
		// A pause between probes: back to back, the probes alone could
		// allocate what TestAnnouncedBodyNotPreallocated allows the held
		// bodies while slow holders reach the gate.
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s never answered 503", path)
}

// TestLoginBodiesOwnGate: anonymous token requests that trickle their
// bodies fill only the token route's gate; authenticated bodies are still
// read (they shared one gate, so a few sign-ins blocked every tenant).
func TestLoginBodiesOwnGate(t *testing.T) {
	e := newEnvWith(t, testdb.Open(t, store.SQLite), envOptions{body: web.BodyOptions{
		Slots: 2, SlotWait: 50 * time.Millisecond, MinRate: 1, Grace: time.Minute,
		LoginSlots: 2, LoginGrace: time.Minute}})
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	for range 6 {
		holdBody(t, addr, "/v3/auth/tokens", "", 100)
	}
	waitGateFull(t, e, "/v3/auth/tokens", `{}`, "", http.StatusBadRequest)
	for range 3 {
		r := e.do("POST", "/v3/migprojects", `{}`, e.token)
		assert.Equal(t, http.StatusBadRequest, r.status, "an authenticated body while sign-ins trickle: %s", r.body)
	}
}

// TestLoginTrickleCutFast: a token request trickled at 1 byte/s is cut
// after the token route's short grace (408), not the API's.
func TestLoginTrickleCutFast(t *testing.T) {
	e := newEnvWith(t, testdb.Open(t, store.SQLite), envOptions{body: web.BodyOptions{
		MinRate: 1 << 10, Grace: time.Minute, LoginGrace: 300 * time.Millisecond}})
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	head := fmt.Sprintf("POST /v3/auth/tokens HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n", addr)
	start := time.Now()
	resp, body, _, err := rawRequest(t, addr, head, 2000, 50*time.Millisecond, 20*time.Second)
	require.NoError(t, err, "no answer while the token body trickled")
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode, body)
	assert.Less(t, time.Since(start), 5*time.Second)
}

// TestAnnouncedBodyNotPreallocated: bodies that announce 12 MiB and send a
// byte cost the server what arrived, not what was announced (the buffer
// grows as bytes come; it was allocated whole from Content-Length).
func TestAnnouncedBodyNotPreallocated(t *testing.T) {
	const slots = 4
	e := newEnvWith(t, testdb.Open(t, store.SQLite), envOptions{body: web.BodyOptions{
		Slots: slots, SlotWait: 50 * time.Millisecond, MinRate: 1, Grace: time.Minute}})
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range slots {
		holdBody(t, addr, "/v3/migprojects", "X-Auth-Token: "+e.token+"\r\n", web.MaxBodyBytes)
	}
	waitGateFull(t, e, "/v3/migprojects", `{}`, e.token, http.StatusBadRequest)
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d held 12 MiB bodies: %.1f MiB allocated", slots, float64(allocated)/(1<<20))
	assert.Less(t, allocated, uint64(16<<20), "bytes allocated for bodies that sent one byte")
}
