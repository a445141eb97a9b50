package web

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/ptr"
)

// TokenIssuer issues password tokens.
type TokenIssuer interface {
	IssueToken(ctx context.Context, a iam.PasswordAuth) (*iam.IssuedToken, error)
}

// idName is an {id, name} pair of the IAM token request (§3.2, Keystone v3 shape).
type idName struct {
	ID   *string `json:"id"`
	Name *string `json:"name"`
}

type tokenRequest struct {
	Auth *struct {
		Identity *struct {
			Methods  *[]string `json:"methods"`
			Password *struct {
				User *struct {
					ID       *string `json:"id"`
					Name     *string `json:"name"`
					Password *string `json:"password"`
					Domain   *idName `json:"domain"`
				} `json:"user"`
			} `json:"password"`
		} `json:"identity"`
		Scope *struct {
			Domain  *idName `json:"domain"`
			Project *struct {
				ID     *string `json:"id"`
				Name   *string `json:"name"`
				Domain *idName `json:"domain"`
			} `json:"project"`
		} `json:"scope"`
	} `json:"auth"`
}

type tokenHandlers struct{ iam TokenIssuer }

// issue: POST /v3/auth/tokens → 201, X-Subject-Token header, token body.
func (h tokenHandlers) issue(c *gin.Context) {
	var req tokenRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	var v checks
	a := req.Auth
	if !v.required("auth.identity.password.user", a != nil && a.Identity != nil && a.Identity.Password != nil && a.Identity.Password.User != nil) {
		fail(c, v.err())
		return
	}
	if m := a.Identity.Methods; m != nil {
		hasPassword := false
		for _, x := range *m {
			hasPassword = hasPassword || x == "password"
		}
		if !hasPassword {
			v.invalid("auth.identity.methods", `only the "password" method is supported`)
		}
	}
	u := a.Identity.Password.User
	v.str("auth.identity.password.user.name", u.Name, required, 1, 64)
	v.str("auth.identity.password.user.password", u.Password, required, 1, 128)
	if !v.required("auth.identity.password.user.domain", u.Domain != nil && (u.Domain.ID != nil || u.Domain.Name != nil)) {
		fail(c, v.err())
		return
	}
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	pa := iam.PasswordAuth{
		DomainID: ptr.Deref(u.Domain.ID), DomainName: ptr.Deref(u.Domain.Name),
		UserName: ptr.Deref(u.Name), Password: ptr.Deref(u.Password),
		// The peer's own address, not X-Forwarded-For: a header the
		// guesser writes would let it pick a fresh address per guess.
		ClientAddr: c.RemoteIP(),
	}
	if s := a.Scope; s != nil {
		if s.Domain != nil {
			pa.ScopeDomainID, pa.ScopeDomainName = ptr.Deref(s.Domain.ID), ptr.Deref(s.Domain.Name)
		}
		if s.Project != nil {
			pa.ScopeProjectID, pa.ScopeProjectName = ptr.Deref(s.Project.ID), ptr.Deref(s.Project.Name)
		}
	}
	tok, err := h.iam.IssueToken(c.Request.Context(), pa)
	if err != nil {
		fail(c, authError(err))
		return
	}
	p := tok.Principal
	dom := gin.H{"id": p.DomainID, "name": p.DomainName}
	c.Header("X-Subject-Token", tok.Token)
	c.JSON(http.StatusCreated, gin.H{"token": gin.H{
		"methods":    []string{"password"},
		"issued_at":  tok.IssuedAt.Format(time.RFC3339Nano),
		"expires_at": tok.ExpiresAt.Format(time.RFC3339Nano),
		"user":       gin.H{"id": p.UserID, "name": p.UserName, "domain": dom},
		"domain":     dom,
		"project":    gin.H{"id": p.ProjectID, "name": p.ProjectName, "domain": dom},
		"catalog":    []any{},
	}})
}
