package web

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/sms/smserr"
)

// MaxBodyBytes bounds a request body: AK/SK-signed calls are limited to 12 MB
// by the hosted service (§3.2); we apply it to every call.
const MaxBodyBytes = 12 << 20

// Authenticator is what the middleware needs from iam.
type Authenticator interface {
	AuthenticateToken(ctx context.Context, tok string) (iam.Principal, error)
	AuthenticateSigned(ctx context.Context, r *http.Request, body []byte) (iam.Principal, error)
}

// readBody reads the whole (bounded) body once: the signature covers it and
// the handler decodes it. The request's Body is replaced by a fresh reader.
func readBody(c *gin.Context) ([]byte, error) {
	if v, ok := c.Get(ctxBody); ok {
		return v.([]byte), nil
	}
	var body []byte
	if c.Request.Body != nil && c.Request.Body != http.NoBody {
		b, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, smserr.New(smserr.SMS6014).WithStatus(http.StatusRequestEntityTooLarge).
					WithDetail("request body larger than 12 MiB")
			}
			return nil, smserr.New(smserr.SMS6010).WithDetail("cannot read the request body").Wrap(err)
		}
		body = b
	}
	c.Set(ctxBody, body)
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

// authenticate accepts an SDK-HMAC-SHA256 signature or an X-Auth-Token;
// anything else is a 401 with an SMS body.
func authenticate(a Authenticator) gin.HandlerFunc {
	return func(c *gin.Context) {
		body, err := readBody(c)
		if err != nil {
			fail(c, err)
			return
		}
		ctx := c.Request.Context()
		var p iam.Principal
		authz := c.GetHeader("Authorization")
		tok := c.GetHeader("X-Auth-Token")
		switch {
		case strings.HasPrefix(authz, "SDK-HMAC-SHA256"):
			p, err = a.AuthenticateSigned(ctx, c.Request, body)
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

func unauthorized(e *smserr.Error) *smserr.Error { return e.WithStatus(http.StatusUnauthorized) }

// authError maps iam's failures to the SMS codes an SDK user recognises.
func authError(err error) error {
	switch {
	case errors.Is(err, iam.ErrClockSkew):
		return unauthorized(smserr.New(smserr.SMS0205).WithDetail("X-Sdk-Date is too far from the server clock"))
	case errors.Is(err, iam.ErrBadSignature), errors.Is(err, iam.ErrMalformed):
		return unauthorized(smserr.New(smserr.SMS0202).Wrap(err))
	case errors.Is(err, iam.ErrBadToken):
		return unauthorized(smserr.New(smserr.SMS6521).WithDetail("the token is unknown, revoked or expired"))
	case errors.Is(err, iam.ErrBadCredentials):
		return unauthorized(smserr.New(smserr.SMS6521).WithDetail("wrong domain, user name or password"))
	case errors.Is(err, iam.ErrNoProject):
		return smserr.New(smserr.SMS9003).WithStatus(http.StatusForbidden).
			WithDetail("the project is not one of the caller's domain")
	}
	return err
}
