package iam_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
	"github.com/smsflow/smsflow/internal/testkit/testutil"
)

// newThrottledService is a bootstrapped service with a user "ops"; it
// returns the user's password and the domain's id.
func newThrottledService(t *testing.T, logs *testutil.Buffer, now func() time.Time, lt iam.LoginThrottle) (*iam.Service, string, string) {
	t.Helper()
	box, err := secret.NewBox(bytes.Repeat([]byte{3}, secret.KeySize))
	require.NoError(t, err)
	svc := iam.New(testdb.Open(t, store.SQLite), box, iam.Options{Now: now, Login: lt,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	path, err := svc.Bootstrap(ctx, t.TempDir(), nil)
	require.NoError(t, err)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var creds iam.Credentials
	require.NoError(t, json.Unmarshal(raw, &creds))
	_, pw, err := svc.CreateUser(ctx, "smsflow", "ops", "")
	require.NoError(t, err)
	return svc, pw, creds.DomainID
}

// TestLoginThrottle: past the failures allowed per user, and per address,
// sign-ins are refused (even with the right password) until the window ends;
// a success clears its user's count, not its address's; each failure is
// logged with domain, user and address, never the password.
func TestLoginThrottle(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	logs := &testutil.Buffer{}
	svc, pw, domainID := newThrottledService(t, logs, clock,
		iam.LoginThrottle{UserFailures: 3, AddrFailures: 5, Window: time.Minute})
	login := func(user, password, addr string) error {
		_, err := svc.IssueToken(ctx, iam.PasswordAuth{DomainName: "smsflow", UserName: user, Password: password, ClientAddr: addr})
		return err
	}

	// Two failures, a success (clears the user's count), three failures.
	for range 2 {
		assert.ErrorIs(t, login("ops", "guess-1", "10.0.0.1"), iam.ErrBadCredentials)
	}
	require.NoError(t, login("ops", pw, "10.0.0.9"))
	for range 3 {
		assert.ErrorIs(t, login("ops", "guess-2", "10.0.0.2"), iam.ErrBadCredentials)
	}
	// The user is now refused, from any address and with its real password.
	var te *iam.ThrottledError
	require.ErrorAs(t, login("ops", pw, "10.0.0.3"), &te)
	assert.Equal(t, time.Minute, te.RetryAfter)
	advance(20 * time.Second)
	require.ErrorAs(t, login("ops", pw, "10.0.0.3"), &te)
	assert.Equal(t, 40*time.Second, te.RetryAfter)
	// The domain named by id counts against the same user.
	_, err := svc.IssueToken(ctx, iam.PasswordAuth{DomainID: domainID, UserName: "ops", Password: pw})
	require.ErrorAs(t, err, &te)
	advance(40 * time.Second)
	require.NoError(t, login("ops", pw, "10.0.0.3"), "the window is over")

	// Per address: five failures over made-up users, then even a real user
	// from that address is refused; from another address it signs in.
	for i := range 5 {
		assert.ErrorIs(t, login("nobody-"+string(rune('a'+i)), "x", "10.0.0.4"), iam.ErrBadCredentials)
	}
	require.ErrorAs(t, login("ops", pw, "10.0.0.4"), &te)
	require.NoError(t, login("ops", pw, "10.0.0.5"))
	require.ErrorAs(t, login("ops", pw, "10.0.0.4"), &te, "a success does not clear its address")

	out := logs.String()
	assert.Contains(t, out, `msg="sign-in failed" domain=smsflow user=ops client=10.0.0.2 reason="wrong password"`)
	assert.Contains(t, out, `msg="sign-in failed" domain=smsflow user=nobody-a client=10.0.0.4 reason="unknown user"`)
	assert.Contains(t, out, `msg="sign-in throttled" domain=smsflow user=ops client=10.0.0.3`)
	for _, secretText := range []string{"guess-1", "guess-2", pw} {
		assert.NotContains(t, out, secretText)
	}
}

// TestPasswordChecksCapped: however many sign-ins arrive at once, at most
// MaxChecks password hashes run; the rest queue, and a sign-in that waits
// longer than CheckWait gets ErrBusy.
func TestPasswordChecksCapped(t *testing.T) {
	svc, pw, _ := newThrottledService(t, &testutil.Buffer{}, nil,
		iam.LoginThrottle{MaxChecks: 2, CheckWait: time.Minute, UserFailures: 100, AddrFailures: 100})
	var inside, most atomic.Int32
	release := make(chan struct{})
	svc.SetCheckPassword(func(hash, password string) bool {
		n := inside.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		inside.Add(-1)
		return secret.CheckPassword(hash, password)
	})
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = svc.IssueToken(ctx, iam.PasswordAuth{DomainName: "smsflow", UserName: "ops", Password: pw})
		})
	}
	// Wait until every sign-in is either hashing or queued.
	require.Eventually(t, func() bool { return inside.Load() == 2 && svc.SignInsWaiting() == n-2 },
		10*time.Second, time.Millisecond)
	assert.Equal(t, int32(2), most.Load())
	close(release)
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}
	assert.Equal(t, int32(2), most.Load())

	// With the checks held, a sign-in gives up after CheckWait.
	busy, pw2, _ := newThrottledService(t, &testutil.Buffer{}, nil, iam.LoginThrottle{MaxChecks: 1, CheckWait: 20 * time.Millisecond})
	hold := make(chan struct{})
	entered := make(chan struct{})
	var once sync.Once
	busy.SetCheckPassword(func(hash, password string) bool {
		once.Do(func() { close(entered) })
		<-hold
		return secret.CheckPassword(hash, password)
	})
	done := make(chan error)
	go func() {
		_, err := busy.IssueToken(ctx, iam.PasswordAuth{DomainName: "smsflow", UserName: "ops", Password: pw2})
		done <- err
	}()
	<-entered
	_, err := busy.IssueToken(ctx, iam.PasswordAuth{DomainName: "smsflow", UserName: "ops", Password: pw2})
	assert.ErrorIs(t, err, iam.ErrBusy)
	close(hold)
	assert.NoError(t, <-done)
	assert.False(t, strings.Contains(err.Error(), pw2))
}

// TestParallelGuessesThrottled: guesses for one user sent all at once get
// no more password checks than the failures allowed; the rest are refused
// before any hash (the count was made after the hash, so every parallel
// guess passed the check).
func TestParallelGuessesThrottled(t *testing.T) {
	const limit, n = 3, 20
	svc, pw, _ := newThrottledService(t, &testutil.Buffer{}, nil,
		iam.LoginThrottle{UserFailures: limit, AddrFailures: 1000, MaxChecks: n, CheckWait: time.Minute})
	entered := make(chan struct{}, n)
	release := make(chan struct{})
	svc.SetCheckPassword(func(hash, password string) bool {
		entered <- struct{}{}
		<-release
		return secret.CheckPassword(hash, password)
	})
	results := make(chan error, n)
	for i := range n {
		go func() {
			_, err := svc.IssueToken(ctx, iam.PasswordAuth{DomainName: "smsflow", UserName: "ops",
				Password: "guess-" + string(rune('a'+i)), ClientAddr: "10.0.0.1"})
			results <- err
		}()
	}
	// Every guess is either in its password check or answered.
	checked, answered := 0, 0
	for checked+answered < n {
		select {
		case <-entered:
			checked++
		case err := <-results:
			var te *iam.ThrottledError
			assert.ErrorAs(t, err, &te)
			answered++
		}
	}
	close(release)
	for range n - answered {
		assert.ErrorIs(t, <-results, iam.ErrBadCredentials)
	}
	assert.LessOrEqual(t, checked, limit, "password checks for %d parallel guesses", n)
	var te *iam.ThrottledError
	_, err := svc.IssueToken(ctx, iam.PasswordAuth{DomainName: "smsflow", UserName: "ops", Password: pw})
	assert.ErrorAs(t, err, &te, "the user is refused after the guesses")
}
