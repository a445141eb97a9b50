package web

import (
	"context"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
)

// AgentStore is what the agent-facing extras need (SDK operations beyond the
// spec: privacy agreements, configuration).
type AgentStore interface {
	SignPrivacyAgreement(ctx context.Context, t store.Tenant, userID string, at time.Time) error
	PrivacyAgreementSigned(ctx context.Context, t store.Tenant) (bool, error)
	Projects(ctx context.Context, domainID string) ([]store.Project, error)
}

type agentHandlers struct {
	store        AgentStore
	now          func() time.Time
	agentTimeout time.Duration
	version      string
}

// signPrivacy: POST /v3/privacy-agreements (SDK CreatePrivacyAgreements).
// The body carries nothing the server needs; it is read only for its shape.
func (h agentHandlers) signPrivacy(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	if len(body) > 0 {
		var shape map[string]any
		if err := decodeJSON(body, &shape); err != nil {
			fail(c, err)
			return
		}
	}
	p := mustPrincipal(c)
	if err := h.store.SignPrivacyAgreement(c.Request.Context(), p.Tenant(), p.UserID, h.now()); err != nil {
		fail(c, err)
		return
	}
	okEmpty(c)
}

// showPrivacy: GET /v3/privacy-agreements → {"flag"}.
func (h agentHandlers) showPrivacy(c *gin.Context) {
	signed, err := h.store.PrivacyAgreementSigned(c.Request.Context(), mustPrincipal(c).Tenant())
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, gin.H{"flag": signed})
}

// config: GET /v3/config — what an agent needs to know of this server. The
// SDK declares every value a string. Regions are the domain's projects.
func (h agentHandlers) config(c *gin.Context) {
	p := mustPrincipal(c)
	projects, err := h.store.Projects(c.Request.Context(), p.DomainID)
	if err != nil {
		fail(c, err)
		return
	}
	regions := make([]map[string]string, 0, len(projects))
	for _, pr := range projects {
		regions = append(regions, map[string]string{"id": pr.ID, "name": pr.Name, "project_id": pr.ID})
	}
	ok(c, gin.H{
		"config": map[string]string{
			"mainRegion":               p.ProjectName,
			"project_id":               p.ProjectID,
			"obs_domain":               "",
			"disktype":                 "SAS,SSD,SATA",
			"server_version":           h.version,
			"agent_timeout_seconds":    strconv.Itoa(int(h.agentTimeout.Seconds())),
			"command_wait_max_seconds": strconv.Itoa(int(MaxCommandWait.Seconds())),
		},
		"regions": regions,
	})
}

// apiUpdated is the "updated" date of API version discovery (SDK
// ListApiVersion / ShowApiVersion), unauthenticated like an OpenStack
// endpoint root.
const apiUpdated = "2022-04-10T00:00:00Z" // the spec's publication date

// versionJSON links relatively: the Host header is the client's to choose,
// and echoing it would let anyone who can set it (a proxy, a poisoned
// cache) point other clients elsewhere.
func versionJSON(c *gin.Context) gin.H {
	return gin.H{"id": "v3", "status": "CURRENT", "updated": apiUpdated,
		"links": []gin.H{{"href": "/v3/", "rel": "self"}}}
}

func listVersions(c *gin.Context) { ok(c, gin.H{"versions": []gin.H{versionJSON(c)}}) }

func showVersion(c *gin.Context) {
	if v := c.Param("version"); v != "v3" {
		fail(c, smserr.New(CodeNoAPI).WithStatus(404).WithDetail("unknown API version "+truncate(v, 32)+"; this server speaks v3"))
		return
	}
	ok(c, versionJSON(c))
}
