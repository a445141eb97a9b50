package web

import (
	"context"
	"errors"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
)

// MigProjectStore is what the migration-project handlers need.
type MigProjectStore interface {
	CreateMigProject(ctx context.Context, t store.Tenant, p *store.MigProject) error
	MigProject(ctx context.Context, t store.Tenant, id string) (*store.MigProject, error)
	MigProjects(ctx context.Context, t store.Tenant, pg store.Page) ([]store.MigProject, int64, error)
	UpdateMigProject(ctx context.Context, t store.Tenant, p *store.MigProject) error
	SetDefaultMigProject(ctx context.Context, t store.Tenant, id string) error
	DeleteMigProject(ctx context.Context, t store.Tenant, id string) error
}

// migProjectBody is the create (and update) request; pointers tell absent
// fields from zero values.
type migProjectBody struct {
	ID                *string `json:"id"`
	Name              *string `json:"name"`
	Description       *string `json:"description"`
	IsDefault         *bool   `json:"isdefault"`
	Region            *string `json:"region"`
	StartTargetServer *bool   `json:"start_target_server"`
	SpeedLimit        *int32  `json:"speed_limit"`
	UsePublicIP       *bool   `json:"use_public_ip"`
	ExistServer       *bool   `json:"exist_server"`
	Type              *string `json:"type"`
	EnterpriseProject *string `json:"enterprise_project"`
	Syncing           *bool   `json:"syncing"`
	StartNetworkCheck *bool   `json:"start_network_check"`
}

// validate applies the field rules of tables 4-265 / 4-287. On create, name,
// region and type are required (the SDK always sends them); the booleans the
// spec marks required have documented defaults, which apply when absent. An
// update changes only the fields it carries.
func (b *migProjectBody) validate(use purpose) error {
	create := use == creating
	var v checks
	v.str("id", b.ID, optional, 1, 254)
	v.str("name", b.Name, requiredIf(create), 2, 19)
	v.str("description", b.Description, optional, 0, 255)
	v.str("region", b.Region, requiredIf(create), 0, 255)
	between(&v, "speed_limit", b.SpeedLimit, optional, 0, 10000)
	v.enum("type", b.Type, requiredIf(create), taskTypes...)
	v.str("enterprise_project", b.EnterpriseProject, optional, 0, 255)
	return v.err()
}

// apply writes the present fields onto p.
func (b *migProjectBody) apply(p *store.MigProject) {
	set(&p.Name, b.Name)
	set(&p.Description, b.Description)
	set(&p.IsDefault, b.IsDefault)
	set(&p.Region, b.Region)
	set(&p.StartTargetServer, b.StartTargetServer)
	set(&p.SpeedLimit, b.SpeedLimit)
	set(&p.UsePublicIP, b.UsePublicIP)
	set(&p.ExistServer, b.ExistServer)
	if b.Type != nil {
		p.Type = sms.TaskType(*b.Type)
	}
	set(&p.EnterpriseProject, b.EnterpriseProject)
	set(&p.Syncing, b.Syncing)
	set(&p.StartNetworkCheck, b.StartNetworkCheck)
}

func set[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

// migProjectJSON is one project in answers (tables 4-272 / 4-277).
type migProjectJSON struct {
	ID                string       `json:"id"`
	Name              string       `json:"name"`
	Description       string       `json:"description"`
	IsDefault         bool         `json:"isdefault"`
	Region            string       `json:"region"`
	StartTargetServer bool         `json:"start_target_server"`
	SpeedLimit        int32        `json:"speed_limit"`
	UsePublicIP       bool         `json:"use_public_ip"`
	ExistServer       bool         `json:"exist_server"`
	Type              sms.TaskType `json:"type"`
	EnterpriseProject string       `json:"enterprise_project"`
	Syncing           bool         `json:"syncing"`
	StartNetworkCheck bool         `json:"start_network_check"`
}

func toMigProjectJSON(p *store.MigProject) migProjectJSON {
	return migProjectJSON{
		ID: p.ID, Name: p.Name, Description: p.Description, IsDefault: p.IsDefault, Region: p.Region,
		StartTargetServer: p.StartTargetServer, SpeedLimit: p.SpeedLimit, UsePublicIP: p.UsePublicIP,
		ExistServer: p.ExistServer, Type: p.Type, EnterpriseProject: p.EnterpriseProject,
		Syncing: p.Syncing, StartNetworkCheck: p.StartNetworkCheck,
	}
}

type migProjectHandlers struct{ store MigProjectStore }

// migProjectError maps store errors to the codes of §4.5.
func migProjectError(err error, id string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound(smserr.SMS7301, id)
	case errors.Is(err, store.ErrDuplicate):
		return smserr.New(smserr.SMS7312, "name").WithDetail("a migration project with this name exists")
	case errors.Is(err, store.ErrDefaultProject):
		return smserr.New(smserr.SMS7303).WithDetail("make another project the default first (PUT /v3/migprojects/{id}/default)")
	case errors.Is(err, store.ErrInUse):
		return smserr.New(smserr.SMS7311).WithDetail(err.Error())
	case errors.Is(err, store.ErrConflict):
		return smserr.New(smserr.SMS7313, "isdefault").
			WithDetail("the default moves only with PUT /v3/migprojects/{id}/default")
	}
	return err
}

// create: POST /v3/migprojects → 200 {"id"}.
func (h migProjectHandlers) create(c *gin.Context) {
	var b migProjectBody
	if err := bindJSON(c, &b); err != nil {
		fail(c, err)
		return
	}
	if err := b.validate(creating); err != nil {
		fail(c, err)
		return
	}
	p := &store.MigProject{
		ID: uuid.NewString(), StartTargetServer: true, UsePublicIP: true, ExistServer: true,
		EnterpriseProject: "default",
	}
	b.apply(p)
	if err := h.store.CreateMigProject(c.Request.Context(), mustPrincipal(c).Tenant(), p); err != nil {
		fail(c, migProjectError(err, ""))
		return
	}
	ok(c, gin.H{"id": p.ID})
}

// list: GET /v3/migprojects?limit&offset → {"count","migprojects"}.
func (h migProjectHandlers) list(c *gin.Context) {
	limit, offset, err := pageQuery(c, 50, 100)
	if err != nil {
		fail(c, err)
		return
	}
	rows, total, err := h.store.MigProjects(c.Request.Context(), mustPrincipal(c).Tenant(), store.Page{Limit: limit, Offset: offset})
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]migProjectJSON, len(rows))
	for i := range rows {
		out[i] = toMigProjectJSON(&rows[i])
	}
	ok(c, gin.H{"count": total, "migprojects": out})
}

// show: GET /v3/migprojects/{id}.
func (h migProjectHandlers) show(c *gin.Context, r request) {
	p, err := h.store.MigProject(c.Request.Context(), r.tenant, r.id)
	if err != nil {
		fail(c, migProjectError(err, r.id))
		return
	}
	ok(c, toMigProjectJSON(p))
}

// update: PUT /v3/migprojects/{id}; absent fields keep their value.
func (h migProjectHandlers) update(c *gin.Context, r request) {
	var b migProjectBody
	if err := bindJSON(c, &b); err != nil {
		fail(c, err)
		return
	}
	if err := b.validate(updating); err != nil {
		fail(c, err)
		return
	}
	t := r.tenant
	p, err := h.store.MigProject(c.Request.Context(), t, r.id)
	if err != nil {
		fail(c, migProjectError(err, r.id))
		return
	}
	if b.IsDefault != nil && *b.IsDefault != p.IsDefault {
		if p.IsDefault {
			fail(c, smserr.New(smserr.SMS9001, "isdefault").
				WithDetail("isdefault: the default project stays default until another one is made default"))
			return
		}
		fail(c, migProjectError(store.ErrConflict, r.id))
		return
	}
	b.apply(p)
	if err := h.store.UpdateMigProject(c.Request.Context(), t, p); err != nil {
		fail(c, migProjectError(err, r.id))
		return
	}
	okEmpty(c)
}

// setDefault: PUT /v3/migprojects/{id}/default.
func (h migProjectHandlers) setDefault(c *gin.Context, r request) {
	if err := h.store.SetDefaultMigProject(c.Request.Context(), r.tenant, r.id); err != nil {
		fail(c, migProjectError(err, r.id))
		return
	}
	okEmpty(c)
}

// delete: DELETE /v3/migprojects/{id}.
func (h migProjectHandlers) delete(c *gin.Context, r request) {
	if err := h.store.DeleteMigProject(c.Request.Context(), r.tenant, r.id); err != nil {
		fail(c, migProjectError(err, r.id))
		return
	}
	okEmpty(c)
}
