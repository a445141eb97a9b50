package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/wave"
)

// Waves runs the wave pages' operations through the API's own paths (web
// implements it): the same validation (wave.Validate, the store's
// references), the same CSV reader, the same engine calls and codes.
// Errors are *smserr.Error; another domain's wave is a 404 one.
type Waves interface {
	Wave(ctx context.Context, p iam.Principal, id string) (*store.Wave, error)
	// CreateWave creates a DRAFT wave of spec's members plus the rows of
	// csv (nil: none); nothing is created when a row is bad.
	CreateWave(ctx context.Context, p iam.Principal, spec wave.Spec, csv []byte) (string, error)
	// UpdateWave replaces an editable wave's spec (members aside).
	UpdateWave(ctx context.Context, p iam.Principal, id string, spec wave.Spec) error
	DeleteWave(ctx context.Context, p iam.Principal, id string) error
	// AddWaveMembers adds sources by id and the rows of csv; all or none.
	AddWaveMembers(ctx context.Context, p iam.Principal, id string, sourceIDs []string, csv []byte) (int, error)
	WaveAction(ctx context.Context, p iam.Principal, id string, a wave.Action) error
	WavePreflight(ctx context.Context, p iam.Principal, id string) (*WavePreflight, error)
	WaveDetail(ctx context.Context, p iam.Principal, id string) (*WaveDetail, error)
	WaveReport(ctx context.Context, p iam.Principal, id string) (*WaveReport, error)
	// WaveThroughput is the wave's summed speed samples from sinceMs on,
	// in stretches of bucketMs.
	WaveThroughput(ctx context.Context, p iam.Principal, id string, sinceMs, bucketMs int64) ([]store.ThroughputPoint, error)
}

// WaveDetail is a wave with its members' progress and estimates, as GET
// /v3/waves/{id} works them out.
type WaveDetail struct {
	Wave    *store.Wave
	Members []WaveMember
	Totals  WaveTotals
	// RunURL is the wave's run in the Temporal UI ("" when none).
	RunURL string
}

// WaveMember is one member as the wave page shows it.
type WaveMember struct {
	ID, SourceID, SourceName, TargetName, TaskID string
	State, FailedFrom                            wave.MemberState
	Percent                                      float64
	BytesDone, BytesTotal                        int64
	SpeedMbps                                    float64
	ShareMbps                                    int32
	ETA                                          *time.Time
	ExpectedDowntime                             *float64
	// Downtime is the downtime the member's cutover had (nil before).
	Downtime            *float64
	NotConverging       bool
	ErrorCode, ErrorMsg string
}

// WaveTotals sums a wave's members up.
type WaveTotals struct {
	BytesDone, BytesTotal int64
	Percent               float64
	CopyETA               *time.Time
	ExpectedDowntime      *float64
	NotConverging         int
}

// WavePreflight is GET /v3/waves/{id}/preflight's answer.
type WavePreflight struct {
	OK       bool
	Blocking int
	Members  []PreflightMember
	Wave     []PreflightCheck
}

// PreflightMember is one member's checks.
type PreflightMember struct {
	ID, SourceID, Name string
	OK                 bool
	Checks             []PreflightCheck
}

// PreflightCheck is one check's result.
type PreflightCheck struct {
	Name         string
	OK, Blocking bool
	Message      string
}

// WaveReport is the wave's report: a row a member, and the same as CSV.
type WaveReport struct {
	Rows []WaveReportRow
	CSV  []byte
}

// WaveReportRow is one member of the report (the API's report row).
type WaveReportRow struct {
	MemberID         string
	SourceID         string
	SourceName       string
	TaskID           string
	State            string
	BytesMoved       int64
	BytesTotal       int64
	CopySeconds      *float64
	SyncSeconds      *float64
	DowntimeSeconds  *float64
	ExpectedDowntime *float64
	NotConverging    bool
	Verification     string
	ErrorCode        string
	ErrorMsg         string
}

// Form sizes: the budget editor has the API's five rows; the cutover
// editor shows at least four (the API takes up to 14).
const (
	budgetRows     = wave.MaxBudgetWindows
	minCutoverRows = 4
	// pickLimit bounds the sources the create form lists at once: the
	// filters narrow a larger fleet.
	pickLimit = 200
	// uploadLimit is a member file's limit plus room for the form's other
	// fields.
	uploadLimit = wave.MaxCSVBytes + 64<<10
	// waveTick is the live fragment's polling period.
	waveTick = "every 3s"
)

// waveFuncs are the wave pages' template helpers.
var waveFuncs = template.FuncMap{
	"errsUnder": errsUnder,
	"fixed1":    func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"dur":       fmtDur,
	"at":        fmtAt,
	"on":        func(r windowRow, d wave.Weekday) bool { return r.On(d) },
	"has":       func(ids []string, id string) bool { return slices.Contains(ids, id) },
	// pickedShown tells whether a picked source is a row of the table (its
	// checkbox carries it) or needs a hidden field to stay picked.
	"pickedShown": func(rows []store.SourceListRow, id string) bool {
		return slices.ContainsFunc(rows, func(r store.SourceListRow) bool { return r.ID == id })
	},
}

// fmtDur is a number of seconds as a duration ("—" for none).
func fmtDur(s *float64) string {
	if s == nil {
		return "—"
	}
	d := time.Duration(*s * float64(time.Second))
	if d < 10*time.Second {
		// A quick cutover's downtime: tenths, so 0.4 s does not read "0s".
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// fmtAt is a moment in the wave's zone ("—" for none).
func fmtAt(t *time.Time, zone string) string {
	if t == nil {
		return "—"
	}
	loc, err := wave.LoadZone(zone)
	if err != nil {
		loc = time.UTC
	}
	return t.In(loc).Format("2006-01-02 15:04 MST")
}

// waveDays are the weekdays in form order.
var waveDays = []wave.Weekday{wave.Monday, wave.Tuesday, wave.Wednesday, wave.Thursday, wave.Friday,
	wave.Saturday, wave.Sunday}

// zones are offered in the time zone field's list (any IANA name is
// accepted).
var zones = []string{"UTC", "Europe/Berlin", "Europe/London", "Europe/Paris", "America/New_York",
	"America/Chicago", "America/Los_Angeles", "Asia/Shanghai", "Asia/Tokyo", "Asia/Singapore", "Australia/Sydney"}

// wavePages are the wave pages' templates.
var wavePages = []string{"wave_form", "wave", "wave_preflight", "wave_report"}

// addWavePages parses the wave pages with the console's template helpers
// and the wave pages' own (called by New).
func (k *Console) addWavePages(funcs template.FuncMap) {
	fm := maps.Clone(funcs)
	maps.Copy(fm, waveFuncs)
	for _, p := range wavePages {
		k.pages[p] = template.Must(template.New("layout.html").Funcs(fm).
			ParseFS(files, "templates/layout.html", "templates/"+p+".html"))
	}
}

// mountWaves wires the wave pages (called by Mount after the list). The two routes that
// take a file limit the body before the session's CSRF check reads it.
func (k *Console) mountWaves(g, a gin.IRoutes) {
	a.GET("/waves/new", k.newWave)
	g.POST("/waves/new", k.limitUpload, k.session, k.newWave) // the form's filter button
	g.POST("/waves", k.limitUpload, k.session, k.createWave)
	a.GET("/waves/:id", k.wavePage)
	a.GET("/waves/:id/live", k.waveLive)
	a.GET("/waves/:id/edit", k.editWave)
	a.POST("/waves/:id", k.updateWave)
	a.POST("/waves/:id/delete", k.deleteWave)
	g.POST("/waves/:id/members", k.limitUpload, k.session, k.addWaveMembers)
	a.POST("/waves/:id/action", k.waveAction)
	a.GET("/waves/:id/preflight", k.wavePreflight)
	a.GET("/waves/:id/report", k.waveReport)
	a.GET("/waves/:id/report.csv", k.waveReportCSV)
}

// SetWaves gives the console the API's wave operations.
func (k *Console) SetWaves(w Waves) { k.d.Waves = w }

// limitUpload refuses a body larger than a member file may be before
// anything else reads it, with the API's code.
func (k *Console) limitUpload(c *gin.Context) {
	if c.Request.ContentLength > uploadLimit {
		k.errorPage(c, http.StatusRequestEntityTooLarge, "The file is too large",
			tooLargeMsg())
		c.Abort()
		return
	}
	if c.Request.ContentLength < 0 {
		// A body of unknown length (chunked) is read here, within the
		// limit, so that a huge one gets this answer too rather than a
		// form the CSRF check cannot read.
		b, err := io.ReadAll(io.LimitReader(c.Request.Body, uploadLimit+1))
		if err != nil {
			k.uploadFail(c, err)
			c.Abort()
			return
		}
		if len(b) > uploadLimit {
			k.errorPage(c, http.StatusRequestEntityTooLarge, "The file is too large", tooLargeMsg())
			c.Abort()
			return
		}
		c.Request.Body, c.Request.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, uploadLimit)
	c.Next()
}

func tooLargeMsg() string {
	return string(wave.ErrCSVTooLarge.Code) + ": " +
		wave.ErrCSVTooLarge.New(fmt.Sprintf("at most %d KiB", wave.MaxCSVBytes>>10)).Message
}

func (k *Console) wavesReady(c *gin.Context) bool {
	if k.d.Waves == nil {
		k.errorPage(c, http.StatusServiceUnavailable, "Waves unavailable", "This server runs no wave handlers.")
		return false
	}
	return true
}

// ---- the form

// waveForm is the create/edit form as typed: every field a string, the
// windows as rows.
type waveForm struct {
	Name, Description, ProjectID, Type, TemplateID, Syncing, StartTarget string
	StartAt, TimeZone, MaxConcurrent, MaxFailures, BudgetDefault         string
	CutoverMode, DependsOn                                               string
	TestFirst                                                            bool
	Budget                                                               []windowRow
	Cutover                                                              []windowRow
	Sources                                                              []string
}

// windowRow is one row of a window editor.
type windowRow struct {
	Start, End, Mbps string
	Days             []string
}

// On tells whether the row lists day d.
func (r windowRow) On(d wave.Weekday) bool { return slices.Contains(r.Days, string(d)) }

func (r windowRow) blank() bool {
	return strings.TrimSpace(r.Start) == "" && strings.TrimSpace(r.End) == "" && strings.TrimSpace(r.Mbps) == "" && len(r.Days) == 0
}

// waveFormPage is the create and edit form's data.
type waveFormPage struct {
	ID     string
	Form   waveForm
	FormID string
	// Errors maps an API field path ("bandwidth_budget.windows[1].end")
	// to its SMS code and message; Rows are a CSV file's bad rows.
	Errors  map[string]string
	General []string
	Rows    []string
	// The pickers' choices.
	Projects  []store.MigProject
	Templates []store.TemplateDoc
	Waves     []store.Wave
	Zones     []string
	Days      []wave.Weekday
	// The sources table (create only).
	Pick      []store.SourceListRow
	PickTotal int64
	Filter    store.SourceFilter
	States    []sms.SourceState
}

// readWaveForm reads the form's fields through get and all (a POSTed
// form's values).
func readWaveForm(get func(string) string, all func(string) []string) waveForm {
	f := waveForm{Name: get("name"), Description: get("description"), ProjectID: get("project_id"),
		Type: get("type"), TemplateID: get("vm_template_id"), Syncing: get("syncing"), StartTarget: get("start_target_server"),
		StartAt: get("start_at"), TimeZone: strings.TrimSpace(get("time_zone")), MaxConcurrent: get("max_concurrent"),
		MaxFailures: get("max_failures"), BudgetDefault: get("budget_default"), CutoverMode: get("cutover_mode"),
		DependsOn: get("depends_on"), TestFirst: get("test_first") == "on" || get("test_first") == "true",
		Sources: all("source")}
	for i := range budgetRows {
		n := strconv.Itoa(i)
		f.Budget = append(f.Budget, windowRow{Start: get("bw_start_" + n), End: get("bw_end_" + n),
			Mbps: get("bw_mbps_" + n), Days: all("bw_days_" + n)})
	}
	for i := range wave.MaxCutoverWindows {
		n := strconv.Itoa(i)
		r := windowRow{Start: get("cw_start_" + n), End: get("cw_end_" + n), Days: all("cw_days_" + n)}
		if i < minCutoverRows || !r.blank() {
			f.Cutover = append(f.Cutover, r)
		}
	}
	return f
}

// problem is a form value that cannot even be read (not a number, not a
// date): the API's JSON decoder refuses such a body with SMS.8500 too.
type problem struct{ field, msg string }

// spec turns the form into the API's wave.Spec; a field that does not
// parse is reported under its API path. Blank window rows are dropped,
// so row i of the editors is windows[i] once re-rendered compacted.
func (f *waveForm) spec() (wave.Spec, []problem) {
	var ps []problem
	num := func(field, v string, blankOK bool) int {
		v = strings.TrimSpace(v)
		if v == "" && blankOK {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			ps = append(ps, problem{field, "must be a whole number"})
			return 0
		}
		return n
	}
	s := wave.Spec{Name: strings.TrimSpace(f.Name), Description: f.Description, ProjectID: f.ProjectID,
		TaskDefaults: wave.TaskDefaults{Type: sms.TaskType(f.Type), VMTemplateID: f.TemplateID,
			Syncing: yesNo(f.Syncing), StartTargetServer: yesNo(f.StartTarget)},
		TimeZone: f.TimeZone, CutoverMode: wave.CutoverMode(f.CutoverMode), TestFirst: f.TestFirst,
		DependsOn: f.DependsOn}
	s.MaxConcurrent = num("max_concurrent", f.MaxConcurrent, false)
	s.MaxFailures = num("max_failures", f.MaxFailures, true)
	// Clamped: a value out of range stays out of range for Validate
	// without overflowing an int32.
	s.Budget.DefaultMbps = int32(min(max(num("bandwidth_budget.default_mbps", f.BudgetDefault, true), -1), wave.MaxBudgetMbps+1))
	if v := strings.TrimSpace(f.StartAt); v != "" {
		loc, err := wave.LoadZone(f.TimeZone)
		if err != nil {
			loc = time.UTC // Validate names the zone's problem
		}
		at, perr := time.ParseInLocation("2006-01-02T15:04", v, loc)
		if perr != nil {
			at, perr = time.ParseInLocation("2006-01-02T15:04:05", v, loc)
		}
		if perr != nil {
			ps = append(ps, problem{"start_at", "must be a date and time (YYYY-MM-DDTHH:MM)"})
		} else {
			s.StartAt = &at
		}
	}
	days := func(ds []string) []wave.Weekday {
		var out []wave.Weekday
		for _, d := range ds {
			out = append(out, wave.Weekday(d))
		}
		return out
	}
	var budget, cutover []windowRow
	for _, r := range f.Budget {
		if r.blank() {
			continue
		}
		i := len(budget)
		budget = append(budget, r)
		s.Budget.Windows = append(s.Budget.Windows, wave.TimeWindow{Start: strings.TrimSpace(r.Start), End: strings.TrimSpace(r.End),
			Weekdays: days(r.Days), Mbps: int32(min(max(num(fmt.Sprintf("bandwidth_budget.windows[%d].mbps", i), r.Mbps, false), -1), wave.MaxBudgetMbps+1))})
	}
	for _, r := range f.Cutover {
		if r.blank() {
			continue
		}
		cutover = append(cutover, r)
		s.CutoverWindows = append(s.CutoverWindows, wave.TimeWindow{Start: strings.TrimSpace(r.Start), End: strings.TrimSpace(r.End),
			Weekdays: days(r.Days)})
	}
	f.Budget = pad(budget, budgetRows, budgetRows)
	f.Cutover = pad(cutover, minCutoverRows, wave.MaxCutoverWindows)
	for _, id := range f.Sources {
		s.Members = append(s.Members, wave.Member{SourceID: id})
	}
	return s, ps
}

// pad fills rows with blank ones: at least least rows, one blank after the
// last used one when there is room, at most most.
func pad(rows []windowRow, least, most int) []windowRow {
	n := max(least, min(len(rows)+1, most))
	for len(rows) < n {
		rows = append(rows, windowRow{})
	}
	return rows
}

func yesNo(v string) *bool {
	switch v {
	case "yes":
		return new(true)
	case "no":
		return new(false)
	}
	return nil
}

func fromBool(b *bool) string {
	if b == nil {
		return ""
	}
	if *b {
		return "yes"
	}
	return "no"
}

// formOf is a stored wave as its edit form.
func formOf(w *store.Wave) waveForm {
	f := waveForm{Name: w.Name, Description: w.Description, ProjectID: w.MigProjectID, Type: string(w.TaskDefaults.Type),
		TemplateID: w.TaskDefaults.VMTemplateID, Syncing: fromBool(w.TaskDefaults.Syncing),
		StartTarget: fromBool(w.TaskDefaults.StartTargetServer), TimeZone: w.TimeZone,
		MaxConcurrent: strconv.Itoa(w.MaxConcurrent), MaxFailures: strconv.Itoa(w.MaxFailures),
		BudgetDefault: strconv.Itoa(int(w.Budget.DefaultMbps)), CutoverMode: string(w.CutoverMode),
		DependsOn: w.DependsOn, TestFirst: w.TestFirst}
	if w.StartAt != nil {
		loc, err := wave.LoadZone(w.TimeZone)
		if err != nil {
			loc = time.UTC
		}
		f.StartAt = w.StartAt.In(loc).Format("2006-01-02T15:04")
	}
	row := func(tw wave.TimeWindow) windowRow {
		r := windowRow{Start: tw.Start, End: tw.End}
		if tw.Mbps != 0 {
			r.Mbps = strconv.Itoa(int(tw.Mbps))
		}
		for _, d := range tw.Weekdays {
			r.Days = append(r.Days, string(d))
		}
		return r
	}
	var b, cw []windowRow
	for _, tw := range w.Budget.Windows {
		b = append(b, row(tw))
	}
	for _, tw := range w.CutoverWindows {
		cw = append(cw, row(tw))
	}
	f.Budget = pad(b, budgetRows, budgetRows)
	f.Cutover = pad(cw, minCutoverRows, wave.MaxCutoverWindows)
	return f
}

// fieldPath matches an API field path such as
// "bandwidth_budget.windows[1].end".
var fieldPath = regexp.MustCompile(`^[a-z_]+(\[\d+\])?(\.[a-z_]+(\[\d+\])?)*$`)

// waveErrors places a wave error's problems next to their fields (each
// details entry is "field: message" under its own code), a CSV file's bad
// rows ("line N: ...") in rows, the rest in general. ok is false for an
// error that is not the caller's.
func waveErrors(err error) (fields map[string]string, general, rows []string, ok bool) {
	e, isSMS := smserr.As(err)
	if !isSMS || e.Status >= 500 {
		return nil, nil, nil, false
	}
	fields = map[string]string{}
	put := func(field, msg string) {
		if prev, dup := fields[field]; dup {
			fields[field] = prev + "; " + msg
		} else {
			fields[field] = msg
		}
	}
	// Codes whose parameter is a value, not a field: the field is known.
	byCode := map[smserr.Code]string{wave.ErrNameExists.Code: "name", wave.ErrDependency.Code: "depends_on",
		wave.ErrDependencyCycle.Code: "depends_on", wave.ErrTooManyMembers.Code: "members"}
	if f, known := byCode[e.Code]; known {
		put(f, string(e.Code)+": "+e.Message)
		return fields, nil, nil, true
	}
	for _, d := range e.Details {
		if strings.HasPrefix(d.Message, "line ") || e.Code == wave.ErrCSVFile.Code || e.Code == wave.ErrCSVTooLarge.Code {
			rows = append(rows, d.Code+": "+d.Message)
			continue
		}
		if f, msg, cut := strings.Cut(d.Message, ": "); cut && fieldPath.MatchString(f) {
			put(f, d.Code+": "+msg)
			continue
		}
		general = append(general, d.Code+": "+d.Message)
	}
	if len(e.Details) == 0 {
		if e.Code == wave.ErrCSVFile.Code || e.Code == wave.ErrCSVTooLarge.Code || e.Code == wave.ErrCSVColumn.Code {
			rows = append(rows, string(e.Code)+": "+e.Message)
		} else {
			general = append(general, string(e.Code)+": "+e.Message)
		}
	}
	return fields, general, rows, true
}

// errsUnder joins the errors of field and everything under it (a window
// row's start, end, weekdays and mbps).
func errsUnder(errs map[string]string, field string) string {
	var out []string
	for k, v := range errs {
		if k == field || strings.HasPrefix(k, field+".") || strings.HasPrefix(k, field+"[") {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// fill loads the pickers' choices and, for a new wave, the filtered
// sources table.
func (k *Console) fill(c *gin.Context, s *session, p *waveFormPage, pick bool) error {
	ctx, t := c.Request.Context(), s.principal.Tenant()
	var err error
	if p.Projects, _, err = k.d.Store.MigProjects(ctx, t, store.Page{Limit: 1000}); err != nil {
		return err
	}
	if p.Templates, _, err = k.d.Store.Templates(ctx, t, store.TemplateFilter{}, store.Page{Limit: 200}); err != nil {
		return err
	}
	if p.Waves, _, err = k.d.Store.ListWaves(ctx, t, store.WaveFilter{}, store.Page{Limit: 200}); err != nil {
		return err
	}
	p.Zones, p.Days, p.States = zones, waveDays, sms.SourceStates
	if !pick {
		return nil
	}
	p.Filter = store.SourceFilter{State: formOrQuery(c, "f_state"), MigProjectID: formOrQuery(c, "f_project"),
		Name: strings.TrimSpace(formOrQuery(c, "f_name"))}
	p.Pick, p.PickTotal, err = k.d.Store.SourceRows(ctx, t, p.Filter, store.Page{Limit: pickLimit})
	return err
}

func formOrQuery(c *gin.Context, name string) string {
	if c.Request.Method == http.MethodPost {
		return c.PostForm(name)
	}
	return c.Query(name)
}

// newWave is the create form; POSTed by its filter button, it keeps what
// was typed and lists the filtered sources.
func (k *Console) newWave(c *gin.Context) {
	s := mustSession(c)
	p := waveFormPage{FormID: secret.RandomString(24, secret.AlphaNumeric)}
	if c.Request.Method == http.MethodPost {
		if err := c.Request.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			k.uploadFail(c, err)
			return
		}
		p.Form = readWaveForm(c.PostForm, c.PostFormArray)
		p.FormID = c.PostForm("form_id")
		p.Form.Budget = pad(nonBlank(p.Form.Budget), budgetRows, budgetRows)
		p.Form.Cutover = pad(nonBlank(p.Form.Cutover), minCutoverRows, wave.MaxCutoverWindows)
	} else {
		p.Form = waveForm{MaxConcurrent: "5", MaxFailures: "0", BudgetDefault: "0", TimeZone: "UTC",
			CutoverMode: string(wave.CutoverAuto), Budget: pad(nil, budgetRows, budgetRows),
			Cutover: pad(nil, minCutoverRows, wave.MaxCutoverWindows)}
	}
	if err := k.fill(c, s, &p, true); err != nil {
		k.fail(c, err)
		return
	}
	if p.Form.ProjectID == "" {
		for _, mp := range p.Projects {
			if mp.IsDefault {
				p.Form.ProjectID = mp.ID
			}
		}
	}
	k.render(c, http.StatusOK, "wave_form", s, p)
}

func nonBlank(rows []windowRow) []windowRow {
	var out []windowRow
	for _, r := range rows {
		if !r.blank() {
			out = append(out, r)
		}
	}
	return out
}

// uploadFail answers a form body that could not be read: too large (the
// reader's limit) or broken.
func (k *Console) uploadFail(c *gin.Context, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		k.errorPage(c, http.StatusRequestEntityTooLarge, "The file is too large", tooLargeMsg())
		return
	}
	k.errorPage(c, http.StatusBadRequest, "The form cannot be read",
		string(wave.ErrCSVFile.Code)+": "+wave.ErrCSVFile.New("the upload is not a readable form").Message)
}

// uploaded reads the form's "file" part (nil when none was chosen). A file
// over the API's limit is refused here; its content is the API's to judge
// (binary junk, bad rows).
func uploaded(c *gin.Context) ([]byte, error) {
	fh, err := c.FormFile("file")
	if errors.Is(err, http.ErrMissingFile) || (err == nil && fh.Size == 0 && fh.Filename == "") {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if fh.Size > wave.MaxCSVBytes {
		return nil, wave.ErrCSVTooLarge.New(fmt.Sprintf("%s is %d KiB, at most %d KiB", fh.Filename, fh.Size>>10, wave.MaxCSVBytes>>10))
	}
	f, err := fh.Open()
	if err != nil {
		return nil, err
	}
	defer func(f multipart.File) { _ = f.Close() }(f)
	return io.ReadAll(io.LimitReader(f, wave.MaxCSVBytes+1))
}

func (k *Console) createWave(c *gin.Context) {
	s := mustSession(c)
	if !k.wavesReady(c) {
		return
	}
	if err := c.Request.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		k.uploadFail(c, err)
		return
	}
	f := readWaveForm(c.PostForm, c.PostFormArray)
	formID := c.PostForm("form_id")
	key := s.principal.DomainID + "\x00w\x00" + formID
	if formID != "" {
		if id, first := k.forms.claim(key); !first {
			// The same form again (a double click, a resent POST): no
			// second wave; go where the first went.
			to := Prefix + "/waves"
			if id != "" {
				to += "/" + url.PathEscape(id)
			}
			c.Redirect(http.StatusSeeOther, to)
			return
		}
	}
	id, err := k.createFromForm(c, s, &f)
	if err != nil {
		k.forms.release(key)
		fe, general, rows, ok := waveErrors(err)
		if !ok {
			k.fail(c, err)
			return
		}
		p := waveFormPage{Form: f, FormID: formID, Errors: fe, General: general, Rows: rows}
		if err := k.fill(c, s, &p, true); err != nil {
			k.fail(c, err)
			return
		}
		k.render(c, http.StatusOK, "wave_form", s, p)
		return
	}
	k.forms.done(key, id)
	c.Redirect(http.StatusSeeOther, Prefix+"/waves/"+url.PathEscape(id))
}

func (k *Console) createFromForm(c *gin.Context, s *session, f *waveForm) (string, error) {
	spec, ps := f.spec()
	file, err := uploaded(c)
	if err != nil {
		return "", err
	}
	if len(ps) > 0 {
		return "", k.formProblems(ps, spec)
	}
	return k.d.Waves.CreateWave(c.Request.Context(), s.principal, spec, file)
}

// formProblems reports values that do not parse as the API reports a
// body's bad values, with what wave.Validate finds in the rest of spec (a
// field that did not parse is left out: its zero value is not what was
// typed).
func (k *Console) formProblems(ps []problem, spec wave.Spec) error {
	out := make([]wave.Problem, 0, len(ps))
	bad := map[string]bool{}
	for _, p := range ps {
		out = append(out, wave.Problem{Field: p.field, Code: wave.ErrInvalid.Code, Msg: p.msg})
		bad[p.field] = true
	}
	for _, p := range wave.Validate(spec, k.d.Now()) {
		if !bad[p.Field] {
			out = append(out, p)
		}
	}
	return wave.ProblemsError(out)
}

// ---- edit, delete

func (k *Console) editWave(c *gin.Context) {
	s := mustSession(c)
	if !k.wavesReady(c) {
		return
	}
	w, err := k.d.Waves.Wave(c.Request.Context(), s.principal, c.Param("id"))
	if err != nil {
		k.refused(c, "The wave cannot be read", err)
		return
	}
	p := waveFormPage{ID: w.ID, Form: formOf(w)}
	if !w.State.Editable() {
		p.General = []string{string(wave.ErrNotEditable.Code) + ": " + wave.ErrNotEditable.New(string(w.State)).Message}
	}
	if err := k.fill(c, s, &p, false); err != nil {
		k.fail(c, err)
		return
	}
	k.render(c, http.StatusOK, "wave_form", s, p)
}

func (k *Console) updateWave(c *gin.Context) {
	s := mustSession(c)
	if !k.wavesReady(c) {
		return
	}
	id := c.Param("id")
	f := readWaveForm(c.PostForm, c.PostFormArray)
	f.Sources = nil // members change on the wave page
	spec, ps := f.spec()
	var err error
	if len(ps) > 0 {
		// The wave must exist before its form's problems are shown.
		if _, err = k.d.Waves.Wave(c.Request.Context(), s.principal, id); err == nil {
			err = k.formProblems(ps, spec)
		}
	} else {
		err = k.d.Waves.UpdateWave(c.Request.Context(), s.principal, id, spec)
	}
	if err != nil {
		if isNotFound(err) {
			k.NotFound(c)
			return
		}
		fe, general, _, ok := waveErrors(err)
		if !ok {
			k.fail(c, err)
			return
		}
		p := waveFormPage{ID: id, Form: f, Errors: fe, General: general}
		if err := k.fill(c, s, &p, false); err != nil {
			k.fail(c, err)
			return
		}
		k.render(c, http.StatusOK, "wave_form", s, p)
		return
	}
	c.Redirect(http.StatusSeeOther, Prefix+"/waves/"+url.PathEscape(id))
}

func (k *Console) deleteWave(c *gin.Context) {
	s := mustSession(c)
	if !k.wavesReady(c) {
		return
	}
	if err := k.d.Waves.DeleteWave(c.Request.Context(), s.principal, c.Param("id")); err != nil {
		k.refused(c, "The wave was not deleted", err)
		return
	}
	c.Redirect(http.StatusSeeOther, Prefix+"/waves")
}

// addWaveMembers adds the rows of an uploaded CSV file (and any picked
// source ids) to a wave: all or none, bad rows listed by line.
func (k *Console) addWaveMembers(c *gin.Context) {
	s := mustSession(c)
	if !k.wavesReady(c) {
		return
	}
	if err := c.Request.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		k.uploadFail(c, err)
		return
	}
	id := c.Param("id")
	file, err := uploaded(c)
	if err == nil && file == nil && len(c.PostFormArray("source")) == 0 {
		err = wave.ErrCSVFile.New("choose a file")
	}
	if err == nil {
		_, err = k.d.Waves.AddWaveMembers(c.Request.Context(), s.principal, id, c.PostFormArray("source"), file)
	}
	if err != nil {
		if isNotFound(err) {
			k.NotFound(c)
			return
		}
		_, general, rows, ok := waveErrors(err)
		if !ok {
			k.fail(c, err)
			return
		}
		k.renderWave(c, s, id, http.StatusBadRequest, append(general, rows...))
		return
	}
	c.Redirect(http.StatusSeeOther, Prefix+"/waves/"+url.PathEscape(id))
}

// ---- the wave page

// waveButton is a wave action as the page shows it: disabled, with the
// reason, when the wave's state refuses it (wave.CheckAction, the rule
// the API and the workflow apply).
type waveButton struct {
	Op, Label, Reason, Confirm string
}

var waveButtons = []struct {
	op             wave.Action
	label, confirm string
}{
	{wave.ActionSchedule, "Schedule", ""},
	{wave.ActionStart, "Start now", ""},
	{wave.ActionPause, "Pause", ""},
	{wave.ActionResume, "Resume", ""},
	{wave.ActionApproveTest, "Approve test", ""},
	{wave.ActionApproveCutover, "Approve cutover", "Approve the cutover? Each member's final sync runs and its target server is launched."},
	{wave.ActionRetryFailed, "Retry failed", ""},
	{wave.ActionCancel, "Cancel wave", "Cancel this wave? Members not yet cut over stop, and the wave cannot be resumed."},
}

func buttonsFor(st wave.WaveState, failed int) []waveButton {
	out := make([]waveButton, 0, len(waveButtons))
	for _, b := range waveButtons {
		err := wave.CheckAction(st, b.op)
		if err == nil && b.op == wave.ActionRetryFailed {
			err = wave.CheckRetry(st, failed)
		}
		reason := ""
		if err != nil {
			reason = err.Error()
			if e, ok := smserr.As(err); ok {
				reason = string(e.Code) + ": " + e.Message
			}
		}
		out = append(out, waveButton{Op: string(b.op), Label: b.label, Reason: reason, Confirm: b.confirm})
	}
	return out
}

func countFailed(ms []WaveMember) int {
	n := 0
	for _, m := range ms {
		if m.State == wave.MemberFailed {
			n++
		}
	}
	return n
}

// groupRows bounds the rows a state's group shows: a page of a
// 10,000-member wave stays a page (the report lists everyone).
const groupRows = 200

// memberGroup is the members in one state: the first groupRows of them,
// and how many more there are.
type memberGroup struct {
	State   wave.MemberState
	Members []WaveMember
	Total   int
	More    int
}

func groupMembers(ms []WaveMember) []memberGroup {
	by := map[wave.MemberState][]WaveMember{}
	for _, m := range ms {
		by[m.State] = append(by[m.State], m)
	}
	group := func(st wave.MemberState) memberGroup {
		ms := by[st]
		g := memberGroup{State: st, Members: ms, Total: len(ms)}
		if len(ms) > groupRows {
			g.Members, g.More = ms[:groupRows], len(ms)-groupRows
		}
		return g
	}
	var out []memberGroup
	for _, st := range wave.MemberStates {
		if len(by[st]) > 0 {
			out = append(out, group(st))
			delete(by, st)
		}
	}
	// A state this console does not know (a newer server's) comes last.
	for _, st := range slices.Sorted(maps.Keys(by)) {
		out = append(out, group(st))
	}
	return out
}

func (k *Console) waveData(c *gin.Context, s *session, id string) (gin.H, error) {
	ctx := c.Request.Context()
	d, err := k.d.Waves.WaveDetail(ctx, s.principal, id)
	if err != nil {
		return nil, err
	}
	w := d.Wave
	now := k.d.Now()
	since := w.CreatedAt
	if w.StartedAt != nil {
		since = *w.StartedAt
	}
	end := now
	if w.FinishedAt != nil && w.FinishedAt.Before(now) {
		end = *w.FinishedAt
	}
	bucket := max(end.Sub(since).Milliseconds()/chartPoints, store.SpeedSampleEvery)
	pts, err := k.d.Waves.WaveThroughput(ctx, s.principal, id, since.UnixMilli(), bucket)
	if err != nil {
		return nil, err
	}
	// A finished wave changes no more: its page stops polling.
	tick := waveTick
	if w.State.Terminal() {
		tick = ""
	}
	project := w.MigProjectID
	if mp, err := k.d.Store.MigProject(ctx, s.principal.Tenant(), w.MigProjectID); err == nil {
		project = mp.Name
	}
	return gin.H{"Wave": w, "Detail": d, "Project": project, "Groups": groupMembers(d.Members),
		"Buttons": buttonsFor(w.State, countFailed(d.Members)),
		"Chart":   waveChart(pts, w, end), "Editable": w.State.Editable(), "Deletable": !w.State.Running(),
		"Tick": tick}, nil
}

func (k *Console) wavePage(c *gin.Context) {
	s := mustSession(c)
	if !k.wavesReady(c) {
		return
	}
	k.renderWave(c, s, c.Param("id"), http.StatusOK, nil)
}

// renderWave shows the wave page, with alerts (a refused upload's rows).
func (k *Console) renderWave(c *gin.Context, s *session, id string, status int, alerts []string) {
	data, err := k.waveData(c, s, id)
	if err != nil {
		k.refused(c, "The wave cannot be read", err)
		return
	}
	data["Alerts"] = alerts
	k.render(c, status, "wave", s, data)
}

// waveLive is the wave page's one polled fragment: the state, the buttons,
// the totals, the chart and every member's bar in one answer, so a page
// of 200 members makes one request a tick; with it, out of band, the
// page's other parts the state decides (live-oob), which a page left open
// while its wave finished would otherwise show as they were.
func (k *Console) waveLive(c *gin.Context) {
	s := mustSession(c)
	if !k.wavesReady(c) {
		return
	}
	data, err := k.waveData(c, s, c.Param("id"))
	if err != nil {
		k.refused(c, "The wave cannot be read", err)
		return
	}
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(http.StatusOK)
	v := view{Session: s, CSRF: s.data.CSRF, Data: data}
	for _, part := range []string{"live", "live-oob"} {
		if err := k.pages["wave"].ExecuteTemplate(c.Writer, part, v); err != nil {
			k.d.Logger.ErrorContext(c.Request.Context(), "console render", "page", "wave "+part, "err", err)
			return
		}
	}
}

func (k *Console) waveAction(c *gin.Context) {
	s := mustSession(c)
	if !k.wavesReady(c) {
		return
	}
	id, op := c.Param("id"), wave.Action(c.PostForm("operation"))
	if !slices.Contains(wave.Actions, op) {
		k.errorPage(c, http.StatusBadRequest, "Unknown action",
			string(wave.ErrInvalid.Code)+": "+wave.ErrInvalid.New("operation").Message)
		return
	}
	if err := k.d.Waves.WaveAction(c.Request.Context(), s.principal, id, op); err != nil {
		k.refused(c, "The wave refused "+string(op), err)
		return
	}
	c.Redirect(http.StatusSeeOther, Prefix+"/waves/"+url.PathEscape(id))
}

func (k *Console) wavePreflight(c *gin.Context) {
	s := mustSession(c)
	if !k.wavesReady(c) {
		return
	}
	ctx := c.Request.Context()
	w, err := k.d.Waves.Wave(ctx, s.principal, c.Param("id"))
	if err != nil {
		k.refused(c, "The wave cannot be read", err)
		return
	}
	pf, err := k.d.Waves.WavePreflight(ctx, s.principal, w.ID)
	if err != nil {
		k.refused(c, "Preflight failed", err)
		return
	}
	k.render(c, http.StatusOK, "wave_preflight", s, gin.H{"Wave": w, "Preflight": pf})
}

func (k *Console) waveReport(c *gin.Context) {
	s := mustSession(c)
	if !k.wavesReady(c) {
		return
	}
	ctx := c.Request.Context()
	w, err := k.d.Waves.Wave(ctx, s.principal, c.Param("id"))
	if err != nil {
		k.refused(c, "The wave cannot be read", err)
		return
	}
	r, err := k.d.Waves.WaveReport(ctx, s.principal, w.ID)
	if err != nil {
		k.refused(c, "The report cannot be made", err)
		return
	}
	k.render(c, http.StatusOK, "wave_report", s, gin.H{"Wave": w, "Report": r})
}

// waveReportCSV downloads the report; the session's tenant only.
func (k *Console) waveReportCSV(c *gin.Context) {
	s := mustSession(c)
	if !k.wavesReady(c) {
		return
	}
	r, err := k.d.Waves.WaveReport(c.Request.Context(), s.principal, c.Param("id"))
	if err != nil {
		k.refused(c, "The report cannot be made", err)
		return
	}
	c.Header("Content-Disposition", `attachment; filename="wave-`+c.Param("id")+`-report.csv"`)
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, "text/csv; charset=utf-8", r.CSV)
}

// ---- the chart

// waveChart draws the wave's summed throughput (Mbit/s) against its
// bandwidth budget as a dashed step line (wave.BudgetAt at each point,
// read in the wave's zone), as inline SVG like the task's speed chart.
func waveChart(pts []store.ThroughputPoint, w *store.Wave, end time.Time) template.HTML {
	if len(pts) == 0 {
		return template.HTML(`<p class="empty">No throughput yet: it comes with the members' progress reports.</p>`)
	}
	loc, err := wave.LoadZone(w.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	budgets := make([]int32, len(pts))
	top := 1.0
	for i, p := range pts {
		budgets[i], _ = wave.BudgetAt(w.Budget, loc, time.UnixMilli(p.AtMs))
		top = max(top, p.Mbps, float64(budgets[i]))
	}
	top *= 1.1
	t0, t1 := pts[0].AtMs, max(pts[len(pts)-1].AtMs, min(end.UnixMilli(), pts[len(pts)-1].AtMs+store.SpeedSampleEvery*chartPoints))
	span := max(t1-t0, 1)
	x := func(at int64) float64 { return padL + (chartW-padL)*float64(at-t0)/float64(span) }
	y := func(v float64) float64 { return (chartH - padB) * (1 - v/top) }
	var speed, limit strings.Builder
	prev := int32(-1)
	for i, p := range pts {
		fmt.Fprintf(&speed, "%.0f,%.0f ", x(p.AtMs), y(p.Mbps))
		if b := budgets[i]; b != prev {
			if prev > 0 {
				fmt.Fprintf(&limit, "%.0f,%.0f ", x(p.AtMs), y(float64(prev)))
			}
			if b > 0 {
				fmt.Fprintf(&limit, "%.0f,%.0f ", x(p.AtMs), y(float64(b)))
			} else if limit.Len() > 0 {
				limit.WriteString("| ")
			}
			prev = b
		}
	}
	if prev > 0 {
		fmt.Fprintf(&limit, "%.0f,%.0f ", x(t1), y(float64(prev)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="the wave's throughput and its budget, Mbit/s">`, chartW, chartH)
	fmt.Fprintf(&b, `<line class="axis" x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f"/>`, padL, chartH-padB, chartW, chartH-padB)
	fmt.Fprintf(&b, `<text x="%.0f" y="12" class="tick" text-anchor="end">%.0f</text>`, padL-6, top)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="tick" text-anchor="end">0</text>`, padL-6, chartH-padB)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="tick">%s</text>`, padL, chartH-4, time.UnixMilli(t0).In(loc).Format("Jan 2 15:04"))
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="tick" text-anchor="end">%s</text>`, chartW, chartH-4, time.UnixMilli(t1).In(loc).Format("15:04 MST"))
	// A stretch without a budget (0: unlimited) breaks the budget line.
	for _, seg := range strings.Split(limit.String(), "| ") {
		if seg = strings.TrimSpace(seg); strings.Count(seg, " ") >= 1 {
			fmt.Fprintf(&b, `<polyline class="limit" points="%s"/>`, seg)
		}
	}
	fmt.Fprintf(&b, `<polyline class="speed" points="%s"/>`, strings.TrimSpace(speed.String()))
	b.WriteString(`</svg><p class="legend"><span class="k speed"></span>wave throughput, Mbit/s <span class="k limit"></span>bandwidth budget</p>`)
	return template.HTML(b.String()) //nolint:gosec // numbers and fixed text only, formatted above
}
