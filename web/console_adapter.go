package web

import (
	"context"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/web/console"
	"github.com/smsflow/smsflow/workflows"
)

// consoleProjects writes the console's project forms through the API's
// migProjectBody: the same validation, defaults and error codes as
// POST/PUT /v3/migprojects.
type consoleProjects struct{ store MigProjectStore }

var _ console.Projects = consoleProjects{}

// projectBody turns a form into the API's body. On create an empty field
// is absent (so a required one answers SMS.6013 like a JSON body without
// it); on update every text field is sent, so clearing one is a change.
func projectBody(f console.ProjectForm, use purpose) (migProjectBody, error) {
	str := func(s string) *string {
		if use == creating && s == "" {
			return nil
		}
		return &s
	}
	b := migProjectBody{Name: str(f.Name), Description: str(f.Description), Region: str(f.Region),
		Type: str(f.Type), EnterpriseProject: str(f.EnterpriseProject),
		StartTargetServer: new(f.StartTargetServer), UsePublicIP: new(f.UsePublicIP), ExistServer: new(f.ExistServer),
		Syncing: new(f.Syncing), StartNetworkCheck: new(f.StartNetworkCheck)}
	if s := strings.TrimSpace(f.SpeedLimit); s != "" {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			var v checks
			v.invalid("speed_limit", "speed_limit: must be a whole number of Mbit/s")
			return b, v.err()
		}
		b.SpeedLimit = new(int32(n))
	}
	return b, b.validate(use)
}

func (h consoleProjects) CreateProject(ctx context.Context, p iam.Principal, f console.ProjectForm) (string, error) {
	b, err := projectBody(f, creating)
	if err != nil {
		return "", err
	}
	mp := &store.MigProject{ID: uuid.NewString(), StartTargetServer: true, UsePublicIP: true, ExistServer: true,
		EnterpriseProject: "default"}
	b.apply(mp)
	if err := h.store.CreateMigProject(ctx, p.Tenant(), mp); err != nil {
		return "", migProjectError(err, "")
	}
	return mp.ID, nil
}

func (h consoleProjects) UpdateProject(ctx context.Context, p iam.Principal, id string, f console.ProjectForm) error {
	b, err := projectBody(f, updating)
	if err != nil {
		return err
	}
	mp, err := h.store.MigProject(ctx, p.Tenant(), id)
	if err != nil {
		return migProjectError(err, id)
	}
	b.apply(mp)
	if err := h.store.UpdateMigProject(ctx, p.Tenant(), mp); err != nil {
		return migProjectError(err, id)
	}
	return nil
}

func (h consoleProjects) DeleteProject(ctx context.Context, p iam.Principal, id string) error {
	if err := h.store.DeleteMigProject(ctx, p.Tenant(), id); err != nil {
		return migProjectError(err, id)
	}
	return nil
}

// consoleTasks runs the console's task buttons through the API's action
// path (taskHandlers.runAction): the same tenancy, engine and codes.
type consoleTasks struct{ h taskHandlers }

var _ console.Tasks = consoleTasks{}

func (t consoleTasks) TaskAction(ctx context.Context, p iam.Principal, id string, op sms.Action) error {
	return t.h.runAction(ctx, p.Tenant(), id, workflows.ActionRequest{Operation: op})
}

// consoleTemplates writes the console's template forms through the API's
// templateBody: the same rules and codes as POST /v3/vm/templates, the
// target password sealed by the same box.
type consoleTemplates struct {
	store TemplateStore
	box   *secret.Box
}

var _ console.Templates = consoleTemplates{}

func (h consoleTemplates) CreateTemplate(ctx context.Context, p iam.Principal, f console.TemplateForm) (string, error) {
	str := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	b := templateBody{Name: str(f.Name), IsTemplate: new(true), Region: str(f.Region), ProjectID: str(f.ProjectID),
		TargetServerName: str(f.TargetServerName), AvailabilityZone: str(f.AvailabilityZone), VolumeType: str(f.VolumeType),
		Flavor: str(f.Flavor), TargetPassword: str(f.TargetPassword)}
	if err := b.validate(creating); err != nil {
		return "", err
	}
	tpl := &store.Template{ID: uuid.NewString()}
	if err := b.apply(tpl, h.box); err != nil {
		return "", err
	}
	if err := h.store.CreateTemplate(ctx, p.Tenant(), tpl); err != nil {
		return "", templateError(err, "")
	}
	return tpl.ID, nil
}

func (h consoleTemplates) DeleteTemplate(ctx context.Context, p iam.Principal, id string) error {
	if err := h.store.DeleteTemplates(ctx, p.Tenant(), []string{id}); err != nil {
		return templateError(err, id)
	}
	return nil
}

// UpdateTemplate applies the edit form like PUT /v3/vm/templates/{id}:
// every text field is sent (clearing one is a change), the password only
// when typed (write-only: blank keeps the stored one).
func (h consoleTemplates) UpdateTemplate(ctx context.Context, p iam.Principal, id string, f console.TemplateForm) error {
	b := templateBody{Name: &f.Name, Region: &f.Region, ProjectID: &f.ProjectID, TargetServerName: &f.TargetServerName,
		AvailabilityZone: &f.AvailabilityZone, VolumeType: &f.VolumeType, Flavor: &f.Flavor}
	if f.TargetPassword != "" {
		b.TargetPassword = &f.TargetPassword
	}
	if err := b.validate(updating); err != nil {
		return err
	}
	tpl, err := h.store.Template(ctx, p.Tenant(), id)
	if err != nil {
		return templateError(err, id)
	}
	if err := b.apply(tpl, h.box); err != nil {
		return err
	}
	if err := h.store.UpdateTemplate(ctx, p.Tenant(), tpl); err != nil {
		return templateError(err, id)
	}
	return nil
}

// RunURL links a task to its run in the Temporal UI.
func (t consoleTasks) RunURL(taskID string) string {
	if t.h.engine == nil {
		return ""
	}
	return t.h.engine.RunURL(taskID)
}
