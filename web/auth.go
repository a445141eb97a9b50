package web

import (
	"context"
	"crypto/sha256"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/sms/smserr"
)

// Authenticator is what the middleware needs from iam. A signed request is
// checked in two halves, so that its body is read only once its headers
// name an active key and a fresh date.
type Authenticator interface {
	AuthenticateToken(ctx context.Context, tok string) (iam.Principal, error)
	PrecheckSigned(ctx context.Context, r *http.Request) (*iam.SignedCaller, error)
	FinishSigned(ctx context.Context, r *http.Request, sc *iam.SignedCaller, bodySum [sha256.Size]byte) (iam.Principal, error)
}

// authenticate accepts an SDK-HMAC-SHA256 signature or an X-Auth-Token;
// anything else is a 401 with an SMS body. Nothing of the body is read
// before the headers have authenticated what they can: a token request's
// body is left to the handler, and a signed request's body is read (through
// the body gate, hashed as it arrives) only after its AK and X-Sdk-Date
// passed.
func authenticate(a Authenticator) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		var p iam.Principal
		var err error
		authz := c.GetHeader("Authorization")
		tok := c.GetHeader("X-Auth-Token")
		switch {
		case strings.HasPrefix(authz, "SDK-HMAC-SHA256"):
			p, err = authenticateSigned(c, a)
		case tok != "":
			p, err = a.AuthenticateToken(ctx, tok)
		default:
			fail(c, unauthorized(smserr.New(smserr.SMS6522).
				WithDetail("send X-Auth-Token, or sign the request with AK/SK (SDK-HMAC-SHA256)")))
			return
		}
		if err != nil {
			fail(c, authError(err))
			return
		}
		c.Set(ctxPrincipal, p)
		c.Next()
	}
}

// authenticateSigned checks the headers, then reads the body into the
// signature's hash (and keeps it for the handler unless the method has no
// use for one), then checks the signature.
func authenticateSigned(c *gin.Context, a Authenticator) (iam.Principal, error) {
	ctx := c.Request.Context()
	sc, err := a.PrecheckSigned(ctx, c.Request)
	if err != nil {
		return iam.Principal{}, err
	}
	h := newBodyHash()
	m := c.Request.Method
	keep := m != http.MethodGet && m != http.MethodHead
	body, err := readBodyInto(c, h, keep)
	if err != nil {
		return iam.Principal{}, err
	}
	keepBody(c, body)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return a.FinishSigned(ctx, c.Request, sc, sum)
}

func unauthorized(e *smserr.Error) *smserr.Error { return e.WithStatus(http.StatusUnauthorized) }

// authError maps iam's failures to the SMS codes an SDK user recognises.
func authError(err error) error {
	var te *iam.ThrottledError
	switch {
	case errors.As(err, &te):
		return throttled(http.StatusTooManyRequests, te.RetryAfter,
			"too many failed sign-ins for this user or from this address; retry later")
	case errors.Is(err, iam.ErrBusy):
		return throttled(http.StatusServiceUnavailable, time.Second, "too many sign-ins at once; retry shortly")
	case errors.Is(err, iam.ErrClockSkew):
		return unauthorized(smserr.New(smserr.SMS0205).WithDetail("X-Sdk-Date is too far from the server clock"))
	case errors.Is(err, iam.ErrBadSignature), errors.Is(err, iam.ErrMalformed):
		return unauthorized(smserr.New(smserr.SMS0202).Wrap(err))
	case errors.Is(err, iam.ErrBadToken):
		return unauthorized(smserr.New(smserr.SMS6521).WithDetail("the token is unknown, revoked or expired"))
	case errors.Is(err, iam.ErrBadCredentials):
		return unauthorized(smserr.New(smserr.SMS6521).WithDetail("wrong domain, user name or password"))
	case errors.Is(err, iam.ErrAgentPassword):
		msg := "You do not have permission to perform action POST /v3/auth/tokens."
		return smserr.New(smserr.SMS9004, msg).WithStatus(http.StatusForbidden).
			WithDetail(msg + " An agent user signs its requests with its AK/SK.")
	case errors.Is(err, iam.ErrNoProject):
		return smserr.New(smserr.SMS9003).WithStatus(http.StatusForbidden).
			WithDetail("the project is not one of the caller's domain")
	}
	return err
}

// ThrottledCode answers a caller refused for going too fast: 429 for failed
// sign-ins, 503 when the server is saturated, both with Retry-After. The
// spec's catalog has no such code; this is the one the hosted service's API
// gateway answers throttled calls with, so SDK users recognise it.
const ThrottledCode smserr.Code = "APIGW.0308"

// retryError is an API error answered with a Retry-After header.
type retryError struct {
	e     *smserr.Error
	after time.Duration
}

func (r *retryError) Error() string { return r.e.Error() }
func (r *retryError) Unwrap() error { return r.e }

// throttled is ThrottledCode with the given status, detail and Retry-After.
func throttled(status int, after time.Duration, detail string) error {
	e := &smserr.Error{Code: ThrottledCode, Status: status, Message: "The throttling threshold has been reached."}
	return &retryError{e: e.WithDetail(detail), after: after}
}

// retryAfterSeconds is a Retry-After value: whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}
