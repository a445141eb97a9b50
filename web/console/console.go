// Package console serves the operator's web pages under /console/:
// server-rendered html/template pages, htmx (vendored, embedded) for the
// live parts, a session cookie carrying an IAM token. It reads the store
// and writes through the API's own validation (Projects), so a form and
// an API call follow the same rules and answer the same SMS codes.
package console

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/store"
)

// Prefix is where the console lives.
const Prefix = "/console"

//go:embed assets/*.css assets/*.js assets/*.svg templates/*.html
var files embed.FS

// Auth signs operators in and checks their session's token (iam.Service).
type Auth interface {
	IssueToken(ctx context.Context, a iam.PasswordAuth) (*iam.IssuedToken, error)
	AuthenticateToken(ctx context.Context, tok string) (iam.Principal, error)
}

// Store is what the pages read; every call is scoped to the session's tenant.
type Store interface {
	MigProject(ctx context.Context, t store.Tenant, id string) (*store.MigProject, error)
	MigProjects(ctx context.Context, t store.Tenant, pg store.Page) ([]store.MigProject, int64, error)
	SourceOverview(ctx context.Context, t store.Tenant) ([]store.SourceStateCount, error)
	// SourceRows is the sources table: the list rows without their checks.
	SourceRows(ctx context.Context, t store.Tenant, f store.SourceFilter, pg store.Page) ([]store.SourceListRow, int64, error)
	Source(ctx context.Context, t store.Tenant, id string) (*store.Source, error)
	Tasks(ctx context.Context, t store.Tenant, f store.TaskFilter, pg store.Page) ([]store.Task, int64, error)
	Task(ctx context.Context, t store.Tenant, id string) (*store.Task, error)
	SpeedSamples(ctx context.Context, t store.Tenant, taskID string, limit int) ([]store.SpeedSample, error)
	Templates(ctx context.Context, t store.Tenant, f store.TemplateFilter, pg store.Page) ([]store.TemplateDoc, int64, error)
	Template(ctx context.Context, t store.Tenant, id string) (*store.Template, error)
	LatestAgentLog(ctx context.Context, t store.Tenant, taskID string) (*store.AgentLog, error)
	ListWaves(ctx context.Context, t store.Tenant, f store.WaveFilter, pg store.Page) ([]store.Wave, int64, error)
}

// ProjectForm is a migration project as the form posts it: every field a
// string, as typed; the API side parses and validates it.
type ProjectForm struct {
	Name, Description, Region, Type, SpeedLimit, EnterpriseProject          string
	StartTargetServer, UsePublicIP, ExistServer, Syncing, StartNetworkCheck bool
}

// Projects writes migration projects through the API's body types and
// validation (web implements it); errors are *smserr.Error with the
// offending field in Params.
type Projects interface {
	CreateProject(ctx context.Context, p iam.Principal, f ProjectForm) (string, error)
	UpdateProject(ctx context.Context, p iam.Principal, id string, f ProjectForm) error
	DeleteProject(ctx context.Context, p iam.Principal, id string) error
}

// TemplateForm is a template as the form posts it. TargetPassword is
// write-only: no page ever shows it back.
type TemplateForm struct {
	Name, Region, ProjectID, TargetServerName, AvailabilityZone, VolumeType, Flavor, TargetPassword string
}

// Templates writes templates through the API's body type and validation
// (web implements it); errors name their field as "template.<field>".
type Templates interface {
	CreateTemplate(ctx context.Context, p iam.Principal, f TemplateForm) (string, error)
	// UpdateTemplate changes every field of the form; an empty
	// TargetPassword keeps the stored one.
	UpdateTemplate(ctx context.Context, p iam.Principal, id string, f TemplateForm) error
	DeleteTemplate(ctx context.Context, p iam.Principal, id string) error
}

// Tasks runs task operations through the API's action path (web
// implements it); errors are *smserr.Error.
type Tasks interface {
	TaskAction(ctx context.Context, p iam.Principal, id string, op sms.Action) error
	// RunURL links a task to its run in the Temporal UI ("" without one).
	RunURL(taskID string) string
}

// API calls the smsflow API in process as the session's user (its IAM
// token): forms whose rules live in an API handler (tasks, speed limits,
// sources, wave members) go through that handler, so they answer its
// codes. Errors are *smserr.Error with the API's status.
type API interface {
	Call(ctx context.Context, token, method, path string, in, out any) error
}

// Deps are the console's collaborators.
type Deps struct {
	Auth      Auth
	Box       *secret.Box
	Store     Store
	Projects  Projects
	Templates Templates
	// Tasks may be set after New (SetTasks): the API builds its task
	// handlers with its routes.
	Tasks  Tasks
	API    API
	Logger *slog.Logger
	Now    func() time.Time
	// IdleTimeout ends a session nobody used for this long (default 30 min).
	IdleTimeout time.Duration
	// TemporalUI is the Temporal UI's path, linked from the dashboard
	// ("" when not mounted).
	TemporalUI string
	// RequestID reads the request id the API's middleware gave c.
	RequestID func(c *gin.Context) string
	// AgentTimeout: an agent silent this long is disconnected.
	AgentTimeout time.Duration
	// Waves may be set after New (SetWaves), like Tasks.
	Waves Waves
}

// Console is the mounted console.
type Console struct {
	d      Deps
	pages  map[string]*template.Template
	assets map[string]asset // by hashed name
	urls   map[string]string
	forms  *onceForms
}

type asset struct {
	body  []byte
	ctype string
}

// New builds the console: templates parsed, assets hashed, once.
func New(d Deps) *Console {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.IdleTimeout == 0 {
		d.IdleTimeout = 30 * time.Minute
	}
	if d.AgentTimeout == 0 {
		d.AgentTimeout = 90 * time.Second
	}
	if d.RequestID == nil {
		d.RequestID = func(c *gin.Context) string { return c.Writer.Header().Get("X-Request-Id") }
	}
	k := &Console{d: d, assets: map[string]asset{}, urls: map[string]string{}, forms: newOnceForms(4096)}
	ents, _ := fs.ReadDir(files, "assets")
	for _, e := range ents {
		b, err := files.ReadFile("assets/" + e.Name())
		if err != nil {
			panic(err) // embedded: cannot fail
		}
		sum := sha256.Sum256(b)
		ext := path.Ext(e.Name())
		hashed := strings.TrimSuffix(e.Name(), ext) + "." + hex.EncodeToString(sum[:6]) + ext
		ct := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
			".svg": "image/svg+xml"}[ext]
		k.assets[hashed] = asset{body: b, ctype: ct}
		k.urls[e.Name()] = Prefix + "/assets/" + hashed
	}
	funcs := template.FuncMap{
		"asset": func(name string) string { return k.urls[name] },
		"bytes": humanBytes,
		"ms":    fmtMs,
		"pct": func(done, total int64) int64 {
			if total <= 0 {
				return 0
			}
			return min(100, done*100/total)
		},
		"secs":   fmtSeconds,
		"list":   func(v ...string) []string { return v },
		"field":  newField,
		"secret": newSecretField,
		"choice": newChoice,
		"when": func(t *time.Time) string {
			if t == nil {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
	}
	k.pages = map[string]*template.Template{}
	for _, p := range []string{"login", "error", "dashboard", "projects", "project_form", "sources", "source", "tasks", "task", "templates", "template_form", "waves", "task_form"} {
		k.pages[p] = template.Must(template.New("layout.html").Funcs(funcs).
			ParseFS(files, "templates/layout.html", "templates/fields.html", "templates/"+p+".html"))
	}
	k.addWavePages(funcs)
	return k
}

// SetTasks gives the console the API's task actions.
func (k *Console) SetTasks(t Tasks) { k.d.Tasks = t }

// SetTemporalUI links the dashboard to the Temporal UI mounted at path.
func (k *Console) SetTemporalUI(path string) { k.d.TemporalUI = path }

// Mount wires the console's routes on r.
func (k *Console) Mount(r gin.IRouter) {
	r.GET(Prefix, func(c *gin.Context) { c.Redirect(http.StatusFound, Prefix+"/") })
	g := r.Group(Prefix, limitBody)
	g.GET("/assets/:file", k.asset)
	g.GET("/login", k.loginPage)
	g.POST("/login", k.login)
	a := g.Group("", k.session)
	a.POST("/logout", k.logout)
	a.GET("/", k.dashboard)
	a.GET("/projects", k.projects)
	a.GET("/projects/new", k.newProject)
	a.POST("/projects", k.createProject)
	a.GET("/projects/:id", k.editProject)
	a.POST("/projects/:id", k.updateProject)
	a.POST("/projects/:id/delete", k.deleteProject)
	a.GET("/sources", k.sources)
	a.POST("/sources/bulk", k.bulkSources)
	a.GET("/sources/:id", k.source)
	a.GET("/sources/:id/task", k.newTask)
	a.POST("/sources/:id/task", k.createTask)
	a.GET("/tasks", k.tasks)
	a.GET("/tasks/:id", k.task)
	a.GET("/tasks/:id/live", k.taskLive)
	a.POST("/tasks/:id/action", k.taskAction)
	a.POST("/tasks/:id/speed-limit", k.setSpeed)
	a.POST("/tasks/:id/log", k.collectLog)
	a.GET("/tasks/:id/agent-log", k.agentLog)
	a.GET("/templates", k.templates)
	a.GET("/templates/new", k.newTemplate)
	a.POST("/templates", k.createTemplate)
	a.GET("/templates/:id", k.editTemplate)
	a.POST("/templates/:id", k.updateTemplate)
	a.POST("/templates/:id/delete", k.deleteTemplate)
	a.GET("/waves", k.waves)
	k.mountWaves(g, a) // the wave pages (wave.go)
}

// limitBody caps every console request body — the sign-in form, which
// anyone can post, included — at the largest form there is (a wave's member
// file): the CSRF check and the sign-in parse forms before anything else
// runs, and a multipart body would otherwise be read into memory and
// temporary files without bound. One byte over lets the upload pages read
// "too large" themselves and answer with their own message.
func limitBody(c *gin.Context) {
	if c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead && c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, uploadLimit+1)
	}
	c.Next()
}

// asset serves an embedded file by its hashed name: the name changes with
// the content, so it may be cached for a year.
func (k *Console) asset(c *gin.Context) {
	a, ok := k.assets[c.Param("file")]
	if !ok {
		k.NotFound(c)
		return
	}
	c.Header("Cache-Control", "public, max-age=31536000, immutable")
	c.Data(http.StatusOK, a.ctype, a.body)
}

// NotFound answers an unknown console path with the error page.
func (k *Console) NotFound(c *gin.Context) {
	k.errorPage(c, http.StatusNotFound, "Not found", "There is nothing at this address, or it belongs to another domain.")
}

// PrefersHTML tells whether the request's Accept header asks for HTML
// before JSON: a browser's navigation does, the SDK never does.
func PrefersHTML(r *http.Request) bool {
	html, json := -1, -1
	for i, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		switch strings.TrimSpace(mt) {
		case "text/html", "application/xhtml+xml":
			if html < 0 {
				html = i
			}
		case "application/json":
			if json < 0 {
				json = i
			}
		}
	}
	return html >= 0 && (json < 0 || html < json)
}
