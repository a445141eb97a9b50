package web

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/web/console"
)

// The Temporal Web UI shows, and can cancel, every domain's runs, and has no
// sign-in of its own. With --temporal-ui-proxy it is served at /temporal/ on
// the API's listener to smsflow's administrator only; its own listener then
// stays on loopback.

// TemporalUIPath is where the proxied UI lives on the API listener; the UI
// server must be configured with it as its public path.
const TemporalUIPath = "/temporal"

// uiCookie carries an X-Auth-Token for the browser: set after a Basic
// sign-in, scoped to the UI's path.
const uiCookie = "smsflow_ui_token"

// MountTemporalUI serves the Temporal Web UI listening at backend (an
// http:// URL, the UI configured with TemporalUIPath as its public path)
// under TemporalUIPath, to administrators only (see uiAdmin).
func (s *Server) MountTemporalUI(backend *url.URL) {
	proxy := httputil.NewSingleHostReverseProxy(backend)
	proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		s.deps.Logger.WarnContext(r.Context(), "temporal UI unreachable", "err", err)
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte(`{"error_code":"SMS.9999","error_msg":"Internal error.","details":[{"error_code":"SMS.9999","error_msg":"the Temporal UI does not answer"}]}`))
	}
	h := func(c *gin.Context) {
		if _, err := s.uiAdmin(c); err != nil {
			if e, ok := smserr.As(err); ok && e.Status == http.StatusUnauthorized {
				c.Header("WWW-Authenticate", `Basic realm="smsflow Temporal UI (domain/user)", charset="UTF-8"`)
			}
			fail(c, err)
			return
		}
		// The UI must not see smsflow's credentials.
		r := c.Request
		r.Header.Del("Authorization")
		r.Header.Del("X-Auth-Token")
		stripCookie(r, uiCookie)
		stripCookie(r, console.SessionCookie)
		proxy.ServeHTTP(c.Writer, r)
	}
	s.console.SetTemporalUI(TemporalUIPath)
	s.engine.Any(TemporalUIPath, h)
	s.engine.Any(TemporalUIPath+"/*path", h)
}

// uiAdmin is the one check in front of the Temporal UI: the caller must be
// an administrator (role admin, as the bootstrap user iam.BootstrapUser is)
// of the bootstrap domain (iam.BootstrapDomain), whose tenant is the
// operator's. It accepts
// an X-Auth-Token header, the token cookie, or Basic credentials
// "domain/user" (or just "user", in the bootstrap domain) and password,
// which sign in like POST /v3/auth/tokens (throttled alike) and set the
// cookie. A live console session (console.Console.Principal) counts too.
func (s *Server) uiAdmin(c *gin.Context) (iam.Principal, error) {
	ctx := c.Request.Context()
	var p iam.Principal
	var err error
	if cp, live := s.console.Principal(c); live && isAdmin(cp) {
		c.Set(ctxPrincipal, cp)
		return cp, nil
	}
	tok := c.GetHeader("X-Auth-Token")
	if tok == "" {
		if ck, cerr := c.Request.Cookie(uiCookie); cerr == nil {
			tok = ck.Value
		}
	}
	user, password, basic := c.Request.BasicAuth()
	if tok != "" {
		p, err = s.deps.IAM.AuthenticateToken(ctx, tok)
	}
	switch {
	case tok != "" && (err == nil || !basic):
		// A browser keeps sending its Basic credentials: they are used
		// only when the cookie's token is gone (expired, revoked).
	case basic:
		dom, name, found := strings.Cut(user, "/")
		if !found {
			dom, name = iam.BootstrapDomain, user
		}
		var it *iam.IssuedToken
		it, err = s.deps.IAM.IssueToken(ctx, iam.PasswordAuth{DomainName: dom, UserName: name, Password: password,
			ClientAddr: c.RemoteIP()})
		if err == nil {
			p = it.Principal
			http.SetCookie(c.Writer, &http.Cookie{Name: uiCookie, Value: it.Token, Path: TemporalUIPath,
				Expires: it.ExpiresAt, HttpOnly: true, Secure: c.Request.TLS != nil, SameSite: http.SameSiteStrictMode})
		}
	default:
		return iam.Principal{}, unauthorized(smserr.New(smserr.SMS6522).
			WithDetail("the Temporal UI needs the administrator: sign in with domain/user and password"))
	}
	if err != nil {
		return iam.Principal{}, authError(err)
	}
	if !isAdmin(p) {
		logFor(c).WarnContext(ctx, "temporal UI refused", "domain", p.DomainName, "user", p.UserName)
		return iam.Principal{}, smserr.New(smserr.SMS9003).WithStatus(http.StatusForbidden).
			WithDetail("the Temporal UI shows every domain's runs: only the administrator may open it")
	}
	c.Set(ctxPrincipal, p)
	return p, nil
}

// isAdmin tells whether p is an administrator of the bootstrap domain
// (see uiAdmin): the operator's tenant, role admin.
func isAdmin(p iam.Principal) bool {
	return p.DomainName == iam.BootstrapDomain && p.Role == iam.RoleAdmin
}

// stripCookie removes one cookie from the request's Cookie headers.
func stripCookie(r *http.Request, name string) {
	cs := r.Cookies()
	r.Header.Del("Cookie")
	for _, ck := range cs {
		if ck.Name != name {
			r.AddCookie(ck)
		}
	}
}
