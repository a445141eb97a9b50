package wave

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/smsflow/smsflow/internal/sms"
)

// Limits of a wave spec, checked by Validate.
const (
	// MaxConcurrent bounds max_concurrent: beyond 100 copies at once the
	// window stops being a throttle, and the workflow's per-slot bookkeeping
	// (speed pushes at each change) grows with it.
	MaxConcurrent = 100
	// MaxBudgetWindows is the "up to 5" bandwidth windows, the same
	// count a task's speed-limit windows allow.
	MaxBudgetWindows = 5
	// MaxCutoverWindows bounds the cutover windows (two a day for a week).
	MaxCutoverWindows = 14
	// MaxBudgetMbps is the largest budget, 100 Gbit/s.
	MaxBudgetMbps = 100000
	// MaxMembers bounds a wave (and a CSV import).
	MaxMembers = 10000
	// MaxNameLen and MaxDescriptionLen bound the texts, in characters.
	MaxNameLen        = 255
	MaxDescriptionLen = 1024
	// MaxDiskGiB bounds one disk size override (64 TiB).
	MaxDiskGiB = 65536
	// MaxDisks bounds a member's disk size overrides.
	MaxDisks = 64
)

// TaskDefaults is what every member's task gets unless the member
// overrides it: the fields of POST /v3/tasks a wave can set once for all.
// Empty or nil fields are left to the source's migration project, as a
// task leaves them. A task's own speed_limit has no place here: the wave's
// bandwidth budget sets each member's limit.
type TaskDefaults struct {
	Type               sms.TaskType `json:"type,omitempty"`
	VMTemplateID       string       `json:"vm_template_id,omitempty"`
	Syncing            *bool        `json:"syncing,omitempty"`
	StartTargetServer  *bool        `json:"start_target_server,omitempty"`
	OverSpeedThreshold *float64     `json:"over_speed_threshold,omitempty"`
}

// Member is one source server of a wave, named by SourceID, Name or IP (the
// API resolves a name or IP to the id and keeps the id), with optional
// overrides of the task defaults.
type Member struct {
	SourceID   string `json:"source_id,omitempty"`
	Name       string `json:"name,omitempty"`
	IP         string `json:"ip,omitempty"`
	TargetName string `json:"target_name,omitempty"`
	TemplateID string `json:"template_id,omitempty"`
	// DiskSizesGiB are the target disks' sizes in GiB, in the source's disk
	// order; the API checks each against the source disk it replaces.
	DiskSizesGiB []int64 `json:"disk_sizes_gib,omitempty"`
	// Priority is the spec's task priority: 0 low, 1 normal, 2 high; nil
	// is 1. Higher priority members copy first.
	Priority *int32 `json:"priority,omitempty"`
}

// PriorityOf is m's priority with the default applied.
func (m Member) PriorityOf() int32 {
	if m.Priority == nil {
		return 1
	}
	return *m.Priority
}

// Spec is a wave as an operator plans it.
type Spec struct {
	Name         string       `json:"name"`
	Description  string       `json:"description,omitempty"`
	ProjectID    string       `json:"project_id"`
	TaskDefaults TaskDefaults `json:"task_defaults"`
	Members      []Member     `json:"members,omitempty"`
	// StartAt is when a scheduled wave starts; nil means on demand.
	StartAt       *time.Time `json:"start_at,omitempty"`
	MaxConcurrent int        `json:"max_concurrent"`
	Budget        Budget     `json:"bandwidth_budget"`
	// TimeZone is the IANA zone both the budget windows and the cutover
	// windows are read in.
	TimeZone       string       `json:"time_zone"`
	CutoverWindows []TimeWindow `json:"cutover_windows,omitempty"`
	CutoverMode    CutoverMode  `json:"cutover_mode"`
	TestFirst      bool         `json:"test_first"`
	// MaxFailures is how many members may fail before the wave pauses
	// itself: 0 pauses it at the first failure.
	MaxFailures int `json:"max_failures"`
	// DependsOn is the id of a wave that must be DONE before this one
	// starts.
	DependsOn string `json:"depends_on,omitempty"`
}

// Validate returns every problem of s, each with its field path, in field
// order; none means s is fine. now is the caller's clock (start_at must not
// be before it). Lookups that need the store (sources exist, a member in
// another active wave, depends_on exists and makes no cycle: see
// FindCycle) are the API's.
func Validate(s Spec, now time.Time) []Problem {
	var ps []Problem
	add := func(field string, d ErrorDef, format string, a ...any) {
		ps = append(ps, Problem{field, d.Code, fmt.Sprintf(format, a...)})
	}
	checkText(&ps, "name", s.Name, true, MaxNameLen)
	checkText(&ps, "description", s.Description, false, MaxDescriptionLen)
	if strings.ContainsAny(s.Name, "\n\t") {
		add("name", ErrInvalid, "must be one line")
	}
	if strings.TrimSpace(s.ProjectID) == "" {
		add("project_id", ErrInvalid, "is required")
	}
	td := s.TaskDefaults
	if td.Type != "" && !td.Type.Valid() {
		add("task_defaults.type", ErrInvalid, "must be %s or %s", sms.MigrateBlock, sms.MigrateFile)
	}
	if td.OverSpeedThreshold != nil && (*td.OverSpeedThreshold < 0 || *td.OverSpeedThreshold > 100) {
		add("task_defaults.over_speed_threshold", ErrInvalid, "must be between 0 and 100")
	}
	ps = append(ps, validateMembers(s.Members)...)
	if s.StartAt != nil && s.StartAt.Before(now) {
		add("start_at", ErrStartInPast, "%s is in the past", s.StartAt.UTC().Format(time.RFC3339))
	}
	if s.MaxConcurrent < 1 || s.MaxConcurrent > MaxConcurrent {
		add("max_concurrent", ErrMaxConcurrent, "must be between 1 and %d", MaxConcurrent)
	}
	ps = append(ps, validateBudget(s.Budget, s.MaxConcurrent)...)
	if _, err := LoadZone(s.TimeZone); err != nil {
		add("time_zone", ErrTimeZone, "%v", err)
	}
	if len(s.CutoverWindows) > MaxCutoverWindows {
		add("cutover_windows", ErrTooManyWindows, "at most %d windows", MaxCutoverWindows)
	}
	for i, w := range s.CutoverWindows {
		f := fmt.Sprintf("cutover_windows[%d]", i)
		_, wps := parseWindow(w, f)
		ps = append(ps, wps...)
		if w.Mbps != 0 {
			add(f+".mbps", ErrInvalid, "a cutover window has no bandwidth")
		}
	}
	if !s.CutoverMode.Valid() {
		add("cutover_mode", ErrInvalid, "must be %s or %s", CutoverAuto, CutoverApprove)
	}
	checkText(&ps, "depends_on", s.DependsOn, false, 64)
	if s.MaxFailures < 0 || s.MaxFailures > MaxMembers {
		add("max_failures", ErrInvalid, "must be between 0 and %d", MaxMembers)
	}
	return ps
}

func checkText(ps *[]Problem, field, v string, required bool, limit int) {
	switch {
	case required && strings.TrimSpace(v) == "":
		*ps = append(*ps, Problem{field, ErrInvalid.Code, "is required"})
	case !utf8.ValidString(v):
		*ps = append(*ps, Problem{field, ErrInvalid.Code, "must be UTF-8"})
	case utf8.RuneCountInString(v) > limit:
		*ps = append(*ps, Problem{field, ErrInvalid.Code, fmt.Sprintf("at most %d characters", limit)})
	case strings.ContainsFunc(v, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }):
		*ps = append(*ps, Problem{field, ErrInvalid.Code, "must not contain control characters"})
	}
}

// memberKeys are the keys two members must not share: the same source id,
// name (case-insensitive) or IP (in its canonical form) twice.
func memberKeys(m Member) []string {
	var ks []string
	if m.SourceID != "" {
		ks = append(ks, "source_id "+m.SourceID)
	}
	if m.Name != "" {
		ks = append(ks, "name "+strings.ToLower(m.Name))
	}
	if m.IP != "" {
		ip := m.IP
		if a, err := netip.ParseAddr(m.IP); err == nil {
			ip = a.Unmap().String()
		}
		ks = append(ks, "ip "+ip)
	}
	return ks
}

func validateMembers(ms []Member) []Problem {
	var ps []Problem
	if len(ms) > MaxMembers {
		return []Problem{{"members", ErrTooManyMembers.Code, fmt.Sprintf("at most %d members", MaxMembers)}}
	}
	seen := map[string]int{}
	for i, m := range ms {
		f := fmt.Sprintf("members[%d]", i)
		ps = append(ps, checkMember(m, f)...)
		for _, k := range memberKeys(m) {
			if j, dup := seen[k]; dup {
				ps = append(ps, Problem{f, ErrDuplicateMember.Code, fmt.Sprintf("%s is members[%d] already", k, j)})
				break
			}
		}
		for _, k := range memberKeys(m) {
			if _, dup := seen[k]; !dup {
				seen[k] = i
			}
		}
	}
	return ps
}

// checkMember checks one member's fields (shared with the CSV import).
// Names and ids are one line of printable text.
func checkMember(m Member, f string) []Problem {
	var ps []Problem
	if m.SourceID == "" && m.Name == "" && m.IP == "" {
		ps = append(ps, Problem{f, ErrInvalid.Code, "needs source_id, name or ip"})
	}
	if m.SourceID != "" {
		checkText(&ps, f+".source_id", m.SourceID, false, 64)
	}
	checkText(&ps, f+".name", m.Name, false, MaxNameLen)
	for _, v := range []struct{ field, v string }{
		{".source_id", m.SourceID}, {".name", m.Name}, {".target_name", m.TargetName}, {".template_id", m.TemplateID}} {
		if strings.ContainsAny(v.v, "\n\t") {
			ps = append(ps, Problem{f + v.field, ErrInvalid.Code, "must be one line"})
		}
	}
	if m.IP != "" {
		if _, err := netip.ParseAddr(m.IP); err != nil {
			ps = append(ps, Problem{f + ".ip", ErrInvalid.Code, fmt.Sprintf("%q is not an IP address", m.IP)})
		}
	}
	checkText(&ps, f+".target_name", m.TargetName, false, MaxNameLen)
	checkText(&ps, f+".template_id", m.TemplateID, false, 64)
	if len(m.DiskSizesGiB) > MaxDisks {
		ps = append(ps, Problem{f + ".disk_sizes_gib", ErrInvalid.Code, fmt.Sprintf("at most %d disks", MaxDisks)})
	}
	for j, g := range m.DiskSizesGiB {
		if g < 1 || g > MaxDiskGiB {
			ps = append(ps, Problem{fmt.Sprintf("%s.disk_sizes_gib[%d]", f, j), ErrInvalid.Code,
				fmt.Sprintf("must be between 1 and %d GiB", MaxDiskGiB)})
		}
	}
	if m.Priority != nil && (*m.Priority < 0 || *m.Priority > 2) {
		ps = append(ps, Problem{f + ".priority", ErrInvalid.Code, "must be 0 (low), 1 (normal) or 2 (high)"})
	}
	return ps
}

// validateBudget checks the bandwidth budget: at most MaxBudgetWindows,
// each a valid window with 0..MaxBudgetMbps, no two overlapping on a shared
// weekday (the crossing part of a window counts on the next day). A limited
// budget below maxConcurrent Mbit/s is refused: every copying member needs
// at least MinShareMbps, and a share of 0 would mean "no limit".
func validateBudget(b Budget, maxConcurrent int) []Problem {
	var ps []Problem
	checkMbps := func(f string, v int32) {
		switch {
		case v < 0 || v > MaxBudgetMbps:
			ps = append(ps, Problem{f, ErrBandwidth.Code, fmt.Sprintf("must be between 0 (unlimited) and %d Mbit/s", MaxBudgetMbps)})
		case v > 0 && maxConcurrent >= 1 && int(v) < maxConcurrent*MinShareMbps:
			ps = append(ps, Problem{f, ErrBandwidth.Code, fmt.Sprintf(
				"must be 0 (unlimited) or at least %d Mbit/s: %d Mbit/s for each of max_concurrent %d members",
				maxConcurrent*MinShareMbps, MinShareMbps, maxConcurrent)})
		}
	}
	checkMbps("bandwidth_budget.default_mbps", b.DefaultMbps)
	if len(b.Windows) > MaxBudgetWindows {
		ps = append(ps, Problem{"bandwidth_budget.windows", ErrTooManyWindows.Code, fmt.Sprintf("at most %d windows", MaxBudgetWindows)})
	}
	ws := make([]window, len(b.Windows))
	ok := make([]bool, len(b.Windows))
	for i, w := range b.Windows {
		f := fmt.Sprintf("bandwidth_budget.windows[%d]", i)
		var wps []Problem
		ws[i], wps = parseWindow(w, f)
		ok[i] = len(wps) == 0
		ps = append(ps, wps...)
		checkMbps(f+".mbps", w.Mbps)
	}
	for j := range ws {
		for i := 0; i < j; i++ {
			if ok[i] && ok[j] && overlap(ws[i], ws[j]) {
				ps = append(ps, Problem{fmt.Sprintf("bandwidth_budget.windows[%d]", j), ErrWindowsOverlap.Code,
					fmt.Sprintf("overlaps bandwidth_budget.windows[%d]", i)})
				break
			}
		}
	}
	return ps
}

// weekMinutes lays a window on a week of minutes (Sunday 00:00 = 0) as
// half-open intervals, the crossing part on the next day and Saturday
// night's crossing part wrapped to Sunday morning.
func weekMinutes(w window) [][2]int {
	const day, week = 24 * 60, 7 * 24 * 60
	var out [][2]int
	for d := 0; d < 7; d++ {
		if !w.days[d] {
			continue
		}
		s, e := d*day+w.from, d*day+w.to
		if w.to <= w.from {
			e += day
		}
		if e > week {
			out = append(out, [2]int{s, week}, [2]int{0, e - week})
		} else {
			out = append(out, [2]int{s, e})
		}
	}
	return out
}

func overlap(a, b window) bool {
	for _, x := range weekMinutes(a) {
		for _, y := range weekMinutes(b) {
			if x[0] < y[1] && y[0] < x[1] {
				return true
			}
		}
	}
	return false
}

// FindCycle follows depends_on links from a wave that would depend on
// dependsOn and returns the cycle it closes, as wave ids from id back to
// id, or nil when there is none. deps maps each existing wave's id to its
// depends_on ("" for none); the API reads it from the store.
func FindCycle(id, dependsOn string, deps map[string]string) []string {
	path := []string{id}
	seen := map[string]bool{id: true}
	for cur := dependsOn; cur != ""; cur = deps[cur] {
		path = append(path, cur)
		if cur == id {
			return path
		}
		if seen[cur] {
			// A cycle among the others, not through id: not this wave's
			// doing, but still refused rather than looped on.
			return path
		}
		seen[cur] = true
	}
	return nil
}

// OrderMembers returns member indexes in start order: higher priority
// first, then as listed.
func OrderMembers(ms []Member) []int {
	idx := make([]int, len(ms))
	for i := range idx {
		idx[i] = i
	}
	// Insertion into three buckets keeps it stable and obvious.
	var out []int
	for p := int32(2); p >= 0; p-- {
		for _, i := range idx {
			if ms[i].PriorityOf() == p {
				out = append(out, i)
			}
		}
	}
	for _, i := range idx { // out-of-range priorities (refused by Validate) last
		if q := ms[i].PriorityOf(); q < 0 || q > 2 {
			out = append(out, i)
		}
	}
	return out
}
