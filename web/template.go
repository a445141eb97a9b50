package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
)

// TemplateStore is what the template handlers need.
type TemplateStore interface {
	CreateTemplate(ctx context.Context, t store.Tenant, tpl *store.Template) error
	Template(ctx context.Context, t store.Tenant, id string) (*store.Template, error)
	TemplateDoc(ctx context.Context, t store.Tenant, id string) (*store.TemplateDoc, error)
	Templates(ctx context.Context, t store.Tenant, f store.TemplateFilter, pg store.Page) ([]store.TemplateDoc, int64, error)
	UpdateTemplate(ctx context.Context, t store.Tenant, tpl *store.Template) error
	DeleteTemplates(ctx context.Context, t store.Tenant, ids []string) error
}

var volumeTypes = []string{"SAS", "SSD", "SATA"}

// vpcBody and the shapes after it are table 4-211 and its nested tables; pointers mark presence.
type vpcBody struct {
	ID   *string `json:"id"`
	Name *string `json:"name"`
	CIDR *string `json:"cidr"`
}

type nicBody struct {
	ID   *string `json:"id"`
	Name *string `json:"name"`
	CIDR *string `json:"cidr"`
	IP   *string `json:"ip"`
}

type sgBody struct {
	ID   *string `json:"id"`
	Name *string `json:"name"`
}

type publicIPBody struct {
	Type               *string `json:"type"`
	BandwidthSize      *int32  `json:"bandwidth_size"`
	BandwidthShareType *string `json:"bandwidth_share_type"`
}

type diskBody struct {
	ID        *FlexInt64 `json:"id"`
	Index     *int32     `json:"index"`
	Name      *string    `json:"name"`
	DiskType  *string    `json:"disktype"`
	Size      *int64     `json:"size"`
	DeviceUse *string    `json:"device_use"`
}

type templateBody struct {
	Name             *string       `json:"name"`
	IsTemplate       *bool         `json:"is_template"`
	Region           *string       `json:"region"`
	ProjectID        *string       `json:"projectid"`
	TargetServerName *string       `json:"target_server_name"`
	AvailabilityZone *string       `json:"availability_zone"`
	VolumeType       *string       `json:"volumetype"`
	Flavor           *string       `json:"flavor"`
	VPC              *vpcBody      `json:"vpc"`
	NICs             *[]nicBody    `json:"nics"`
	SecurityGroups   *[]sgBody     `json:"security_groups"`
	PublicIP         *publicIPBody `json:"publicip"`
	Disks            *[]diskBody   `json:"disk"`
	DataVolumeType   *string       `json:"data_volume_type"`
	TargetPassword   *string       `json:"target_password"`
	ImageID          *string       `json:"image_id"`
}

// templateRequest wraps the template, as in POST/PUT /v3/vm/templates.
type templateRequest struct {
	Template *templateBody `json:"template"`
}

// validate applies the rules of tables 4-211..4-216 (create) and 4-255..4-260
// (update: only the fields present are checked and changed; the required
// fields of a nested object apply whenever that object is sent).
func (b *templateBody) validate(use purpose) error {
	create := use == creating
	var v checks
	p := "template."
	v.str(p+"name", b.Name, requiredIf(create), 0, 255)
	if create {
		v.required(p+"is_template", b.IsTemplate != nil)
	}
	v.str(p+"region", b.Region, requiredIf(create), 0, 255)
	v.str(p+"projectid", b.ProjectID, requiredIf(create), 0, 255)
	v.str(p+"target_server_name", b.TargetServerName, optional, 0, 255)
	v.str(p+"availability_zone", b.AvailabilityZone, optional, 0, 255)
	v.enumOrEmpty(p+"volumetype", b.VolumeType, optional, volumeTypes...)
	v.str(p+"flavor", b.Flavor, optional, 0, 255)
	if b.VPC != nil {
		v.str(p+"vpc.id", b.VPC.ID, required, 1, 255)
		v.str(p+"vpc.name", b.VPC.Name, required, 1, 255)
		v.str(p+"vpc.cidr", b.VPC.CIDR, optional, 1, 255)
	}
	if b.NICs != nil {
		for i, n := range *b.NICs {
			f := fmt.Sprintf("%snics[%d].", p, i)
			v.str(f+"id", n.ID, required, 0, 255)
			v.str(f+"name", n.Name, required, 0, 255)
			v.str(f+"cidr", n.CIDR, required, 0, 255)
			v.str(f+"ip", n.IP, optional, 0, 255)
		}
	}
	if b.SecurityGroups != nil {
		for i, sg := range *b.SecurityGroups {
			f := fmt.Sprintf("%ssecurity_groups[%d].", p, i)
			v.str(f+"id", sg.ID, required, 0, 255)
			v.str(f+"name", sg.Name, required, 0, 255)
		}
	}
	if b.PublicIP != nil {
		v.str(p+"publicip.type", b.PublicIP.Type, required, 0, 255)
		between(&v, p+"publicip.bandwidth_size", b.PublicIP.BandwidthSize, required, 1, 2000)
		v.str(p+"publicip.bandwidth_share_type", b.PublicIP.BandwidthShareType, optional, 0, 255)
	}
	if b.Disks != nil {
		for i, d := range *b.Disks {
			f := fmt.Sprintf("%sdisk[%d].", p, i)
			between(&v, f+"id", d.ID, optional, 0, 1<<63-1)
			between(&v, f+"index", d.Index, required, 0, 1<<31-1)
			v.str(f+"name", d.Name, required, 0, 255)
			v.str(f+"disktype", d.DiskType, required, 0, 255)
			between(&v, f+"size", d.Size, required, 0, 1<<63-1)
			v.str(f+"device_use", d.DeviceUse, optional, 0, 255)
		}
	}
	v.enumOrEmpty(p+"data_volume_type", b.DataVolumeType, optional, volumeTypes...)
	v.str(p+"target_password", b.TargetPassword, optional, 0, 1024)
	v.str(p+"image_id", b.ImageID, optional, 0, 255)
	return v.err()
}

// apply writes the present fields onto tpl, sealing the target password.
func (b *templateBody) apply(tpl *store.Template, box *secret.Box) error {
	set(&tpl.Name, b.Name)
	set(&tpl.IsTemplate, b.IsTemplate)
	set(&tpl.Region, b.Region)
	set(&tpl.ProjectID, b.ProjectID)
	set(&tpl.TargetServerName, b.TargetServerName)
	set(&tpl.AvailabilityZone, b.AvailabilityZone)
	set(&tpl.VolumeType, b.VolumeType)
	set(&tpl.Flavor, b.Flavor)
	set(&tpl.DataVolumeType, b.DataVolumeType)
	set(&tpl.ImageID, b.ImageID)
	if b.VPC != nil {
		tpl.VPC = &store.VPC{ID: *b.VPC.ID, Name: *b.VPC.Name, CIDR: b.VPC.CIDR}
	}
	if b.NICs != nil {
		tpl.NICs = make([]store.NIC, len(*b.NICs))
		for i, n := range *b.NICs {
			tpl.NICs[i] = store.NIC{ID: *n.ID, Name: *n.Name, CIDR: *n.CIDR, IP: n.IP}
		}
	}
	if b.SecurityGroups != nil {
		tpl.SecurityGroups = make([]store.SecurityGroup, len(*b.SecurityGroups))
		for i, sg := range *b.SecurityGroups {
			tpl.SecurityGroups[i] = store.SecurityGroup{ID: *sg.ID, Name: *sg.Name}
		}
	}
	if b.PublicIP != nil {
		tpl.PublicIP = &store.PublicIP{Type: *b.PublicIP.Type, BandwidthSize: *b.PublicIP.BandwidthSize,
			BandwidthShareType: b.PublicIP.BandwidthShareType}
	}
	if b.Disks != nil {
		tpl.Disks = make([]store.TemplateDisk, len(*b.Disks))
		for i, d := range *b.Disks {
			var id *int64
			if d.ID != nil {
				n := int64(*d.ID)
				id = &n
			}
			tpl.Disks[i] = store.TemplateDisk{ID: id, Index: *d.Index, Name: *d.Name, DiskType: *d.DiskType,
				Size: *d.Size, DeviceUse: d.DeviceUse}
		}
	}
	if b.TargetPassword != nil {
		enc, err := box.Seal(*b.TargetPassword)
		if err != nil {
			return fmt.Errorf("seal target password: %w", err)
		}
		tpl.TargetPasswordEnc = enc
	}
	return nil
}

// templateJSON is TemplateResponseBody (tables 4-223 / 4-244). is_template is
// a string, as the SDK declares it; target_password is never included (read
// it with GET /v3/vm/templates/{id}/target-password), so a client that PUTs
// back what it GOT keeps the password. The nested objects are the stored JSON,
// passed through (store.TemplateDoc says why).
type templateJSON struct {
	ID               string          `json:"id"`
	Name             string          `json:"name"`
	IsTemplate       string          `json:"is_template"`
	Region           string          `json:"region"`
	ProjectID        string          `json:"projectid"`
	TargetServerName string          `json:"target_server_name"`
	AvailabilityZone string          `json:"availability_zone"`
	VolumeType       string          `json:"volumetype"`
	Flavor           string          `json:"flavor"`
	VPC              json.RawMessage `json:"vpc"`
	NICs             json.RawMessage `json:"nics"`
	SecurityGroups   json.RawMessage `json:"security_groups"`
	PublicIP         json.RawMessage `json:"publicip"`
	Disks            json.RawMessage `json:"disk"`
	DataVolumeType   string          `json:"data_volume_type"`
	ImageID          string          `json:"image_id"`
}

func toTemplateJSON(t *store.TemplateDoc) templateJSON {
	return templateJSON{
		ID: t.ID, Name: t.Name, IsTemplate: strconv.FormatBool(t.IsTemplate), Region: t.Region,
		ProjectID: t.ProjectID, TargetServerName: t.TargetServerName, AvailabilityZone: t.AvailabilityZone,
		VolumeType: t.VolumeType, Flavor: t.Flavor,
		// Objects absent are null, arrays absent empty: arrays are never null on the wire.
		VPC: rawOr(t.VPC, "null"), NICs: rawOr(t.NICs, "[]"), SecurityGroups: rawOr(t.SecurityGroups, "[]"),
		PublicIP: rawOr(t.PublicIP, "null"), Disks: rawOr(t.Disks, "[]"),
		DataVolumeType: t.DataVolumeType, ImageID: t.ImageID,
	}
}

type templateHandlers struct {
	store TemplateStore
	box   *secret.Box
}

func templateError(err error, id string) error {
	var miss *store.MissingError
	switch {
	case errors.As(err, &miss):
		e := smserr.New(smserr.SMS7101, miss.IDs...).WithStatus(404)
		for _, m := range miss.IDs {
			e = e.WithDetail("no such template: " + m)
		}
		return e
	case errors.Is(err, store.ErrNotFound):
		return notFound(smserr.SMS7101, id)
	case errors.Is(err, store.ErrDuplicate):
		return smserr.New(smserr.SMS7112, "template.name").WithDetail("a template with this name exists")
	case errors.Is(err, store.ErrLimit):
		return smserr.New(smserr.SMS8115).WithDetail(fmt.Sprintf("at most %d templates per account", store.MaxTemplatesPerTenant))
	case errors.Is(err, store.ErrInUse):
		return smserr.New(smserr.SMS7111).WithDetail(err.Error())
	}
	return err
}

// create: POST /v3/vm/templates → 200 {"id"}.
func (h templateHandlers) create(c *gin.Context) {
	var req templateRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if req.Template == nil {
		fail(c, smserr.New(smserr.SMS6013, "template").WithDetail("template: is required"))
		return
	}
	if err := req.Template.validate(creating); err != nil {
		fail(c, err)
		return
	}
	tpl := &store.Template{ID: uuid.NewString()}
	if err := req.Template.apply(tpl, h.box); err != nil {
		fail(c, err)
		return
	}
	if err := h.store.CreateTemplate(c.Request.Context(), mustPrincipal(c).Tenant(), tpl); err != nil {
		fail(c, templateError(err, ""))
		return
	}
	ok(c, gin.H{"id": tpl.ID})
}

// list: GET /v3/vm/templates?name&availability_zone&region&limit&offset.
func (h templateHandlers) list(c *gin.Context) {
	var v checks
	f := store.TemplateFilter{
		ID:               queryString(c, &v, "id", 255),
		Name:             queryString(c, &v, "name", 255),
		AvailabilityZone: queryString(c, &v, "availability_zone", 255),
		Region:           queryString(c, &v, "region", 255),
	}
	pg := v.page(c, 50, 100)
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	rows, total, err := h.store.Templates(c.Request.Context(), mustPrincipal(c).Tenant(), f, pg)
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]templateJSON, len(rows))
	for i := range rows {
		out[i] = toTemplateJSON(&rows[i])
	}
	ok(c, gin.H{"count": total, "templates": out})
}

// show: GET /v3/vm/templates/{id} → {"template"}.
func (h templateHandlers) show(c *gin.Context, r request) {
	tpl, err := h.store.TemplateDoc(c.Request.Context(), r.tenant, r.id)
	if err != nil {
		fail(c, templateError(err, r.id))
		return
	}
	ok(c, gin.H{"template": toTemplateJSON(tpl)})
}

// targetPassword: GET /v3/vm/templates/{id}/target-password (SDK
// ShowTargetPassword), the one way to read a stored password back.
func (h templateHandlers) targetPassword(c *gin.Context, r request) {
	p := r.principal
	tpl, err := h.store.Template(c.Request.Context(), r.tenant, r.id)
	if err != nil {
		fail(c, templateError(err, r.id))
		return
	}
	pw, err := h.box.Open(tpl.TargetPasswordEnc)
	if err != nil {
		fail(c, fmt.Errorf("template %s: %w", r.id, err))
		return
	}
	logFor(c).InfoContext(c.Request.Context(), "target password read", "template", r.id, "user", p.UserName)
	ok(c, gin.H{"template_id": tpl.ID, "target_password": pw})
}

// update: PUT /v3/vm/templates/{id}; fields absent from the body keep their value.
func (h templateHandlers) update(c *gin.Context, r request) {
	var req templateRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	t := r.tenant
	tpl, err := h.store.Template(c.Request.Context(), t, r.id)
	if err != nil {
		fail(c, templateError(err, r.id))
		return
	}
	if req.Template == nil {
		okEmpty(c) // the spec makes "template" optional: nothing to change
		return
	}
	if err := req.Template.validate(updating); err != nil {
		fail(c, err)
		return
	}
	if err := req.Template.apply(tpl, h.box); err != nil {
		fail(c, err)
		return
	}
	if err := h.store.UpdateTemplate(c.Request.Context(), t, tpl); err != nil {
		fail(c, templateError(err, r.id))
		return
	}
	okEmpty(c)
}

// delete: DELETE /v3/vm/templates/{id}.
func (h templateHandlers) delete(c *gin.Context, r request) {
	if err := h.store.DeleteTemplates(c.Request.Context(), r.tenant, []string{r.id}); err != nil {
		fail(c, templateError(err, r.id))
		return
	}
	okEmpty(c)
}

// batchDelete: POST /v3/vm/templates/delete {"ids"}; all or nothing.
func (h templateHandlers) batchDelete(c *gin.Context) {
	var req struct {
		IDs *[]string `json:"ids"`
	}
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	var ids []string
	if req.IDs != nil {
		ids = *req.IDs
	}
	var v checks
	if len(ids) > 65535 {
		v.invalid("ids", "at most 65535 ids")
	}
	for i := range ids {
		v.str(fmt.Sprintf("ids[%d]", i), &ids[i], required, 0, 255)
	}
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	if err := h.store.DeleteTemplates(c.Request.Context(), mustPrincipal(c).Tenant(), ids); err != nil {
		fail(c, templateError(err, ""))
		return
	}
	okEmpty(c)
}
