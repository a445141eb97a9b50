package web

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/smsflow/smsflow/internal/ptr"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/wave"
)

// WaveStore is what the wave handlers need of the database.
type WaveStore interface {
	CreateWave(ctx context.Context, t store.Tenant, w *store.Wave, ms []store.WaveMember) error
	Wave(ctx context.Context, t store.Tenant, id string) (*store.Wave, error)
	ListWaves(ctx context.Context, t store.Tenant, f store.WaveFilter, pg store.Page) ([]store.Wave, int64, error)
	UpdateWave(ctx context.Context, t store.Tenant, id string, fn func(tx *gorm.DB, w *store.Wave) error) error
	SetWaveState(ctx context.Context, t store.Tenant, id string, state wave.WaveState, reason string) error
	DeleteWave(ctx context.Context, t store.Tenant, id string) error
	AddWaveMembers(ctx context.Context, t store.Tenant, waveID string, ms []store.WaveMember) error
	RemoveWaveMembers(ctx context.Context, t store.Tenant, waveID string, ids []string) error
	WaveMembers(ctx context.Context, t store.Tenant, waveID string) ([]store.WaveMember, error)
	WaveMembersBrief(ctx context.Context, t store.Tenant, waveID string) ([]store.WaveMember, error)
	UpdateWaveMember(ctx context.Context, t store.Tenant, waveID, memberID string, fn func(m *store.WaveMember) error) error
	ActiveWavesOfSources(ctx context.Context, t store.Tenant, sourceIDs []string, except string) (map[string]string, error)
	WaveDependencies(ctx context.Context, t store.Tenant) (map[string]string, error)
	WaveTasks(ctx context.Context, t store.Tenant, waveID string) (map[string]store.WaveTask, error)
	WaveTaskProgress(ctx context.Context, t store.Tenant, waveID string) (map[string]store.WaveTask, error)
	FindSources(ctx context.Context, t store.Tenant, ids, names, ips []string) ([]store.SourceRef, error)
	// WaveThroughput is the console's wave chart.
	WaveThroughput(ctx context.Context, t store.Tenant, waveID string, sinceMs, bucketMs int64) ([]store.ThroughputPoint, error)
}

// WaveEngine runs waves on Temporal (engine.Engine's wave methods, adapted
// in cmd/smsflow). Refusals of the running workflow come back as
// *smserr.Error.
type WaveEngine interface {
	// ScheduleWave creates or moves the wave's Temporal Schedule to
	// w.StartAt.
	ScheduleWave(ctx context.Context, t store.Tenant, w *store.Wave) error
	// UnscheduleWave deletes the schedule (none is fine).
	UnscheduleWave(ctx context.Context, waveID string) error
	// PauseWaveSchedule pauses or unpauses a scheduled wave's schedule.
	PauseWaveSchedule(ctx context.Context, waveID string, paused bool) error
	// StartWave starts the wave's workflow now.
	StartWave(ctx context.Context, t store.Tenant, w *store.Wave) error
	// WaveAction asks the running workflow to pause, resume, cancel,
	// approve or retry.
	WaveAction(ctx context.Context, waveID string, a wave.Action) error
	// WaveRunURL is the wave's run in the Temporal UI ("" when none).
	WaveRunURL(waveID string) string
}

// CapacityChecker tells how many bytes the targets' storage can still
// take (the local provider's free space); a nil one skips the check.
type CapacityChecker interface {
	FreeBytes(ctx context.Context) (int64, error)
}

type waveHandlers struct {
	store        Store
	engine       WaveEngine
	capacity     CapacityChecker
	tasks        taskHandlers
	agentTimeout time.Duration
	now          func() time.Time
	log          *slog.Logger
}

func waveNotFound(id string) error {
	return wave.ErrNotFound.New(id).WithStatus(http.StatusNotFound).WithDetail("no such wave: " + id)
}

// waveError maps the store's refusals to wave codes.
func waveError(err error, id string) error {
	var inWave *store.SourceInWaveError
	var st *store.WaveStateError
	var busy *store.MemberBusyError
	var miss *store.MissingError
	switch {
	case errors.As(err, &inWave):
		return wave.ErrMemberInWave.New(inWave.SourceID, inWave.WaveID)
	case errors.As(err, &st):
		switch {
		case strings.HasPrefix(st.Op, "be deleted"):
			return wave.ErrRunning.New(id).WithDetail("state " + string(st.State))
		case strings.HasPrefix(st.Op, "change"):
			return wave.ErrNotEditable.New(string(st.State))
		}
		return wave.ErrBadTransition.New(string(st.State), st.Op)
	case errors.As(err, &busy):
		return wave.ErrMemberBusy.New(busy.ID, string(busy.State))
	case errors.As(err, &miss):
		e := wave.ErrUnknownSource.New(strings.Join(miss.IDs, ", "))
		return e
	case errors.Is(err, store.ErrLimit):
		return wave.ErrTooManyMembers.New(itoa(wave.MaxMembers))
	case errors.Is(err, store.ErrNotFound):
		return waveNotFound(id)
	}
	return err
}

// ---- bodies

// decodeSpec reads POST /v3/waves (a wave.Spec); an absent cutover_mode is auto.
func decodeSpec(c *gin.Context, into *wave.Spec) error {
	if err := bindJSON(c, into); err != nil {
		return err
	}
	if into.CutoverMode == "" {
		into.CutoverMode = wave.CutoverAuto
	}
	return nil
}

// ---- create

// create: POST /v3/waves → 200 {"id"}. The wave starts as DRAFT.
func (h waveHandlers) create(c *gin.Context) {
	var spec wave.Spec
	if err := decodeSpec(c, &spec); err != nil {
		fail(c, err)
		return
	}
	ctx := c.Request.Context()
	id, n, err := h.createWave(ctx, mustPrincipal(c).Tenant(), spec, nil)
	if err != nil {
		fail(c, err)
		return
	}
	logFor(c).InfoContext(ctx, "wave created", "wave", id, "members", n)
	ok(c, gin.H{"id": id})
}

// createWave validates spec, checks its references, resolves its members
// (plus extra, already resolved: a console form's CSV file; a source in
// both counts once) and stores the wave as DRAFT. It returns the wave's id
// and its member count. The API and the console create through it.
func (h waveHandlers) createWave(ctx context.Context, t store.Tenant, spec wave.Spec, extra []store.WaveMember) (string, int, error) {
	if ps := wave.Validate(spec, h.now()); len(ps) > 0 {
		return "", 0, wave.ProblemsError(ps)
	}
	id := uuid.NewString()
	if err := h.checkRefs(ctx, t, id, spec); err != nil {
		return "", 0, err
	}
	ms, err := h.resolveJSON(ctx, t, id, spec.Members)
	if err != nil {
		return "", 0, err
	}
	have := map[string]bool{}
	for _, m := range ms {
		have[m.SourceID] = true
	}
	for _, m := range extra {
		if !have[m.SourceID] {
			have[m.SourceID] = true
			ms = append(ms, m)
		}
	}
	if len(ms) > wave.MaxMembers {
		return "", 0, wave.ErrTooManyMembers.New(itoa(wave.MaxMembers))
	}
	w := &store.Wave{ID: id}
	w.SetSpec(spec)
	if err := h.store.CreateWave(ctx, t, w, ms); err != nil {
		if errors.Is(err, store.ErrDuplicate) {
			return "", 0, wave.ErrNameExists.New(spec.Name)
		}
		if errors.Is(err, store.ErrNotFound) {
			return "", 0, projectProblem(spec.ProjectID)
		}
		return "", 0, waveError(err, id)
	}
	return id, len(ms), nil
}

func dotted(col string) string {
	if col == "" {
		return ""
	}
	return "." + col
}

func projectProblem(id string) error {
	return wave.ProblemsError([]wave.Problem{{Field: "project_id", Code: wave.ErrInvalid.Code,
		Msg: "migration project " + id + " does not exist"}})
}

// checkRefs checks what Validate leaves to the store: the migration
// project is the caller's, depends_on names a wave of the caller's and
// makes no cycle.
func (h waveHandlers) checkRefs(ctx context.Context, t store.Tenant, id string, spec wave.Spec) error {
	if _, err := h.store.MigProject(ctx, t, spec.ProjectID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return projectProblem(spec.ProjectID)
		}
		return err
	}
	if spec.DependsOn == "" {
		return nil
	}
	if spec.DependsOn == id {
		return wave.ErrDependencyCycle.New(id + " → " + id)
	}
	if _, err := h.store.Wave(ctx, t, spec.DependsOn); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return wave.ErrDependency.New(spec.DependsOn)
		}
		return err
	}
	deps, err := h.store.WaveDependencies(ctx, t)
	if err != nil {
		return err
	}
	if cyc := wave.FindCycle(id, spec.DependsOn, deps); cyc != nil {
		return wave.ErrDependencyCycle.New(strings.Join(cyc, " → "))
	}
	return nil
}

// memberError is a member that cannot be resolved: its index in the list
// (or its CSV line), the column, the code and a sentence.
type memberError struct {
	index  int
	column string
	code   smserr.Code
	msg    string
}

// resolve turns planned members into rows: each names exactly one of the
// caller's sources (by id, name or IP; all it gives must agree), none
// twice, none in another active wave than waveID. Problems are returned,
// one per member at most, in member order.
func (h waveHandlers) resolve(ctx context.Context, t store.Tenant, waveID string, ms []wave.Member) ([]store.WaveMember, []memberError, error) {
	if len(ms) == 0 {
		return nil, nil, nil
	}
	var ids, names, ips []string
	for _, m := range ms {
		if m.SourceID != "" {
			ids = append(ids, m.SourceID)
		}
		if m.Name != "" {
			names = append(names, m.Name)
		}
		if m.IP != "" {
			ips = append(ips, m.IP)
		}
	}
	srcs, err := h.store.FindSources(ctx, t, ids, names, ips)
	if err != nil {
		return nil, nil, err
	}
	byID := map[string]store.SourceRef{}
	byName := map[string][]string{}
	byIP := map[string][]string{}
	for _, s := range srcs {
		byID[s.ID] = s
		byName[s.Name] = append(byName[s.Name], s.ID)
		byIP[s.IP] = append(byIP[s.IP], s.ID)
	}
	var errs []memberError
	out := make([]store.WaveMember, 0, len(ms))
	at := map[string]int{}
	for i, m := range ms {
		var cands []struct{ col, val, id string }
		var bad *memberError
		one := func(col, val string, found []string) {
			switch len(found) {
			case 0:
				bad = &memberError{i, col, wave.ErrUnknownSource.Code, fmt.Sprintf("no source server with %s %q", col, val)}
			case 1:
				cands = append(cands, struct{ col, val, id string }{col, val, found[0]})
			default:
				bad = &memberError{i, col, wave.ErrUnknownSource.Code,
					fmt.Sprintf("%d source servers have %s %q: name it by source_id", len(found), col, val)}
			}
		}
		if m.SourceID != "" {
			var found []string
			if _, ok := byID[m.SourceID]; ok {
				found = []string{m.SourceID}
			}
			one("source_id", m.SourceID, found)
		}
		if bad == nil && m.Name != "" {
			one("name", m.Name, byName[m.Name])
		}
		if bad == nil && m.IP != "" {
			one("ip", m.IP, byIP[m.IP])
		}
		if bad == nil && len(cands) == 0 {
			bad = &memberError{i, "", wave.ErrInvalid.Code, "needs source_id, name or ip"}
		}
		if bad == nil {
			for _, c := range cands[1:] {
				if c.id != cands[0].id {
					bad = &memberError{i, c.col, wave.ErrUnknownSource.Code,
						fmt.Sprintf("%s %q and %s %q are different source servers", cands[0].col, cands[0].val, c.col, c.val)}
					break
				}
			}
		}
		if bad == nil {
			sid := cands[0].id
			if j, dup := at[sid]; dup {
				bad = &memberError{i, "", wave.ErrDuplicateMember.Code, fmt.Sprintf("source server %s is listed already (member %d)", sid, j)}
			} else {
				at[sid] = i
			}
		}
		if bad != nil {
			errs = append(errs, *bad)
			continue
		}
		p := m.PriorityOf()
		out = append(out, store.WaveMember{ID: uuid.NewString(), SourceID: cands[0].id, TargetName: m.TargetName,
			TemplateID: m.TemplateID, DiskSizesGiB: m.DiskSizesGiB, Priority: p})
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	in, err := h.store.ActiveWavesOfSources(ctx, t, sourceIDsOf(out), waveID)
	if err != nil {
		return nil, nil, err
	}
	for i, m := range out {
		if w, ok := in[m.SourceID]; ok {
			errs = append(errs, memberError{i, "", wave.ErrMemberInWave.Code,
				fmt.Sprintf("source server %s belongs to active wave %s", m.SourceID, w)})
		}
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	return out, nil, nil
}

// resolveJSON is resolve for members given in a JSON body: the members'
// problems come back as one error that names each by its place
// (members[i].column).
func (h waveHandlers) resolveJSON(ctx context.Context, t store.Tenant, waveID string, ms []wave.Member) ([]store.WaveMember, error) {
	out, errs, err := h.resolve(ctx, t, waveID, ms)
	if err != nil || len(errs) == 0 {
		return out, err
	}
	ps := make([]wave.Problem, len(errs))
	for i, e := range errs {
		ps[i] = wave.Problem{Field: fmt.Sprintf("members[%d]", e.index) + dotted(e.column), Code: e.code, Msg: e.msg}
	}
	return nil, wave.ProblemsError(ps)
}

func sourceIDsOf(ms []store.WaveMember) []string {
	out := make([]string, len(ms))
	for i := range ms {
		out[i] = ms[i].SourceID
	}
	return out
}

// ---- list, show

// list: GET /v3/waves?name&state&project_id&limit&offset →
// {"count","waves"}.
func (h waveHandlers) list(c *gin.Context) {
	var v checks
	f := store.WaveFilter{Name: queryString(c, &v, "name", 255), MigProjectID: queryString(c, &v, "project_id", 64)}
	if s := queryString(c, &v, "state", 32); s != "" {
		f.State = wave.WaveState(s)
		if !f.State.Valid() {
			v.invalid("state", "must be one of the wave states")
		}
	}
	pg := v.page(c, 50, 100)
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	rows, total, err := h.store.ListWaves(c.Request.Context(), mustPrincipal(c).Tenant(), f, pg)
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]gin.H, len(rows))
	for i := range rows {
		out[i] = h.waveJSON(&rows[i])
	}
	ok(c, gin.H{"count": total, "waves": out})
}

func timeOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

// waveJSON is a wave as the list and show answer it.
func (h waveHandlers) waveJSON(w *store.Wave) gin.H {
	cw := w.CutoverWindows
	if cw == nil {
		cw = []wave.TimeWindow{}
	}
	out := gin.H{
		"id": w.ID, "name": w.Name, "description": w.Description, "project_id": w.MigProjectID,
		"task_defaults": w.TaskDefaults, "start_at": timeOrNil(w.StartAt), "max_concurrent": w.MaxConcurrent,
		"bandwidth_budget": w.Budget, "time_zone": w.TimeZone, "cutover_windows": cw, "cutover_mode": w.CutoverMode,
		"test_first": w.TestFirst, "max_failures": w.MaxFailures, "depends_on": w.DependsOn,
		"state": w.State, "state_reason": w.StateReason, "member_count": w.MemberCount, "done_count": w.DoneCount,
		"failed_count": w.FailedCount, "next_run_at": timeOrNil(w.NextRunAt), "started_at": timeOrNil(w.StartedAt),
		"finished_at": timeOrNil(w.FinishedAt), "created_at": w.CreatedAt.UTC().Format(time.RFC3339),
		"updated_at": w.UpdatedAt.UTC().Format(time.RFC3339),
	}
	if h.engine != nil && w.State.Running() {
		if u := h.engine.WaveRunURL(w.ID); u != "" {
			out["workflow_url"] = u
		}
	}
	return out
}

// memberView is one member with its task's progress and the estimates.
type memberView struct {
	m         *store.WaveMember
	task      *store.WaveTask
	done      int64
	total     int64
	speedMbps float64 // measured
	rateMbps  float64 // what the estimates assume
	est       wave.MemberEstimate
}

// view reads a wave's members and their tasks (two queries whatever the
// size) and works out each member's progress and estimates.
func (h waveHandlers) view(ctx context.Context, t store.Tenant, w *store.Wave, full bool) ([]memberView, error) {
	list, taskList := h.store.WaveMembersBrief, h.store.WaveTaskProgress
	if full {
		list, taskList = h.store.WaveMembers, h.store.WaveTasks
	}
	ms, err := list(ctx, t, w.ID)
	if err != nil {
		return nil, err
	}
	tasks, err := taskList(ctx, t, w.ID)
	if err != nil {
		return nil, err
	}
	now := h.now()
	out := make([]memberView, len(ms))
	for i := range ms {
		m := &ms[i]
		v := memberView{m: m, done: m.BytesMoved, total: m.BytesTotal, speedMbps: m.LastSpeedMbps}
		if m.TaskID != nil {
			if tk, ok := tasks[*m.TaskID]; ok {
				v.task = &tk
				if tk.Totalsize > 0 {
					v.done, v.total = tk.Replicatesize, tk.Totalsize
				}
				if v.speedMbps == 0 {
					v.speedMbps = tk.MigrateSpeed
				}
			}
		}
		v.rateMbps = v.speedMbps
		if m.ShareMbps > 0 && (v.speedMbps == 0 || v.speedMbps > float64(m.ShareMbps)) {
			v.rateMbps = float64(m.ShareMbps)
		}
		left := v.total - v.done
		if m.State.Synced() || left < 0 {
			left = 0
		}
		v.est = estimate(m, left, v.rateMbps, now)
		if left == 0 || v.total == 0 || m.State == wave.MemberPending || m.State.Terminal() || m.State == wave.MemberFailed {
			// Nothing copying: no copy end to show (a pending member's end
			// is the wave simulation's business).
			v.est.CopyEnd = nil
		}
		out[i] = v
	}
	return out, nil
}

// estimate is wave.EstimateMember over the churn the store measured when
// the samples came in (show does not decode every member's samples).
func estimate(m *store.WaveMember, left int64, mbps float64, now time.Time) wave.MemberEstimate {
	e := wave.MemberEstimate{ID: m.ID}
	if t, ok := wave.CopyEnd(left, mbps, now); ok {
		e.CopyEnd = &t
	}
	if c, ok := m.MeasuredChurn(); ok {
		e.ChurnBytesPerHour = &c.BytesPerHour
		e.NotConverging = !wave.Converging(c, mbps)
		if d, ok := wave.FinalPass(c, mbps); ok {
			s := d.Seconds()
			e.DowntimeSeconds = &s
		}
	}
	return e
}

func percent(done, total int64) float64 {
	if total <= 0 {
		return 0
	}
	p := float64(done) * 100 / float64(total)
	if p > 100 {
		p = 100
	}
	return float64(int(p*10)) / 10
}

// memberJSON is a member as show answers it.
type memberJSON struct {
	ID               string           `json:"id"`
	SourceID         string           `json:"source_id"`
	SourceName       string           `json:"source_name"`
	TargetName       string           `json:"target_name"`
	TemplateID       string           `json:"template_id"`
	DiskSizesGiB     []int64          `json:"disk_sizes_gib"`
	Priority         int32            `json:"priority"`
	State            wave.MemberState `json:"state"`
	FailedFrom       wave.MemberState `json:"failed_from,omitempty"`
	TaskID           *string          `json:"task_id"`
	TaskState        *sms.TaskState   `json:"task_state"`
	ErrorCode        string           `json:"error_code"`
	ErrorMsg         string           `json:"error_msg"`
	Percent          float64          `json:"percent"`
	BytesDone        int64            `json:"bytes_done"`
	BytesTotal       int64            `json:"bytes_total"`
	SpeedMbps        float64          `json:"speed_mbps"`
	ShareMbps        int32            `json:"share_mbps"`
	ETA              any              `json:"eta"`
	ExpectedDowntime *float64         `json:"expected_downtime_seconds"`
	ChurnBytesPerH   *float64         `json:"churn_bytes_per_hour"`
	NotConverging    bool             `json:"not_converging"`
	DowntimeSeconds  *float64         `json:"downtime_seconds"`
}

func (v memberView) json() memberJSON {
	m := v.m
	out := memberJSON{
		ID: m.ID, SourceID: m.SourceID, SourceName: m.SourceName, TargetName: m.TargetName,
		TemplateID: m.TemplateID, DiskSizesGiB: nonNilInts(m.DiskSizesGiB), Priority: m.Priority,
		State: m.State, TaskID: m.TaskID, ErrorCode: m.ErrorCode, ErrorMsg: m.ErrorMsg,
		Percent: percent(v.done, v.total), BytesDone: v.done, BytesTotal: v.total,
		SpeedMbps: v.speedMbps, ShareMbps: m.ShareMbps, ETA: timeOrNil(v.est.CopyEnd),
		ExpectedDowntime: v.est.DowntimeSeconds, ChurnBytesPerH: v.est.ChurnBytesPerHour,
		NotConverging: v.est.NotConverging, DowntimeSeconds: m.DowntimeSeconds,
	}
	if m.State == wave.MemberFailed {
		out.FailedFrom = m.FailedFrom
	}
	if v.task != nil {
		out.TaskState = &v.task.State
	}
	return out
}

func nonNilInts(s []int64) []int64 {
	if s == nil {
		return []int64{}
	}
	return s
}

// totals sums the members up and simulates the rest of the wave's copies
// for its ETA (nil when some member's size or rate is unknown).
func (h waveHandlers) totals(w *store.Wave, vs []memberView) gin.H {
	byState := map[wave.MemberState]int{}
	for _, s := range wave.MemberStates {
		byState[s] = 0
	}
	var done, total int64
	var downtime *float64
	notConverging := 0
	var items []wave.CopyItem
	known := true
	for _, v := range vs {
		byState[v.m.State]++
		done += v.done
		total += v.total
		if d := v.est.DowntimeSeconds; d != nil && (downtime == nil || *d > *downtime) {
			downtime = d
		}
		if v.est.NotConverging {
			notConverging++
		}
		st := v.m.State
		if st.Synced() || st.Terminal() || st == wave.MemberFailed {
			continue
		}
		if v.total <= 0 {
			known = false
			continue
		}
		it := wave.CopyItem{ID: v.m.ID, BytesLeft: max(v.total-v.done, 0), Copying: st == wave.MemberCopying}
		if v.speedMbps > 0 && (v.m.ShareMbps == 0 || wave.IsSlow(v.speedMbps, v.m.ShareMbps)) {
			it.MaxMbps = v.speedMbps
		}
		items = append(items, it)
	}
	var eta any
	if loc, err := wave.LoadZone(w.TimeZone); err == nil && known && len(items) > 0 {
		if _, end, ok := wave.SimulateCopies(items, w.MaxConcurrent, w.Budget, loc, h.now()); ok {
			eta = end.UTC().Format(time.RFC3339)
		}
	}
	return gin.H{"members": len(vs), "by_state": byState, "bytes_done": done, "bytes_total": total,
		"percent": percent(done, total), "copy_eta": eta, "expected_downtime_seconds": downtime,
		"not_converging": notConverging}
}

// show: GET /v3/waves/{id}: the wave, its members with their tasks'
// progress and estimates, and the wave's totals.
func (h waveHandlers) show(c *gin.Context) {
	w, t, ok := h.load(c)
	if !ok {
		return
	}
	vs, err := h.view(c.Request.Context(), t, w, false)
	if err != nil {
		fail(c, waveError(err, w.ID))
		return
	}
	out := h.waveJSON(w)
	members := make([]memberJSON, len(vs))
	for i := range vs {
		members[i] = vs[i].json()
	}
	out["members"] = members
	out["totals"] = h.totals(w, vs)
	c.JSON(http.StatusOK, out)
}

// load reads the path's wave of the caller (another tenant's is missing).
func (h waveHandlers) load(c *gin.Context) (*store.Wave, store.Tenant, bool) {
	id, err := pathID(c, "wave_id")
	if err != nil {
		fail(c, err)
		return nil, store.Tenant{}, false
	}
	t := mustPrincipal(c).Tenant()
	w, err := h.store.Wave(c.Request.Context(), t, id)
	if err != nil {
		fail(c, waveError(err, id))
		return nil, t, false
	}
	return w, t, true
}

// ---- update, delete

// update: PUT /v3/waves/{id} with the fields to change (members have
// their own endpoints). Only DRAFT, SCHEDULED and PAUSED waves change; a
// scheduled wave's schedule follows its start_at.
func (h waveHandlers) update(c *gin.Context) {
	w, t, okk := h.load(c)
	if !okk {
		return
	}
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	var probe struct {
		Members *[]wave.Member `json:"members"`
	}
	if err := bindJSON(c, &probe); err != nil {
		fail(c, err)
		return
	}
	if probe.Members != nil {
		fail(c, wave.ProblemsError([]wave.Problem{{Field: "members", Code: wave.ErrInvalid.Code,
			Msg: "members change through POST /v3/waves/{id}/members and /members/delete"}}))
		return
	}
	if err := h.updateWave(c.Request.Context(), t, w, func(spec *wave.Spec) error { return decodeJSON(body, spec) }); err != nil {
		fail(c, err)
		return
	}
	okEmpty(c)
}

// updateWave changes an editable wave's spec (not its members): change
// edits the stored spec, the result is validated as a new wave's would be,
// and a scheduled wave's schedule follows its start_at. The API (a JSON
// body merged onto the spec) and the console (the form's whole spec)
// update through it.
func (h waveHandlers) updateWave(ctx context.Context, t store.Tenant, w *store.Wave, change func(*wave.Spec) error) error {
	if !w.State.Editable() {
		return wave.ErrNotEditable.New(string(w.State))
	}
	var updated store.Wave
	err := h.store.UpdateWave(ctx, t, w.ID, func(_ *gorm.DB, cur *store.Wave) error {
		if !cur.State.Editable() {
			return wave.ErrNotEditable.New(string(cur.State))
		}
		spec := cur.Spec(nil)
		if err := change(&spec); err != nil {
			return err
		}
		var ps []wave.Problem
		for _, p := range wave.Validate(spec, h.now()) {
			// A start_at that has passed since it was set is not the
			// caller's doing: only a new one must be in the future.
			if p.Field == "start_at" && sameTime(spec.StartAt, cur.StartAt) {
				continue
			}
			ps = append(ps, p)
		}
		if cur.State == wave.WaveScheduled && spec.StartAt == nil {
			ps = append(ps, wave.Problem{Field: "start_at", Code: wave.ErrInvalid.Code,
				Msg: "a scheduled wave needs a start_at: cancel it or start it now instead"})
		}
		if len(ps) > 0 {
			return wave.ProblemsError(ps)
		}
		if err := h.checkRefs(ctx, t, cur.ID, spec); err != nil {
			return err
		}
		cur.SetSpec(spec)
		updated = *cur
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrDuplicate) {
			return wave.ErrNameExists.New(updated.Name)
		}
		return waveError(err, w.ID)
	}
	if updated.State == wave.WaveScheduled && !sameTime(updated.StartAt, w.StartAt) {
		if err := h.needEngine(); err != nil {
			return err
		}
		if err := h.engine.ScheduleWave(ctx, t, &updated); err != nil {
			return asError(fmt.Errorf("move the wave's schedule: %w", err))
		}
	}
	return nil
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func (h waveHandlers) needEngine() error {
	if h.engine == nil {
		return smserr.New(smserr.InternalCode).WithStatus(http.StatusServiceUnavailable).
			WithDetail("no workflow engine: waves cannot run on this server")
	}
	return nil
}

// delete: DELETE /v3/waves/{id}. A running wave is refused (cancel it
// first); a scheduled one loses its schedule and the tasks made for it,
// which never ran. A finished wave's tasks stay, as tasks of their own.
func (h waveHandlers) delete(c *gin.Context) {
	w, t, okk := h.load(c)
	if !okk {
		return
	}
	ctx := c.Request.Context()
	if err := h.deleteWave(ctx, t, w); err != nil {
		fail(c, err)
		return
	}
	logFor(c).InfoContext(ctx, "wave deleted", "wave", w.ID)
	okEmpty(c)
}

// deleteWave deletes w unless it runs (the API's and the console's delete).
func (h waveHandlers) deleteWave(ctx context.Context, t store.Tenant, w *store.Wave) error {
	if w.State.Running() {
		return wave.ErrRunning.New(w.ID).WithDetail("state " + string(w.State))
	}
	if w.State == wave.WaveScheduled {
		if err := h.needEngine(); err != nil {
			return err
		}
		if err := h.engine.UnscheduleWave(ctx, w.ID); err != nil {
			return fmt.Errorf("delete the wave's schedule: %w", err)
		}
		if err := h.dropTasks(ctx, t, w.ID, nil); err != nil {
			return err
		}
	}
	if err := h.store.DeleteWave(ctx, t, w.ID); err != nil {
		return waveError(err, w.ID)
	}
	return nil
}

// dropTasks deletes the READY tasks of a wave's members that never ran
// (only, when given, the members in only).
func (h waveHandlers) dropTasks(ctx context.Context, t store.Tenant, waveID string, only map[string]bool) error {
	ms, err := h.store.WaveMembers(ctx, t, waveID)
	if err != nil {
		return err
	}
	tasks, err := h.store.WaveTasks(ctx, t, waveID)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.TaskID == nil || (only != nil && !only[m.ID]) {
			continue
		}
		tk, ok := tasks[*m.TaskID]
		if !ok || tk.State != sms.TaskReady {
			continue
		}
		if err := h.store.DeleteTask(ctx, t, tk.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete task %s of wave %s: %w", tk.ID, waveID, err)
		}
		if err := h.store.UpdateWaveMember(ctx, t, waveID, m.ID, func(x *store.WaveMember) error { x.TaskID = nil; return nil }); err != nil &&
			!errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// ---- members

// addMembers: POST /v3/waves/{id}/members {"members":[...]} →
// {"ids":[member ids]}; all or none.
func (h waveHandlers) addMembers(c *gin.Context) {
	w, t, okk := h.load(c)
	if !okk {
		return
	}
	var b struct {
		Members *[]wave.Member `json:"members"`
	}
	if err := bindJSON(c, &b); err != nil {
		fail(c, err)
		return
	}
	if b.Members == nil || len(*b.Members) == 0 {
		fail(c, wave.ProblemsError([]wave.Problem{{Field: "members", Code: wave.ErrInvalid.Code, Msg: "is required"}}))
		return
	}
	// The members' own checks (Validate on a spec that holds only them).
	var ps []wave.Problem
	for _, p := range wave.Validate(wave.Spec{Members: *b.Members}, h.now()) {
		if strings.HasPrefix(p.Field, "members") {
			ps = append(ps, p)
		}
	}
	if len(ps) > 0 {
		fail(c, wave.ProblemsError(ps))
		return
	}
	ms, err := h.resolveJSON(c.Request.Context(), t, w.ID, *b.Members)
	if err != nil {
		fail(c, err)
		return
	}
	h.add(c, w, t, ms)
}

// add stores new members; in a wave that was scheduled they get their
// tasks at once, as the others got theirs at schedule.
func (h waveHandlers) add(c *gin.Context, w *store.Wave, t store.Tenant, ms []store.WaveMember) {
	ids, err := h.addResolved(c.Request.Context(), t, w, ms)
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, gin.H{"ids": ids})
}

// addResolved stores resolved members and returns their ids (the API's
// and the console's path).
func (h waveHandlers) addResolved(ctx context.Context, t store.Tenant, w *store.Wave, ms []store.WaveMember) ([]string, error) {
	if err := h.store.AddWaveMembers(ctx, t, w.ID, ms); err != nil {
		if errors.Is(err, store.ErrDuplicate) {
			return nil, wave.ErrDuplicateMember.New("a source server is a member already")
		}
		return nil, waveError(err, w.ID)
	}
	ids := make([]string, len(ms))
	for i := range ms {
		ids[i] = ms[i].ID
	}
	if w.State != wave.WaveDraft {
		if err := h.createTasks(ctx, t, w, ms); err != nil {
			if rerr := h.store.RemoveWaveMembers(context.WithoutCancel(ctx), t, w.ID, ids); rerr != nil {
				h.log.ErrorContext(ctx, "cannot take back members whose tasks failed", "wave", w.ID, "err", rerr)
			}
			return nil, err
		}
	}
	return ids, nil
}

// removeMembers: POST /v3/waves/{id}/members/delete {"ids":[member ids]};
// all or none. Only PENDING members leave; a task made for one at
// schedule (never started) goes with it.
func (h waveHandlers) removeMembers(c *gin.Context) {
	w, t, okk := h.load(c)
	if !okk {
		return
	}
	ids, err := bindIDs(c)
	if err != nil {
		fail(c, err)
		return
	}
	ctx := c.Request.Context()
	before, err := h.store.WaveMembers(ctx, t, w.ID)
	if err != nil {
		fail(c, waveError(err, w.ID))
		return
	}
	if err := h.store.RemoveWaveMembers(ctx, t, w.ID, ids); err != nil {
		var miss *store.MissingError
		if errors.As(err, &miss) {
			fail(c, wave.ErrInvalid.New("ids").WithStatus(http.StatusNotFound).
				WithDetail("no such member of wave "+w.ID+": "+strings.Join(miss.IDs, ", ")))
			return
		}
		fail(c, waveError(err, w.ID))
		return
	}
	gone := map[string]bool{}
	for _, id := range ids {
		gone[id] = true
	}
	for _, m := range before {
		if gone[m.ID] && m.TaskID != nil {
			if err := h.store.DeleteTask(ctx, t, *m.TaskID); err != nil && !errors.Is(err, store.ErrNotFound) {
				logFor(c).ErrorContext(ctx, "a removed member's task stays", "wave", w.ID, "task", *m.TaskID, "err", err)
			}
		}
	}
	okEmpty(c)
}

// importMembers: POST /v3/waves/{id}/members/import, a CSV file as the
// body (text/csv) or as the "file" part of a multipart form. Every row or
// none: each bad row is reported with its line and code.
func (h waveHandlers) importMembers(c *gin.Context) {
	w, t, okk := h.load(c)
	if !okk {
		return
	}
	data, err := csvBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	ms, err := h.csvMembers(c.Request.Context(), t, w.ID, data, wave.MaxMembers-w.MemberCount)
	if err != nil {
		fail(c, err)
		return
	}
	h.add(c, w, t, ms)
}

// csvMembers reads a member CSV file and resolves its rows for wave
// waveID ("" for a wave not made yet): every row or none, each bad row
// reported with its line and code (the API's import and the console's
// upload).
func (h waveHandlers) csvMembers(ctx context.Context, t store.Tenant, waveID string, data []byte, maxRows int) ([]store.WaveMember, error) {
	rows, rerrs := wave.ParseMembers(bytes.NewReader(data), maxRows)
	if len(rerrs) > 0 {
		return nil, wave.RowErrorsError(rerrs)
	}
	if len(rows) == 0 {
		return nil, wave.ErrCSVFile.New("it has no member rows")
	}
	members := make([]wave.Member, len(rows))
	for i, r := range rows {
		members[i] = r.Member
	}
	ms, errs, err := h.resolve(ctx, t, waveID, members)
	if err != nil {
		return nil, err
	}
	if len(errs) == 0 && waveID != "" {
		// A row naming a member of this wave already: its line, rather
		// than the store's unnamed duplicate.
		have, err := h.store.WaveMembersBrief(ctx, t, waveID)
		if err != nil {
			return nil, err
		}
		in := make(map[string]bool, len(have))
		for _, m := range have {
			in[m.SourceID] = true
		}
		for i, m := range ms {
			if in[m.SourceID] {
				errs = append(errs, memberError{i, "", wave.ErrDuplicateMember.Code,
					fmt.Sprintf("source server %s is a member of this wave already", m.SourceID)})
			}
		}
	}
	if len(errs) > 0 {
		rs := make([]wave.RowError, len(errs))
		for i, e := range errs {
			col := e.column
			if col == "source_id" {
				col = ""
			}
			rs[i] = wave.RowError{Line: rows[e.index].Line, Column: col, Code: e.code, Msg: e.msg}
		}
		return nil, wave.RowErrorsError(rs)
	}
	return ms, nil
}

// csvBody reads the CSV file of an import: the body itself, or the "file"
// part of a multipart/form-data body.
func csvBody(c *gin.Context) ([]byte, error) {
	body, err := readBody(c)
	if err != nil {
		return nil, err
	}
	ct := c.GetHeader("Content-Type")
	mt, params, perr := mime.ParseMediaType(ct)
	if ct == "" || perr != nil {
		mt = ""
	}
	switch {
	case mt == "multipart/form-data":
		r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			p, err := r.NextPart()
			if err == io.EOF {
				return nil, wave.ErrCSVFile.New("the form has no part named file")
			}
			if err != nil {
				return nil, wave.ErrCSVFile.New("the multipart form cannot be read").Wrap(err)
			}
			if p.FormName() == "file" {
				b, err := io.ReadAll(p)
				if err != nil {
					return nil, wave.ErrCSVFile.New("the file part cannot be read").Wrap(err)
				}
				return b, nil
			}
		}
	case mt == "" || mt == "text/csv" || mt == "text/plain" || mt == "application/octet-stream":
		return body, nil
	}
	return nil, smserr.New(smserr.SMS6016).WithDetail("Content-Type must be text/csv or multipart/form-data, got " + truncate(ct, 64))
}

// ---- preflight

// Preflight check names.
const (
	checkSource      = "source_exists"
	checkAgent       = "agent_connected"
	checkEnvironment = "environment_checks"
	checkTemplate    = "template_valid"
	checkActiveTask  = "no_other_active_task"
	checkOtherWave   = "no_other_active_wave"
	checkCapacity    = "target_capacity"
)

type preflightCheck struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Blocking bool   `json:"blocking"`
	Message  string `json:"message,omitempty"`
}

type preflightMember struct {
	ID       string           `json:"id"`
	SourceID string           `json:"source_id"`
	Name     string           `json:"source_name"`
	OK       bool             `json:"ok"`
	Checks   []preflightCheck `json:"checks"`
}

type preflightResult struct {
	OK       bool              `json:"ok"`
	Blocking int               `json:"blocking"`
	Members  []preflightMember `json:"members"`
	Wave     []preflightCheck  `json:"wave"`
}

// problems lists the blocking checks as "member: check: message".
func (r preflightResult) problems() []string {
	var out []string
	for _, c := range r.Wave {
		if !c.OK && c.Blocking {
			out = append(out, c.Name+": "+c.Message)
		}
	}
	for _, m := range r.Members {
		for _, c := range m.Checks {
			if !c.OK && c.Blocking {
				out = append(out, m.Name+" ("+m.SourceID+"): "+c.Name+": "+c.Message)
			}
		}
	}
	return out
}

// runPreflight runs the checks of every member and of the wave.
func (h waveHandlers) runPreflight(ctx context.Context, t store.Tenant, w *store.Wave) (preflightResult, error) {
	ms, err := h.store.WaveMembers(ctx, t, w.ID)
	if err != nil {
		return preflightResult{}, err
	}
	srcs, err := h.store.FindSources(ctx, t, sourceIDsOf(ms), nil, nil)
	if err != nil {
		return preflightResult{}, err
	}
	byID := make(map[string]store.SourceRef, len(srcs))
	for _, s := range srcs {
		byID[s.ID] = s
	}
	inWave, err := h.store.ActiveWavesOfSources(ctx, t, sourceIDsOf(ms), w.ID)
	if err != nil {
		return preflightResult{}, err
	}
	templates := map[string]error{}
	templateOK := func(id string) error {
		if e, seen := templates[id]; seen {
			return e
		}
		_, err := h.store.Template(ctx, t, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		templates[id] = err
		return err
	}
	res := preflightResult{OK: true, Members: make([]preflightMember, 0, len(ms))}
	connectedSince := h.now().Add(-h.agentTimeout).UnixMilli()
	var need int64
	for _, m := range ms {
		pm := preflightMember{ID: m.ID, SourceID: m.SourceID, Name: m.SourceName, OK: true}
		add := func(name string, ok bool, msg string) {
			c := preflightCheck{Name: name, OK: ok, Blocking: !ok}
			if !ok {
				c.Message = msg
				pm.OK = false
				res.Blocking++
			}
			pm.Checks = append(pm.Checks, c)
		}
		src, found := byID[m.SourceID]
		add(checkSource, found, "the source server was deleted")
		if found {
			add(checkAgent, src.LastVisitTime >= connectedSince,
				fmt.Sprintf("its agent has not polled for more than %s", h.agentTimeout))
			add(checkEnvironment, src.State != sms.SourceUnavailable,
				"the source failed its environment checks (state "+string(src.State)+")")
			own := m.TaskID != nil && src.CurrentTaskID != nil && *src.CurrentTaskID == *m.TaskID
			add(checkActiveTask, src.CurrentTaskID == nil || *src.CurrentTaskID == "" || own,
				"the source has task "+ptr.Deref(src.CurrentTaskID)+": delete it first")
			if m.State == wave.MemberPending && !m.State.Terminal() {
				need += src.Totalsize
			}
		}
		tpl := m.TemplateID
		if tpl == "" {
			tpl = w.TaskDefaults.VMTemplateID
		}
		if tpl != "" {
			terr := templateOK(tpl)
			if terr != nil && !errors.Is(terr, store.ErrNotFound) {
				return preflightResult{}, terr
			}
			add(checkTemplate, terr == nil, "template "+tpl+" does not exist")
		}
		other, busy := inWave[m.SourceID]
		add(checkOtherWave, !busy, "the source belongs to active wave "+other)
		if !pm.OK {
			res.OK = false
		}
		res.Members = append(res.Members, pm)
	}
	if h.capacity != nil {
		free, err := h.capacity.FreeBytes(ctx)
		c := preflightCheck{Name: checkCapacity, OK: true}
		switch {
		case err != nil:
			// Unknown is not blocking: the target's own check at Format
			// still refuses a full disk.
			c.OK, c.Message = false, "free space unknown: "+err.Error()
		case free < need:
			c.OK, c.Blocking = false, true
			c.Message = fmt.Sprintf("the members need %d bytes, the targets' storage has %d free", need, free)
			res.OK = false
			res.Blocking++
		default:
			c.Message = fmt.Sprintf("%d bytes needed, %d free", need, free)
		}
		res.Wave = append(res.Wave, c)
	}
	if res.Wave == nil {
		res.Wave = []preflightCheck{}
	}
	return res, nil
}

// preflight: GET /v3/waves/{id}/preflight.
func (h waveHandlers) preflight(c *gin.Context) {
	w, t, okk := h.load(c)
	if !okk {
		return
	}
	res, err := h.runPreflight(c.Request.Context(), t, w)
	if err != nil {
		fail(c, waveError(err, w.ID))
		return
	}
	ok(c, res)
}

// ---- actions

// action: POST /v3/waves/{id}/action {"operation"}.
func (h waveHandlers) action(c *gin.Context) {
	w, t, okk := h.load(c)
	if !okk {
		return
	}
	var b struct {
		Operation *string `json:"operation"`
	}
	if err := bindJSON(c, &b); err != nil {
		fail(c, err)
		return
	}
	var v checks
	v.enum("operation", b.Operation, required, actionNames()...)
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	a := wave.Action(*b.Operation)
	ctx := c.Request.Context()
	if err := h.runAction(ctx, t, w, a); err != nil {
		fail(c, err)
		return
	}
	logFor(c).InfoContext(ctx, "wave action", "wave", w.ID, "operation", a)
	okEmpty(c)
}

// runAction runs operator action a on w (the API's and the console's).
func (h waveHandlers) runAction(ctx context.Context, t store.Tenant, w *store.Wave, a wave.Action) error {
	if err := wave.CheckAction(w.State, a); err != nil {
		return err
	}
	if err := h.needEngine(); err != nil {
		return err
	}
	var err error
	switch {
	case a == wave.ActionSchedule:
		err = h.schedule(ctx, t, w, false)
	case a == wave.ActionStart:
		err = h.schedule(ctx, t, w, true)
	case w.State == wave.WaveScheduled || (w.State == wave.WavePaused && w.StartedAt == nil):
		// No run yet: the schedule is what pause, resume and cancel act on.
		err = h.scheduleAction(ctx, t, w, a)
	default:
		err = h.engine.WaveAction(ctx, w.ID, a)
	}
	if err != nil {
		return waveError(err, w.ID)
	}
	return nil
}

func actionNames() []string {
	out := make([]string, len(wave.Actions))
	for i, a := range wave.Actions {
		out[i] = string(a)
	}
	return out
}

// schedule runs preflight, makes the members' tasks and schedules the
// wave (or, now, starts it). What it made is taken back if a later step
// fails.
func (h waveHandlers) schedule(ctx context.Context, t store.Tenant, w *store.Wave, now bool) error {
	if !now && w.StartAt == nil {
		return wave.ProblemsError([]wave.Problem{{Field: "start_at", Code: wave.ErrInvalid.Code,
			Msg: "schedule needs a start_at; use start to run the wave now"}})
	}
	if !now && !w.StartAt.After(h.now()) {
		return wave.ErrStartInPast.New(w.StartAt.UTC().Format(time.RFC3339))
	}
	if w.MemberCount == 0 {
		return wave.ErrPreflight.New("the wave has no members")
	}
	if w.DependsOn != "" {
		dep, err := h.store.Wave(ctx, t, w.DependsOn)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if now && (dep == nil || dep.State != wave.WaveDone) {
			state := "missing"
			if dep != nil {
				state = string(dep.State)
			}
			return wave.ErrPreflight.New("depends_on wave " + w.DependsOn + " is " + state + ", not DONE")
		}
	}
	pf, err := h.runPreflight(ctx, t, w)
	if err != nil {
		return err
	}
	if !pf.OK {
		ps := pf.problems()
		e := wave.ErrPreflight.New(fmt.Sprintf("%d", len(ps)))
		for _, p := range ps {
			e = e.WithDetail(p)
		}
		return e
	}
	ms, err := h.store.WaveMembers(ctx, t, w.ID)
	if err != nil {
		return err
	}
	var todo []store.WaveMember
	for _, m := range ms {
		if m.TaskID == nil {
			todo = append(todo, m)
		}
	}
	if err := h.createTasks(ctx, t, w, todo); err != nil {
		return err
	}
	undo := func(cause error) {
		bg := context.WithoutCancel(ctx)
		if err := h.store.SetWaveState(bg, t, w.ID, w.State, truncate("not started: "+cause.Error(), 1000)); err != nil {
			h.log.ErrorContext(ctx, "cannot put a wave back", "wave", w.ID, "err", err)
		}
		only := map[string]bool{}
		for _, m := range todo {
			only[m.ID] = true
		}
		if err := h.dropTasks(bg, t, w.ID, only); err != nil {
			h.log.ErrorContext(ctx, "cannot drop the tasks of a wave that did not start", "wave", w.ID, "err", err)
		}
	}
	target, reason := wave.WaveScheduled, "scheduled"
	if now {
		target, reason = wave.WaveReplicating, "started"
		if w.State == wave.WaveScheduled {
			if err := h.engine.UnscheduleWave(ctx, w.ID); err != nil {
				undo(err)
				return fmt.Errorf("delete the wave's schedule: %w", err)
			}
		}
	}
	if err := h.store.SetWaveState(ctx, t, w.ID, target, reason); err != nil {
		undo(err)
		return err
	}
	fresh, err := h.store.Wave(ctx, t, w.ID)
	if err != nil {
		undo(err)
		return err
	}
	if now {
		err = h.engine.StartWave(ctx, t, fresh)
	} else {
		err = h.engine.ScheduleWave(ctx, t, fresh)
	}
	if err != nil {
		undo(err)
		return err
	}
	return nil
}

// scheduleAction pauses, resumes or cancels a wave that has no run yet.
func (h waveHandlers) scheduleAction(ctx context.Context, t store.Tenant, w *store.Wave, a wave.Action) error {
	switch a {
	case wave.ActionPause:
		if err := h.engine.PauseWaveSchedule(ctx, w.ID, true); err != nil {
			return err
		}
		return h.store.SetWaveState(ctx, t, w.ID, wave.WavePaused, "paused before its start")
	case wave.ActionResume:
		if err := h.engine.PauseWaveSchedule(ctx, w.ID, false); err != nil {
			return err
		}
		return h.store.SetWaveState(ctx, t, w.ID, wave.WaveScheduled, "resumed")
	case wave.ActionCancel:
		if err := h.engine.UnscheduleWave(ctx, w.ID); err != nil {
			return err
		}
		if err := h.dropTasks(ctx, t, w.ID, nil); err != nil {
			return err
		}
		return h.store.SetWaveState(ctx, t, w.ID, wave.WaveCanceled, "canceled before its start")
	}
	return wave.ErrBadTransition.New(string(w.State), string(a))
}

// createTasks makes each member's task through POST /v3/tasks' path, with
// the wave's defaults and the member's overrides, READY and without a
// workflow (the wave's starts it as a child). All or none.
func (h waveHandlers) createTasks(ctx context.Context, t store.Tenant, w *store.Wave, ms []store.WaveMember) error {
	if len(ms) == 0 {
		return nil
	}
	mp, err := h.store.MigProject(ctx, t, w.MigProjectID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return projectProblem(w.MigProjectID)
		}
		return err
	}
	var made []string  // task ids
	var given []string // member ids whose task_id was set
	rollback := func() {
		bg := context.WithoutCancel(ctx)
		for _, id := range given {
			if err := h.store.UpdateWaveMember(bg, t, w.ID, id, func(x *store.WaveMember) error { x.TaskID = nil; return nil }); err != nil {
				h.log.ErrorContext(ctx, "cannot clear a wave member's task", "member", id, "err", err)
			}
		}
		for _, id := range made {
			if err := h.store.DeleteTask(bg, t, id); err != nil {
				h.log.ErrorContext(ctx, "cannot take back a wave member's task", "task", id, "err", err)
			}
		}
	}
	for i := range ms {
		m := &ms[i]
		task, err := h.memberTask(ctx, t, w, mp, m)
		if err == nil {
			err = h.store.CreateTask(ctx, t, task)
			if err != nil {
				err = taskError(err, "")
			}
		}
		if err == nil {
			made = append(made, task.ID)
			err = h.store.UpdateWaveMember(ctx, t, w.ID, m.ID, func(x *store.WaveMember) error {
				x.TaskID = &task.ID
				return nil
			})
			if err == nil {
				given = append(given, m.ID)
			}
		}
		if err != nil {
			rollback()
			if e, ok := smserr.As(err); ok {
				return e.WithDetail("member " + m.ID + " (source " + m.SourceID + ")")
			}
			return fmt.Errorf("task of member %s: %w", m.ID, err)
		}
		m.TaskID = &task.ID
	}
	return nil
}

// memberTask builds one member's task.
func (h waveHandlers) memberTask(ctx context.Context, t store.Tenant, w *store.Wave, mp *store.MigProject, m *store.WaveMember) (*store.Task, error) {
	d := w.TaskDefaults
	typ := d.Type
	if typ == "" {
		typ = mp.Type
	}
	if typ == "" {
		typ = sms.MigrateBlock
	}
	name := truncate(w.Name+"-"+m.SourceName, 255)
	tpl := m.TemplateID
	if tpl == "" {
		tpl = d.VMTemplateID
	}
	prio := m.Priority
	region, project := mp.Region, t.ProjectID
	typName := string(typ)
	b := &createTaskBody{Name: &name, Type: &typName, RegionName: &region, RegionID: &region, ProjectName: &project,
		ProjectID: &project, Priority: &prio, Syncing: d.Syncing, StartTargetServer: d.StartTargetServer,
		OverSpeedThreshold: d.OverSpeedThreshold, TargetServer: &targetServerBody{}}
	b.SourceServer = &struct {
		ID *string `json:"id"`
	}{ID: &m.SourceID}
	if tpl != "" {
		b.VMTemplateID = &tpl
	}
	if m.TargetName != "" {
		b.TargetServer.Name = &m.TargetName
	}
	task, _, err := h.tasks.buildTask(ctx, t, b)
	if err != nil {
		return nil, err
	}
	disks := task.TargetServer.Disks
	if len(m.DiskSizesGiB) > len(disks) {
		return nil, wave.ErrInvalid.New("disk_sizes_gib").WithDetail(fmt.Sprintf(
			"member %s lists %d disk sizes, its source has %d disks", m.ID, len(m.DiskSizesGiB), len(disks)))
	}
	for j, g := range m.DiskSizesGiB {
		size := g << 30
		if used := ptr.Deref(disks[j].UsedSize); size < used {
			return nil, wave.ErrInvalid.New("disk_sizes_gib").WithDetail(fmt.Sprintf(
				"member %s: disk %d of %d GiB cannot hold the %d bytes its source uses", m.ID, j, g, used))
		}
		disks[j].Size = &size
	}
	task.WaveID = &w.ID
	task.AutoStart = true
	return task, nil
}

// ---- report

// reportRow is one member of the report.
type reportRow struct {
	MemberID         string   `json:"member_id"`
	SourceID         string   `json:"source_id"`
	SourceName       string   `json:"source_name"`
	TaskID           string   `json:"task_id"`
	State            string   `json:"state"`
	BytesMoved       int64    `json:"bytes_moved"`
	BytesTotal       int64    `json:"bytes_total"`
	CopySeconds      *float64 `json:"copy_seconds"`
	SyncSeconds      *float64 `json:"sync_seconds"`
	DowntimeSeconds  *float64 `json:"downtime_seconds"`
	ExpectedDowntime *float64 `json:"expected_downtime_seconds"`
	NotConverging    bool     `json:"not_converging"`
	Verification     string   `json:"verification"`
	ErrorCode        string   `json:"error_code"`
	ErrorMsg         string   `json:"error_msg"`
}

func between2(a, b *time.Time) *float64 {
	if a == nil || b == nil || b.Before(*a) {
		return nil
	}
	s := b.Sub(*a).Seconds()
	return &s
}

// report: GET /v3/waves/{id}/report (JSON; ?format=csv or Accept:
// text/csv for CSV).
func (h waveHandlers) report(c *gin.Context) {
	w, t, okk := h.load(c)
	if !okk {
		return
	}
	format := c.Query("format")
	if format == "" && strings.Contains(c.GetHeader("Accept"), "text/csv") {
		format = "csv"
	}
	if format != "" && format != "csv" && format != "json" {
		fail(c, smserr.New(smserr.SMS9001, "format").WithDetail("format: json or csv"))
		return
	}
	rows, vs, err := h.reportRows(c.Request.Context(), t, w)
	if err != nil {
		fail(c, waveError(err, w.ID))
		return
	}
	if format == "csv" {
		c.Header("Content-Disposition", `attachment; filename="wave-`+w.ID+`-report.csv"`)
		c.Data(http.StatusOK, "text/csv; charset=utf-8", reportCSV(rows))
		return
	}
	ok(c, gin.H{"wave": h.waveJSON(w), "totals": h.totals(w, vs), "members": rows})
}

// reportRows is the report of w, one row a member (the API's and the
// console's report).
func (h waveHandlers) reportRows(ctx context.Context, t store.Tenant, w *store.Wave) ([]reportRow, []memberView, error) {
	vs, err := h.view(ctx, t, w, true)
	if err != nil {
		return nil, nil, err
	}
	rows := make([]reportRow, len(vs))
	for i, v := range vs {
		m := v.m
		r := reportRow{MemberID: m.ID, SourceID: m.SourceID, SourceName: m.SourceName, TaskID: ptr.Deref(m.TaskID),
			State: string(m.State), BytesMoved: v.done, BytesTotal: v.total, CopySeconds: between2(m.CopyStartedAt, m.CopyEndedAt),
			SyncSeconds: between2(m.SyncedAt, m.CutoverStartedAt), DowntimeSeconds: m.DowntimeSeconds,
			ExpectedDowntime: v.est.DowntimeSeconds, NotConverging: v.est.NotConverging, Verification: m.Verification,
			ErrorCode: m.ErrorCode, ErrorMsg: m.ErrorMsg}
		if m.DowntimeSeconds == nil {
			r.DowntimeSeconds = between2(m.CutoverStartedAt, m.TargetStartedAt)
		}
		if r.Verification == "" && v.task != nil {
			r.Verification = verification(v.task.ConsistencyResults)
		}
		rows[i] = r
	}
	return rows, vs, nil
}

// verification sums up a task's consistency results for the report:
// PASSED when every checked disk or file system matched, FAILED when one
// did not, empty when the agent has not verified yet. No one records a
// member's verification apart from its task's results, so the report
// reads them there.
func verification(results []store.ConsistencyResult) string {
	if len(results) == 0 {
		return ""
	}
	for _, r := range results {
		if r.NumDifferentFiles != 0 || r.NumTargetMissFiles != 0 || r.NumTargetMoreFiles != 0 {
			return "FAILED"
		}
	}
	return "PASSED"
}

// reportCSV writes the report's rows as CSV with a header. A cell that a
// spreadsheet would take for a formula (=, +, -, @ first) is prefixed with
// a quote: source names come from the machines.
func reportCSV(rows []reportRow) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"member_id", "source_id", "source_name", "task_id", "state", "bytes_moved", "bytes_total",
		"copy_seconds", "sync_seconds", "downtime_seconds", "expected_downtime_seconds", "not_converging",
		"verification", "error_code", "error_msg"})
	num := func(f *float64) string {
		if f == nil {
			return ""
		}
		return strconv.FormatFloat(*f, 'f', 3, 64) // to the millisecond, as measured
	}
	for _, r := range rows {
		rec := []string{r.MemberID, r.SourceID, r.SourceName, r.TaskID, r.State, strconv.FormatInt(r.BytesMoved, 10),
			strconv.FormatInt(r.BytesTotal, 10), num(r.CopySeconds), num(r.SyncSeconds), num(r.DowntimeSeconds),
			num(r.ExpectedDowntime), strconv.FormatBool(r.NotConverging), r.Verification, r.ErrorCode, r.ErrorMsg}
		for i, v := range rec {
			if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) && i != 8 && i != 9 && i != 10 {
				rec[i] = "'" + v
			}
		}
		_ = w.Write(rec)
	}
	w.Flush()
	return b.Bytes()
}
