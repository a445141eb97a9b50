package console

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/identity/secret"
)

// sessionCookie holds the sealed session.
const sessionCookie = "smsflow_console"

// csrfHeader carries the CSRF token on htmx requests (forms send the
// csrf field).
const csrfHeader = "X-CSRF-Token"

// sessionData is the cookie's content, sealed with the server's secret box
// (AES-GCM: the seal authenticates it, so the last-activity stamp cannot be
// forged or replayed onto another token). It holds the IAM token, not a
// server-side id, so every `smsflow web` replica accepts it.
type sessionData struct {
	// Token is the IAM token from the sign-in.
	Token string `json:"t"`
	// Active is the last request's time, Unix seconds: idle expiry.
	Active int64 `json:"a"`
	// CSRF is the session's CSRF token, sent back in forms and headers.
	CSRF string `json:"c"`
}

// ctxSession keys the request's session in the gin context.
const ctxSession = "console.session"

// session is what a signed-in page knows.
type session struct {
	data      sessionData
	principal iam.Principal
}

var errNoSession = errors.New("console: no session")

func (k *Console) readSession(c *gin.Context) (sessionData, error) {
	ck, err := c.Request.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return sessionData{}, errNoSession
	}
	plain, err := k.d.Box.Open(ck.Value)
	if err != nil {
		return sessionData{}, errNoSession
	}
	var s sessionData
	if json.Unmarshal([]byte(plain), &s) != nil || s.Token == "" || s.CSRF == "" {
		return sessionData{}, errNoSession
	}
	return s, nil
}

func (k *Console) writeSession(c *gin.Context, s sessionData) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	sealed, err := k.d.Box.Seal(string(b))
	if err != nil {
		return err
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Value: sealed, Path: "/",
		HttpOnly: true, Secure: c.Request.TLS != nil, SameSite: http.SameSiteLaxMode})
	return nil
}

func clearSession(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: c.Request.TLS != nil, SameSite: http.SameSiteLaxMode})
}

// SessionCookie is the console's cookie name: the Temporal UI proxy strips
// it before the UI sees the request.
const SessionCookie = sessionCookie

// Principal is the caller of a live console session on c (not idle, its
// token still valid), for the Temporal UI proxy's check. The cookie's path
// is / so that it reaches the proxy; nothing else reads it.
func (k *Console) Principal(c *gin.Context) (iam.Principal, bool) {
	s, err := k.readSession(c)
	if err != nil || k.d.Now().Unix()-s.Active > int64(k.d.IdleTimeout.Seconds()) {
		return iam.Principal{}, false
	}
	p, err := k.d.Auth.AuthenticateToken(c.Request.Context(), s.Token)
	return p, err == nil && p.Role != iam.RoleAgent
}

// session is the middleware of every signed-in route: a missing, idle or
// revoked session goes to the sign-in page with the page to come back to;
// a state-changing request without the session's CSRF token is refused.
func (k *Console) session(c *gin.Context) {
	s, err := k.readSession(c)
	now := k.d.Now().Unix()
	if err == nil && now-s.Active > int64(k.d.IdleTimeout.Seconds()) {
		err = errNoSession
	}
	var p iam.Principal
	if err == nil {
		p, err = k.d.Auth.AuthenticateToken(c.Request.Context(), s.Token)
	}
	if err != nil {
		clearSession(c)
		// Back to the page the operator was on: the request's own for a
		// page, the page that sent it for a form (Referer) or a polled
		// fragment (htmx's HX-Current-URL), never the fragment itself.
		next := c.Request.URL.RequestURI()
		from := ""
		switch {
		case c.GetHeader("HX-Request") == "true":
			from = c.GetHeader("HX-Current-URL")
		case c.Request.Method != http.MethodGet:
			from = c.GetHeader("Referer")
		}
		if from != "" || c.Request.Method != http.MethodGet {
			next = ""
			if u, perr := url.Parse(from); perr == nil {
				next = u.RequestURI()
			}
		}
		to := Prefix + "/login?next=" + url.QueryEscape(safeNext(next))
		if c.GetHeader("HX-Request") == "true" {
			c.Header("HX-Redirect", to)
			c.AbortWithStatus(http.StatusUnauthorized)
			return
		}
		c.Redirect(http.StatusSeeOther, to)
		c.Abort()
		return
	}
	if c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead {
		got := c.GetHeader(csrfHeader)
		if got == "" {
			got = c.PostForm("csrf")
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRF)) != 1 {
			k.errorPage(c, http.StatusForbidden, "Request refused",
				"The form's security token is missing or stale (CSRF). Reload the page and try again.")
			c.Abort()
			return
		}
	}
	// A polled fragment (htmx's GET) is not the operator's activity: a
	// task page left open must not keep its session alive forever.
	if c.Request.Method != http.MethodGet || c.GetHeader("HX-Request") != "true" {
		s.Active = now
		if err := k.writeSession(c, s); err != nil {
			k.fail(c, err)
			c.Abort()
			return
		}
	}
	if !k.roleAllows(c, p.Role) {
		c.Abort()
		return
	}
	c.Set(ctxSession, &session{data: s, principal: p})
	c.Next()
}

// roleAllows applies the API's roles to the console: a viewer sees every
// page but its forms and buttons are refused (403 page), signing out
// aside. An agent cannot sign in (iam.ErrAgentPassword); a session of a
// user made an agent since is ended.
func (k *Console) roleAllows(c *gin.Context, r iam.Role) bool {
	switch r {
	case iam.RoleAdmin, iam.RoleOperator:
		return true
	case iam.RoleViewer:
		m := c.Request.Method
		if m == http.MethodGet || m == http.MethodHead || c.FullPath() == Prefix+"/logout" {
			return true
		}
		k.errorPage(c, http.StatusForbidden, "Not allowed",
			"Your role is viewer: you may look at everything here, but not change it. (SMS.9004)")
		return false
	}
	clearSession(c)
	k.errorPage(c, http.StatusForbidden, "Not allowed", "This user may not use the console. (SMS.9004)")
	return false
}

func mustSession(c *gin.Context) *session {
	v, _ := c.Get(ctxSession)
	return v.(*session)
}

// safeNext keeps a return address on the console: anything else (another
// host, a scheme, "//evil") returns to the dashboard.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix+"/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") ||
		strings.HasPrefix(next, Prefix+"/login") {
		return Prefix + "/"
	}
	return next
}

// loginCookie holds the sign-in form's CSRF token (login CSRF: another
// site must not sign a browser in to the attacker's account). The form
// carries the same value; a cross-site POST can send the cookie but cannot
// read it to fill the field.
const loginCookie = "smsflow_login"

// loginForm renders the sign-in page with a fresh form token.
func (k *Console) loginForm(c *gin.Context, status int, data gin.H) {
	tok := secret.RandomString(32, secret.AlphaNumeric)
	http.SetCookie(c.Writer, &http.Cookie{Name: loginCookie, Value: tok, Path: Prefix + "/login",
		HttpOnly: true, Secure: c.Request.TLS != nil, SameSite: http.SameSiteStrictMode})
	data["CSRF"] = tok
	k.render(c, status, "login", nil, data)
}

func (k *Console) loginPage(c *gin.Context) {
	k.loginForm(c, http.StatusOK, gin.H{"Next": safeNext(c.Query("next")), "Domain": c.Query("domain")})
}

// loginTokenOK tells whether the sign-in form's token matches its cookie.
func loginTokenOK(c *gin.Context) bool {
	ck, err := c.Request.Cookie(loginCookie)
	got := c.PostForm("csrf")
	return err == nil && ck.Value != "" && got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(ck.Value)) == 1
}

// login signs in through the IAM (and its throttle) and starts a session.
func (k *Console) login(c *gin.Context) {
	dom, user, pw := strings.TrimSpace(c.PostForm("domain")), strings.TrimSpace(c.PostForm("user")), c.PostForm("password")
	next := safeNext(c.PostForm("next"))
	if !loginTokenOK(c) {
		// Checked before the password: a forged sign-in never reaches
		// the IAM (nor its failure throttle).
		k.loginForm(c, http.StatusForbidden, gin.H{"Next": next, "Domain": dom, "User": user,
			"Error": "The sign-in form expired or did not come from this console (CSRF). Sign in again."})
		return
	}
	it, err := k.d.Auth.IssueToken(c.Request.Context(), iam.PasswordAuth{DomainName: dom, UserName: user,
		Password: pw, ClientAddr: c.RemoteIP()})
	if err != nil {
		status, msg := http.StatusUnauthorized, "Wrong domain, user name or password."
		var te *iam.ThrottledError
		switch {
		case errors.As(err, &te):
			status, msg = http.StatusTooManyRequests, "Too many failed sign-ins for this user or from this address; retry later."
		case errors.Is(err, iam.ErrBusy):
			status, msg = http.StatusServiceUnavailable, "Too many sign-ins at once; retry shortly."
		case !errors.Is(err, iam.ErrBadCredentials):
			k.d.Logger.WarnContext(c.Request.Context(), "console sign-in failed", "domain", dom, "user", user, "err", err)
		}
		k.loginForm(c, status, gin.H{"Next": next, "Domain": dom, "User": user, "Error": msg})
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: loginCookie, Value: "", Path: Prefix + "/login", MaxAge: -1,
		HttpOnly: true, Secure: c.Request.TLS != nil, SameSite: http.SameSiteStrictMode})
	s := sessionData{Token: it.Token, Active: k.d.Now().Unix(), CSRF: secret.RandomString(32, secret.AlphaNumeric)}
	if err := k.writeSession(c, s); err != nil {
		k.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, next)
}

func (k *Console) logout(c *gin.Context) {
	clearSession(c)
	c.Redirect(http.StatusSeeOther, Prefix+"/login")
}

// onceForms remembers the form ids already used, so a form submitted
// twice (a double click, a resent POST) creates one object: the second
// submission is sent where the first went. Bounded; the oldest are
// forgotten first.
type onceForms struct {
	mu    sync.Mutex
	max   int
	order []string
	seen  map[string]string
}

func newOnceForms(limit int) *onceForms {
	return &onceForms{max: limit, seen: map[string]string{}}
}

// claim returns ("", true) for a form id's first use; later it returns
// the result recorded by done (or "" while the first is running) and false.
func (o *onceForms) claim(key string) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if r, ok := o.seen[key]; ok {
		return r, false
	}
	if len(o.order) >= o.max {
		delete(o.seen, o.order[0])
		o.order = o.order[1:]
	}
	o.seen[key] = ""
	o.order = append(o.order, key)
	return "", true
}

// done records the result of a form id; release forgets it (the
// submission failed validation and may be sent again).
func (o *onceForms) done(key, result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.seen[key]; ok {
		o.seen[key] = result
	}
}

func (o *onceForms) release(key string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.seen, key)
}
