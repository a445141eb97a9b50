package web_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
	"github.com/smsflow/smsflow/internal/wave"
	"github.com/smsflow/smsflow/web"
)

// fakeWaves stands in for the engine's wave methods: it records calls and
// judges actions with wave.CheckAction on the stored state, as the
// workflow's Update validator would.
type fakeWaves struct {
	s     *store.Store
	tasks *fakeEngine // the task engine beside it

	mu          sync.Mutex
	scheduled   map[string]time.Time
	unscheduled []string
	paused      map[string]bool
	started     []string
	actions     []string
	scheduleErr error
	startErr    error
}

var _ web.WaveEngine = (*fakeWaves)(nil)

func newFakeWaves(s *store.Store) *fakeWaves {
	return &fakeWaves{s: s, scheduled: map[string]time.Time{}, paused: map[string]bool{}}
}

func (f *fakeWaves) ScheduleWave(_ context.Context, t store.Tenant, w *store.Wave) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.scheduleErr != nil {
		return f.scheduleErr
	}
	if w.StartAt == nil || t.DomainID != w.DomainID {
		return errors.New("fake: schedule without start_at or of another tenant")
	}
	f.scheduled[w.ID] = *w.StartAt
	return nil
}

func (f *fakeWaves) UnscheduleWave(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.scheduled, id)
	f.unscheduled = append(f.unscheduled, id)
	return nil
}

func (f *fakeWaves) PauseWaveSchedule(_ context.Context, id string, paused bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused[id] = paused
	return nil
}

func (f *fakeWaves) StartWave(_ context.Context, _ store.Tenant, w *store.Wave) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil {
		return f.startErr
	}
	f.started = append(f.started, w.ID)
	return nil
}

func (f *fakeWaves) WaveAction(ctx context.Context, id string, a wave.Action) error {
	var w store.Wave
	if err := f.s.DB().WithContext(ctx).Where("id = ?", id).Take(&w).Error; err != nil {
		return err
	}
	if err := wave.CheckAction(w.State, a); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, id+":"+string(a))
	return nil
}

func (f *fakeWaves) WaveRunURL(id string) string { return "http://temporal.test/workflows/wave/" + id }

func (f *fakeWaves) snapshot() (scheduled map[string]time.Time, started, actions, unscheduled []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sc := map[string]time.Time{}
	for k, v := range f.scheduled {
		sc[k] = v
	}
	return sc, slices.Clone(f.started), slices.Clone(f.actions), slices.Clone(f.unscheduled)
}

// fakeCapacity reports a fixed free space.
type fakeCapacity struct{ free int64 }

func (c fakeCapacity) FreeBytes(context.Context) (int64, error) { return c.free, nil }

// eachWave runs fn on every database with an API whose waves run on a fake
// engine, with capacity c (nil: not checked).
func eachWave(t *testing.T, c web.CapacityChecker, fn func(t *testing.T, e *env, fw *fakeWaves)) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		fw := newFakeWaves(s)
		fw.tasks = newFakeEngine(s)
		fn(t, newEnvWith(t, s, envOptions{engine: fw.tasks, taskOptions: taskOpts, waves: fw, capacity: c}), fw)
	})
}

// waveFixture is a tenant with a migration project and n registered
// sources named src-0.. with IPs 10.1.0.i.
type waveFixture struct {
	project string
	sources []string
}

func newWaveFixture(t *testing.T, e *env, n int) waveFixture {
	t.Helper()
	f := waveFixture{project: createMigProject(t, e, e.token, "wave-project")}
	for i := range n {
		body := withJSON(t, linuxSource(fmt.Sprintf("src-%d", i), nextMAC()), func(m map[string]any) {
			m["ip"] = fmt.Sprintf("10.1.0.%d", i+1)
		})
		f.sources = append(f.sources, register(t, e, e.token, body))
	}
	return f
}

// waveJSON is a valid create body.
func waveJSON(name, project string, members string) string {
	return `{"name":` + q(name) + `,"project_id":` + q(project) + `,"max_concurrent":2,"time_zone":"Europe/Berlin",
	"task_defaults":{"type":"MIGRATE_FILE","syncing":true},
	"bandwidth_budget":{"default_mbps":100,"windows":[{"start":"08:00","end":"18:00","weekdays":["MON","TUE"],"mbps":20}]},
	"cutover_windows":[{"start":"22:00","end":"02:00","weekdays":["SAT"]}],"cutover_mode":"approve","max_failures":1,
	"members":` + members + `}`
}

func createWave(t *testing.T, e *env, body string) string {
	t.Helper()
	r := e.do("POST", "/v3/waves", body, e.token)
	require.Equal(t, http.StatusOK, r.status, r.body)
	id, _ := r.json(t)["id"].(string)
	require.NotEmpty(t, id)
	return id
}

// waveAction posts operation op to wave id as the tenant's user.
func waveAction(e *env, id, op string) response {
	return e.do("POST", "/v3/waves/"+id+"/action", `{"operation":"`+op+`"}`, e.token)
}

func showWave(t *testing.T, e *env, id string) map[string]any {
	t.Helper()
	r := e.do("GET", "/v3/waves/"+id, "", e.token)
	require.Equal(t, http.StatusOK, r.status, r.body)
	return r.json(t)
}

func waveMembers(t *testing.T, e *env, id string) []store.WaveMember {
	t.Helper()
	ms, err := e.store.WaveMembers(t.Context(), tenantOf(e), id)
	require.NoError(t, err)
	return ms
}

func setWaveState(t *testing.T, e *env, id string, st wave.WaveState) {
	t.Helper()
	require.NoError(t, e.store.DB().Model(&store.Wave{}).Where("id = ?", id).Update("state", string(st)).Error)
}

// errorDetails returns the details' messages of an error answer.
func errorDetails(t *testing.T, r response) []string {
	t.Helper()
	var b struct {
		Details []struct {
			Msg string `json:"error_msg"`
		} `json:"details"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &b))
	var out []string
	for _, d := range b.Details {
		out = append(out, d.Msg)
	}
	return out
}

func TestWaveCreate(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, _ *fakeWaves) {
		f := newWaveFixture(t, e, 3)
		id := createWave(t, e, waveJSON("w1", f.project,
			`[{"source_id":`+q(f.sources[0])+`,"priority":2,"disk_sizes_gib":[30]},{"name":"src-1","target_name":"t-1"},{"ip":"10.1.0.3"}]`))
		m := showWave(t, e, id)
		assert.Equal(t, "DRAFT", m["state"])
		assert.Equal(t, "w1", m["name"])
		assert.Equal(t, f.project, m["project_id"])
		assert.Equal(t, "approve", m["cutover_mode"])
		assert.EqualValues(t, 3, m["member_count"])
		members := m["members"].([]any)
		require.Len(t, members, 3)
		got := []string{}
		for _, x := range members {
			got = append(got, x.(map[string]any)["source_id"].(string))
		}
		assert.Equal(t, f.sources, got, "members resolved by id, name and IP, in order")
		assert.Equal(t, "t-1", members[1].(map[string]any)["target_name"])
		assert.EqualValues(t, 2, members[0].(map[string]any)["priority"])
		assert.EqualValues(t, 1, members[1].(map[string]any)["priority"], "priority defaults to normal")

		future := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
		past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
		edit := func(name string, fn func(m map[string]any)) string {
			return withJSON(t, waveJSON(name, f.project, `[]`), fn)
		}
		// A second source named like an existing one makes the name ambiguous.
		register(t, e, e.token, withJSON(t, linuxSource("src-2", nextMAC()), func(m map[string]any) { m["ip"] = "10.1.0.99" }))
		for _, tc := range []struct {
			name, body string
			status     int
			code       string
			detail     string
		}{
			{"not json", `{"name":`, 400, "SMS.6010", ""},
			{"no name", edit("", func(m map[string]any) {}), 400, string(wave.ErrInvalid.Code), "name"},
			{"bad zone", edit("z", func(m map[string]any) { m["time_zone"] = "Mars/Base" }), 400, string(wave.ErrTimeZone.Code), "time_zone"},
			{"max_concurrent", edit("z", func(m map[string]any) { m["max_concurrent"] = 0 }), 400, string(wave.ErrMaxConcurrent.Code), "max_concurrent"},
			{"overlap", edit("z", func(m map[string]any) {
				m["bandwidth_budget"] = map[string]any{"default_mbps": 100, "windows": []any{
					map[string]any{"start": "08:00", "end": "12:00", "mbps": 10}, map[string]any{"start": "11:00", "end": "13:00", "mbps": 10}}}
			}), 400, string(wave.ErrWindowsOverlap.Code), "windows[1]"},
			{"cutover window without time", edit("z", func(m map[string]any) {
				m["cutover_windows"] = []any{map[string]any{"weekdays": []any{"SAT"}}}
			}), 400, string(wave.ErrWindowNoTime.Code), "cutover_windows[0]"},
			{"start in the past", edit("z", func(m map[string]any) { m["start_at"] = past }), 400, string(wave.ErrStartInPast.Code), "start_at"},
			{"project of nobody", edit("z", func(m map[string]any) { m["project_id"] = "nope" }), 400, string(wave.ErrInvalid.Code), "project_id"},
			{"unknown source", edit("z", func(m map[string]any) {
				m["members"] = []any{map[string]any{"name": "src-0"}, map[string]any{"name": "ghost"}}
			}), 400, string(wave.ErrUnknownSource.Code), "members[1].name"},
			{"ambiguous name", edit("z", func(m map[string]any) { m["members"] = []any{map[string]any{"name": "src-2"}} }),
				400, string(wave.ErrUnknownSource.Code), "source_id"},
			{"id and name disagree", edit("z", func(m map[string]any) {
				m["members"] = []any{map[string]any{"source_id": f.sources[0], "name": "src-1"}}
			}), 400, string(wave.ErrUnknownSource.Code), "different"},
			{"same source twice", edit("z", func(m map[string]any) {
				m["members"] = []any{map[string]any{"source_id": f.sources[0]}, map[string]any{"ip": "10.1.0.1"}}
			}), 400, string(wave.ErrDuplicateMember.Code), "members[1]"},
			{"name taken", edit("w1", func(m map[string]any) {}), 400, string(wave.ErrNameExists.Code), ""},
			{"depends on nothing", edit("z", func(m map[string]any) { m["depends_on"] = "nope" }), 400, string(wave.ErrDependency.Code), ""},
			{"bad priority", edit("z", func(m map[string]any) {
				m["members"] = []any{map[string]any{"name": "src-0", "priority": 7}}
			}), 400, string(wave.ErrInvalid.Code), "priority"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.do("POST", "/v3/waves", tc.body, e.token)
				wantError(t, r, tc.status, tc.code)
				if tc.detail != "" {
					assert.Contains(t, r.body, tc.detail)
				}
			})
		}
		_ = future
		var n int64
		require.NoError(t, e.store.DB().Model(&store.Wave{}).Count(&n).Error)
		assert.EqualValues(t, 1, n, "no refused create left a wave")

		// A source in another active wave.
		setWaveState(t, e, id, wave.WaveScheduled)
		r := e.do("POST", "/v3/waves", waveJSON("w2", f.project, `[{"name":"src-0"}]`), e.token)
		wantError(t, r, 409, string(wave.ErrMemberInWave.Code))
		assert.Contains(t, r.body, id)

		// Dependencies: w3 depends on w1; making w1 depend on w3 is a cycle.
		w3 := createWave(t, e, withJSON(t, waveJSON("w3", f.project, `[]`), func(m map[string]any) { m["depends_on"] = id }))
		setWaveState(t, e, id, wave.WaveDraft)
		r = e.do("PUT", "/v3/waves/"+id, `{"depends_on":`+q(w3)+`}`, e.token)
		wantError(t, r, 400, string(wave.ErrDependencyCycle.Code))
		r = e.do("PUT", "/v3/waves/"+id, `{"depends_on":`+q(id)+`}`, e.token)
		wantError(t, r, 400, string(wave.ErrDependencyCycle.Code))

		// Another tenant cannot use this tenant's project or sources.
		r = e.do("POST", "/v3/waves", waveJSON("x", f.project, `[]`), e.other)
		wantError(t, r, 400, string(wave.ErrInvalid.Code))
		assert.Contains(t, r.body, "project_id")
	})
}

func TestWaveListAndTenancy(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, _ *fakeWaves) {
		f := newWaveFixture(t, e, 1)
		ids := []string{}
		for i := range 3 {
			ids = append(ids, createWave(t, e, waveJSON(fmt.Sprintf("w%d", i), f.project, `[]`)))
		}
		setWaveState(t, e, ids[2], wave.WaveScheduled)
		list := func(query string) (int, []string) {
			r := e.do("GET", "/v3/waves"+query, "", e.token)
			require.Equal(t, http.StatusOK, r.status, r.body)
			m := r.json(t)
			var names []string
			for _, w := range m["waves"].([]any) {
				names = append(names, w.(map[string]any)["name"].(string))
			}
			return int(m["count"].(float64)), names
		}
		n, names := list("")
		assert.Equal(t, 3, n)
		assert.Equal(t, []string{"w0", "w1", "w2"}, names)
		n, names = list("?limit=1&offset=1")
		assert.Equal(t, 3, n, "count is of every match, not the page")
		assert.Equal(t, []string{"w1"}, names)
		n, names = list("?limit=0")
		assert.Equal(t, 3, n)
		assert.Empty(t, names)
		n, names = list("?state=SCHEDULED")
		assert.Equal(t, 1, n)
		assert.Equal(t, []string{"w2"}, names)
		n, _ = list("?name=w1&project_id=" + f.project)
		assert.Equal(t, 1, n)
		n, _ = list("?project_id=other")
		assert.Equal(t, 0, n)
		for _, bad := range []string{"?state=NAPPING", "?limit=101", "?limit=x", "?offset=-1"} {
			wantError(t, e.do("GET", "/v3/waves"+bad, "", e.token), 400, "SMS.9001", bad)
		}

		// Another domain sees none of them, and its answers for them are
		// those for a wave that does not exist.
		r := e.do("GET", "/v3/waves", "", e.other)
		assert.EqualValues(t, 0, r.json(t)["count"])
		missing := "00000000-0000-0000-0000-000000000000"
		for _, tc := range []struct{ method, path, body string }{
			{"GET", "/v3/waves/%s", ""},
			{"PUT", "/v3/waves/%s", `{"description":"x"}`},
			{"DELETE", "/v3/waves/%s", ""},
			{"POST", "/v3/waves/%s/members", `{"members":[{"name":"src-0"}]}`},
			{"POST", "/v3/waves/%s/members/delete", `{"ids":["x"]}`},
			{"POST", "/v3/waves/%s/members/import", "name\nsrc-0\n"},
			{"GET", "/v3/waves/%s/preflight", ""},
			{"POST", "/v3/waves/%s/action", `{"operation":"start"}`},
			{"GET", "/v3/waves/%s/report", ""},
		} {
			theirs := e.do(tc.method, fmt.Sprintf(tc.path, ids[0]), tc.body, e.other)
			none := e.do(tc.method, fmt.Sprintf(tc.path, missing), tc.body, e.other)
			wantError(t, theirs, http.StatusNotFound, string(wave.ErrNotFound.Code), tc.method+" "+tc.path)
			assert.Equal(t, strings.ReplaceAll(none.body, missing, ids[0]), theirs.body, tc.method+" "+tc.path)
		}
		assert.Equal(t, "", showWave(t, e, ids[0])["description"], "untouched")
		assert.Len(t, waveMembers(t, e, ids[0]), 0)
	})
}

func TestWaveUpdateAndDelete(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, fw *fakeWaves) {
		f := newWaveFixture(t, e, 2)
		id := createWave(t, e, waveJSON("w", f.project, `[{"name":"src-0"}]`))
		r := e.do("PUT", "/v3/waves/"+id, `{"description":"night run","max_concurrent":3,"test_first":true}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		m := showWave(t, e, id)
		assert.Equal(t, "night run", m["description"])
		assert.EqualValues(t, 3, m["max_concurrent"])
		assert.Equal(t, true, m["test_first"])
		assert.Equal(t, "approve", m["cutover_mode"], "fields not sent are kept")

		wantError(t, e.do("PUT", "/v3/waves/"+id, `{"members":[]}`, e.token), 400, string(wave.ErrInvalid.Code))
		wantError(t, e.do("PUT", "/v3/waves/"+id, `{"max_concurrent":0}`, e.token), 400, string(wave.ErrMaxConcurrent.Code))
		other := createWave(t, e, waveJSON("other", f.project, `[]`))
		wantError(t, e.do("PUT", "/v3/waves/"+other, `{"name":"w"}`, e.token), 400, string(wave.ErrNameExists.Code))

		// Scheduled: a new start_at moves the schedule; clearing it is refused.
		start := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
		r = e.do("PUT", "/v3/waves/"+id, `{"start_at":`+q(start.Format(time.RFC3339))+`}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		r = waveAction(e, id, "schedule")
		require.Equal(t, http.StatusOK, r.status, r.body)
		later := start.Add(time.Hour)
		r = e.do("PUT", "/v3/waves/"+id, `{"start_at":`+q(later.Format(time.RFC3339))+`}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		sc, _, _, _ := fw.snapshot()
		assert.True(t, later.Equal(sc[id]), "the schedule moved with start_at: %v", sc[id])
		wantError(t, e.do("PUT", "/v3/waves/"+id, `{"start_at":null}`, e.token), 400, string(wave.ErrInvalid.Code))

		// Running: neither changed nor deleted.
		setWaveState(t, e, id, wave.WaveReplicating)
		wantError(t, e.do("PUT", "/v3/waves/"+id, `{"description":"x"}`, e.token), 409, string(wave.ErrNotEditable.Code))
		wantError(t, e.do("DELETE", "/v3/waves/"+id, "", e.token), 409, string(wave.ErrRunning.Code))
		wantError(t, e.do("POST", "/v3/waves/"+id+"/members", `{"members":[{"name":"src-1"}]}`, e.token), 409,
			string(wave.ErrNotEditable.Code))

		// Scheduled again: delete drops the schedule and the tasks made for it.
		setWaveState(t, e, id, wave.WaveScheduled)
		ms := waveMembers(t, e, id)
		require.NotNil(t, ms[0].TaskID)
		taskID := *ms[0].TaskID
		require.True(t, taskExists(t, e, taskID))
		r = e.do("DELETE", "/v3/waves/"+id, "", e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		_, _, _, un := fw.snapshot()
		assert.Contains(t, un, id)
		assert.False(t, taskExists(t, e, taskID), "the never-started task went with the wave")
		assert.Empty(t, currentTaskOf(t, e, f.sources[0]), "its source is free")
		wantError(t, e.do("GET", "/v3/waves/"+id, "", e.token), 404, string(wave.ErrNotFound.Code))
		// A draft just goes.
		require.Equal(t, http.StatusOK, e.do("DELETE", "/v3/waves/"+other, "", e.token).status)
	})
}

func TestWaveMembersAddRemove(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, _ *fakeWaves) {
		f := newWaveFixture(t, e, 3)
		id := createWave(t, e, waveJSON("w", f.project, `[{"name":"src-0"}]`))
		r := e.do("POST", "/v3/waves/"+id+"/members", `{"members":[{"name":"src-1"},{"ip":"10.1.0.3","priority":0}]}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		added := r.json(t)["ids"].([]any)
		require.Len(t, added, 2)
		ms := waveMembers(t, e, id)
		require.Len(t, ms, 3)
		assert.Equal(t, f.sources[2], ms[2].SourceID)

		wantError(t, e.do("POST", "/v3/waves/"+id+"/members", `{"members":[{"name":"src-1"}]}`, e.token), 400,
			string(wave.ErrDuplicateMember.Code))
		wantError(t, e.do("POST", "/v3/waves/"+id+"/members", `{"members":[]}`, e.token), 400, string(wave.ErrInvalid.Code))
		wantError(t, e.do("POST", "/v3/waves/"+id+"/members", `{"members":[{"name":"nobody"}]}`, e.token), 400,
			string(wave.ErrUnknownSource.Code))
		assert.Len(t, waveMembers(t, e, id), 3, "refused adds added nothing")

		// Remove: all or none.
		r = e.do("POST", "/v3/waves/"+id+"/members/delete", `{"ids":[`+q(ms[1].ID)+`,"nope"]}`, e.token)
		wantError(t, r, 404, string(wave.ErrInvalid.Code))
		assert.Contains(t, r.body, "nope")
		require.NoError(t, e.store.DB().Model(&store.WaveMember{}).Where("id = ?", ms[2].ID).Update("state", "COPYING").Error)
		wantError(t, e.do("POST", "/v3/waves/"+id+"/members/delete", `{"ids":[`+q(ms[1].ID)+`,`+q(ms[2].ID)+`]}`, e.token), 409,
			string(wave.ErrMemberBusy.Code))
		assert.Len(t, waveMembers(t, e, id), 3)
		r = e.do("POST", "/v3/waves/"+id+"/members/delete", `{"ids":[`+q(ms[1].ID)+`]}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Len(t, waveMembers(t, e, id), 2)
		assert.EqualValues(t, 2, showWave(t, e, id)["member_count"])
	})
}

// csvImport posts a CSV body to a wave's import.
func csvImport(e *env, id, body, contentType string) response {
	return e.doH("POST", "/v3/waves/"+id+"/members/import", body,
		map[string]string{"X-Auth-Token": e.token, "Content-Type": contentType})
}

func TestWaveImport(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, _ *fakeWaves) {
		f := newWaveFixture(t, e, 3)
		id := createWave(t, e, waveJSON("w", f.project, `[]`))
		count := func() int { return len(waveMembers(t, e, id)) }

		refusals := []struct {
			name, body string
			status     int
			code       string
			lines      []string
		}{
			{"unknown server", "name,priority\r\nsrc-0,2\r\nghost,1\r\nsrc-1,0\r\nphantom,1\r\n", 400,
				string(wave.ErrUnknownSource.Code), []string{"line 3: name:", "line 5: name:"}},
			{"duplicate row", "name\nsrc-0\nsrc-1\nSRC-0\n", 400, string(wave.ErrCSVDuplicate.Code), []string{"line 4"}},
			{"same server by name and ip", "name,ip\nsrc-0,\n,10.1.0.1\n", 400, string(wave.ErrDuplicateMember.Code), []string{"line 3"}},
			{"missing column", "target_name\nx\n", 400, string(wave.ErrCSVColumn.Code), []string{"line 1"}},
			{"bad value", "name,priority\nsrc-0,9\n", 400, string(wave.ErrCSVValue.Code), []string{"line 2"}},
			{"binary junk", "name\n\x00\x01\x02\xff\xfe junk\n", 400, string(wave.ErrCSVFile.Code), nil},
			{"no rows", "name\n", 400, string(wave.ErrCSVValue.Code), []string{"line 1"}},
			{"10 MB", "name\n" + strings.Repeat("src-0\n", 10<<20/6), 413, string(wave.ErrCSVTooLarge.Code), nil},
		}
		for _, tc := range refusals {
			t.Run(tc.name, func(t *testing.T) {
				r := csvImport(e, id, tc.body, "text/csv")
				assert.Equal(t, tc.status, r.status, r.body)
				code, _ := r.smsError(t)
				assert.Equal(t, tc.code, code, r.body)
				details := strings.Join(errorDetails(t, r), "\n")
				for _, l := range tc.lines {
					assert.Contains(t, details, l)
				}
				assert.Equal(t, 0, count(), "nothing imported")
			})
		}

		// A BOM, CRLF, IPs and names, a multipart upload.
		r := csvImport(e, id, "\ufeffname,ip,target_name,priority,disk_sizes\r\nsrc-0,,t0,2,40;100\r\n,10.1.0.2,,,\r\n", "text/csv; charset=utf-8")
		require.Equal(t, http.StatusOK, r.status, r.body)
		ms := waveMembers(t, e, id)
		require.Len(t, ms, 2)
		assert.Equal(t, []string{f.sources[0], f.sources[1]}, []string{ms[0].SourceID, ms[1].SourceID})
		assert.Equal(t, "t0", ms[0].TargetName)
		assert.Equal(t, []int64{40, 100}, ms[0].DiskSizesGiB)
		assert.EqualValues(t, 2, ms[0].Priority)

		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, err := mw.CreateFormFile("file", "members.csv")
		require.NoError(t, err)
		_, _ = fw.Write([]byte("name\nsrc-2\n"))
		require.NoError(t, mw.Close())
		r = csvImport(e, id, buf.String(), mw.FormDataContentType())
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, 3, count())
		// Importing a member again is refused as a whole.
		r = csvImport(e, id, "name\nsrc-2\n", "text/csv")
		wantError(t, r, 400, string(wave.ErrDuplicateMember.Code))
		wantError(t, csvImport(e, id, "name\nsrc-2\n", "application/json"), 400, "SMS.6016")
	})
}

func TestWavePreflightAndActions(t *testing.T) {
	eachWave(t, fakeCapacity{free: 1 << 40}, func(t *testing.T, e *env, fw *fakeWaves) {
		f := newWaveFixture(t, e, 2)
		start := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		id := createWave(t, e, withJSON(t, waveJSON("w", f.project, `[{"name":"src-0"},{"name":"src-1","target_name":"t1"}]`),
			func(m map[string]any) { m["start_at"] = start.Format(time.RFC3339) }))

		// src-1's agent is silent and src-0 has a task of its own.
		setSource(t, e, f.sources[1], map[string]any{"last_visit_time": 0})
		own := createTask(t, e, e.token, taskBody("own", f.sources[0]))
		r := e.do("GET", "/v3/waves/"+id+"/preflight", "", e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		pf := r.json(t)
		assert.Equal(t, false, pf["ok"])
		assert.EqualValues(t, 2, pf["blocking"])
		failed := map[string]string{}
		for _, m := range pf["members"].([]any) {
			mm := m.(map[string]any)
			for _, c := range mm["checks"].([]any) {
				cc := c.(map[string]any)
				if cc["ok"] == false {
					failed[mm["source_name"].(string)] = cc["name"].(string)
				}
			}
		}
		assert.Equal(t, map[string]string{"src-0": "no_other_active_task", "src-1": "agent_connected"}, failed)
		assert.Equal(t, "target_capacity", pf["wave"].([]any)[0].(map[string]any)["name"])

		// Blocking problems refuse schedule and start; nothing is made.
		for _, op := range []string{"schedule", "start"} {
			r = e.do("POST", "/v3/waves/"+id+"/action", `{"operation":`+q(op)+`}`, e.token)
			wantError(t, r, 409, string(wave.ErrPreflight.Code))
			assert.Contains(t, r.body, "agent_connected")
		}
		assert.Equal(t, "DRAFT", showWave(t, e, id)["state"])
		for _, m := range waveMembers(t, e, id) {
			assert.Nil(t, m.TaskID)
		}

		// Fixed: schedule makes READY tasks that name the wave, without
		// starting a workflow, and schedules the wave.
		setSource(t, e, f.sources[1], map[string]any{"last_visit_time": time.Now().UnixMilli()})
		require.NoError(t, e.store.DeleteTask(t.Context(), tenantOf(e), own))
		// The engine refusing the schedule takes everything back.
		fw.mu.Lock()
		fw.scheduleErr = errors.New("temporal down")
		fw.mu.Unlock()
		r = waveAction(e, id, "schedule")
		assert.Equal(t, 500, r.status, r.body)
		assert.Equal(t, "DRAFT", showWave(t, e, id)["state"])
		for _, m := range waveMembers(t, e, id) {
			assert.Nil(t, m.TaskID, "tasks taken back")
		}
		assert.Empty(t, currentTaskOf(t, e, f.sources[0]))
		fw.mu.Lock()
		fw.scheduleErr = nil
		fw.mu.Unlock()

		r = waveAction(e, id, "schedule")
		require.Equal(t, http.StatusOK, r.status, r.body)
		m := showWave(t, e, id)
		assert.Equal(t, "SCHEDULED", m["state"])
		sc, started, _, _ := fw.snapshot()
		assert.True(t, start.Equal(sc[id]))
		assert.Empty(t, started)
		ms := waveMembers(t, e, id)
		for _, mem := range ms {
			require.NotNil(t, mem.TaskID)
			task := taskRow(t, e, *mem.TaskID)
			assert.Equal(t, sms.TaskReady, task.State)
			require.NotNil(t, task.WaveID)
			assert.Equal(t, id, *task.WaveID)
			assert.Equal(t, sms.MigrateFile, task.Type)
			assert.True(t, task.Syncing, "the wave's defaults apply")
		}
		assert.Equal(t, "t1", taskRow(t, e, *ms[1].TaskID).TargetServer.Name, "the member's override applies")
		assert.Equal(t, "w-src-0", taskRow(t, e, *ms[0].TaskID).Name)
		starts := fw.tasks.calls().starts
		require.Len(t, starts, 1, "no task workflow was started but the lone task's")
		assert.Equal(t, own, starts[0].TaskID)

		// schedule twice: the state forbids it (409 before the engine).
		wantError(t, waveAction(e, id, "schedule"), 409, string(wave.ErrBadTransition.Code))
		wantError(t, waveAction(e, id, "approve_test"), 409, string(wave.ErrNotAwaiting.Code))
		wantError(t, waveAction(e, id, "fly"), 400, "SMS.9001")
		wantError(t, e.do("POST", "/v3/waves/"+id+"/action", `{}`, e.token), 400, "SMS.6013")

		// Pause and resume a scheduled wave act on its schedule.
		require.Equal(t, http.StatusOK, waveAction(e, id, "pause").status)
		assert.Equal(t, "PAUSED", showWave(t, e, id)["state"])
		require.Equal(t, http.StatusOK, waveAction(e, id, "resume").status)
		assert.Equal(t, "SCHEDULED", showWave(t, e, id)["state"])

		// start now: the schedule goes, the wave's workflow starts, the
		// tasks made at schedule are kept.
		r = waveAction(e, id, "start")
		require.Equal(t, http.StatusOK, r.status, r.body)
		sc, started, _, un := fw.snapshot()
		assert.Equal(t, []string{id}, started)
		assert.NotContains(t, sc, id)
		assert.Contains(t, un, id)
		m = showWave(t, e, id)
		assert.Equal(t, "REPLICATING", m["state"])
		assert.NotEmpty(t, m["started_at"])
		assert.Equal(t, "http://temporal.test/workflows/wave/"+id, m["workflow_url"])
		assert.Equal(t, *ms[0].TaskID, *waveMembers(t, e, id)[0].TaskID)

		// Running actions go to the workflow; the state is checked first.
		require.Equal(t, http.StatusOK, waveAction(e, id, "pause").status)
		wantError(t, waveAction(e, id, "resume"), 409, string(wave.ErrBadTransition.Code))
		require.Equal(t, http.StatusOK, waveAction(e, id, "retry_failed").status)
		_, _, acts, _ := fw.snapshot()
		assert.Equal(t, []string{id + ":pause", id + ":retry_failed"}, acts)

		// A running wave's sources and tasks cannot be deleted.
		r = e.do("DELETE", "/v3/sources/"+f.sources[0], "", e.token)
		wantError(t, r, 409, string(wave.ErrSourceInWave.Code))
		assert.Contains(t, r.body, id)
		wantError(t, e.do("POST", "/v3/sources/delete", `{"ids":[`+q(f.sources[1])+`]}`, e.token), 409, string(wave.ErrSourceInWave.Code))
		wantError(t, e.do("DELETE", "/v3/tasks/"+*ms[0].TaskID, "", e.token), 409, string(wave.ErrRunning.Code))
		assert.True(t, taskExists(t, e, *ms[0].TaskID))
	})
}

func TestWaveCapacityAndStartChecks(t *testing.T) {
	eachWave(t, fakeCapacity{free: 10}, func(t *testing.T, e *env, fw *fakeWaves) {
		f := newWaveFixture(t, e, 1)
		setSource(t, e, f.sources[0], map[string]any{"totalsize": 1000})
		id := createWave(t, e, waveJSON("w", f.project, `[{"name":"src-0"}]`))
		r := waveAction(e, id, "start")
		wantError(t, r, 409, string(wave.ErrPreflight.Code))
		assert.Contains(t, r.body, "target_capacity")
		// schedule needs a start_at; an empty wave does not start.
		wantError(t, waveAction(e, id, "schedule"), 400, string(wave.ErrInvalid.Code))
		empty := createWave(t, e, waveJSON("empty", f.project, `[]`))
		wantError(t, waveAction(e, empty, "start"), 409, string(wave.ErrPreflight.Code))
		// A dependency not DONE blocks start.
		dep := createWave(t, e, withJSON(t, waveJSON("dep", f.project, `[]`), func(m map[string]any) { m["depends_on"] = empty }))
		require.Equal(t, http.StatusOK, e.do("POST", "/v3/waves/"+dep+"/members", `{"members":[{"name":"src-0"}]}`, e.token).status)
		setSource(t, e, f.sources[0], map[string]any{"totalsize": 1})
		r = waveAction(e, dep, "start")
		wantError(t, r, 409, string(wave.ErrPreflight.Code))
		assert.Contains(t, r.body, "depends_on")
		_, started, _, _ := fw.snapshot()
		assert.Empty(t, started)
	})
}

func TestWaveShowAndReport(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, _ *fakeWaves) {
		f := newWaveFixture(t, e, 3)
		id := createWave(t, e, waveJSON("w", f.project, `[{"name":"src-0"},{"name":"src-1"},{"name":"src-2"}]`))
		r := waveAction(e, id, "start")
		require.Equal(t, http.StatusOK, r.status, r.body)
		ms := waveMembers(t, e, id)
		ten := tenantOf(e)
		// Member 0 copies at 50 Mbit/s with 1 GB left; member 1 synced and
		// churns; member 2 was cut over.
		setTask(t, e, *ms[0].TaskID, map[string]any{"state": sms.TaskRunning, "replicatesize": 1_000_000_000, "totalsize": 2_000_000_000, "migrate_speed": 50.0})
		require.NoError(t, e.store.UpdateWaveMember(t.Context(), ten, id, ms[0].ID, func(m *store.WaveMember) error {
			m.State, m.ShareMbps, m.LastSpeedMbps = wave.MemberCopying, 50, 50
			return nil
		}))
		t0 := time.Now().Add(-5 * time.Hour).UTC().Truncate(time.Second)
		require.NoError(t, e.store.UpdateWaveMember(t.Context(), ten, id, ms[1].ID, func(m *store.WaveMember) error {
			m.State, m.ShareMbps = wave.MemberCopying, 50
			return nil
		}))
		require.NoError(t, e.store.UpdateWaveMember(t.Context(), ten, id, ms[1].ID, func(m *store.WaveMember) error {
			m.State = wave.MemberSyncing
			m.CopyStartedAt, m.CopyEndedAt, m.SyncedAt = &t0, ptrTime(t0.Add(time.Hour)), ptrTime(t0.Add(time.Hour))
			m.Churn = []wave.SyncPass{{End: t0.Add(2 * time.Hour), BytesChanged: 1e9}, {End: t0.Add(3 * time.Hour), BytesChanged: 1e9}, {End: t0.Add(4 * time.Hour), BytesChanged: 1e9}}
			return nil
		}))
		setTask(t, e, *ms[1].TaskID, map[string]any{"state": sms.TaskSyncing, "replicatesize": 500, "totalsize": 500})
		for _, st := range []wave.MemberState{wave.MemberCopying, wave.MemberSyncing, wave.MemberCuttingOver, wave.MemberDone} {
			require.NoError(t, e.store.UpdateWaveMember(t.Context(), ten, id, ms[2].ID, func(m *store.WaveMember) error {
				m.State = st
				if st == wave.MemberDone {
					m.CutoverStartedAt, m.TargetStartedAt = &t0, ptrTime(t0.Add(90*time.Second))
					m.Verification, m.BytesMoved, m.BytesTotal = "PASSED", 300, 300
				}
				return nil
			}))
		}

		m := showWave(t, e, id)
		members := m["members"].([]any)
		m0, m1, m2 := members[0].(map[string]any), members[1].(map[string]any), members[2].(map[string]any)
		assert.Equal(t, "COPYING", m0["state"])
		assert.Equal(t, "RUNNING", m0["task_state"])
		assert.EqualValues(t, 50, m0["percent"])
		assert.EqualValues(t, 1_000_000_000, m0["bytes_done"])
		assert.EqualValues(t, 2_000_000_000, m0["bytes_total"])
		assert.EqualValues(t, 50, m0["speed_mbps"])
		eta, err := time.Parse(time.RFC3339, m0["eta"].(string))
		require.NoError(t, err)
		assert.WithinDuration(t, time.Now().Add(160*time.Second), eta, 5*time.Second, "1 GB at 50 Mbit/s")
		assert.Nil(t, m1["eta"], "a syncing member has no copy to end")
		require.NotNil(t, m1["churn_bytes_per_hour"])
		assert.InDelta(t, 1e9, m1["churn_bytes_per_hour"], 1)
		// 1 GB an hour against a 50 Mbit/s share (22.5 GB an hour): the
		// final pass catches up an hour of churn in 1h·1/(22.5-1).
		require.NotNil(t, m1["expected_downtime_seconds"])
		assert.InDelta(t, 3600.0/21.5, m1["expected_downtime_seconds"], 1)
		assert.Equal(t, false, m1["not_converging"])
		assert.Equal(t, "DONE", m2["state"])
		totals := m["totals"].(map[string]any)
		assert.EqualValues(t, 3, totals["members"])
		assert.EqualValues(t, 1, totals["by_state"].(map[string]any)["DONE"])
		assert.EqualValues(t, 2_000_000_800, totals["bytes_total"])
		assert.NotNil(t, totals["copy_eta"])
		assert.EqualValues(t, 1, m["done_count"])

		// The agent verified member 1's task and one disk differed; the
		// member itself records no verification: the report reads the task's.
		require.NoError(t, e.store.SetConsistencyResults(t.Context(), ten, *ms[1].TaskID, []store.ConsistencyResult{
			{DirCheck: "/dev/vda", NumTotalFiles: 10}, {DirCheck: "/dev/vdb", NumTotalFiles: 10, NumDifferentFiles: 1}}))

		// Report, JSON and CSV.
		r = e.do("GET", "/v3/waves/"+id+"/report", "", e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		rep := r.json(t)["members"].([]any)
		require.Len(t, rep, 3)
		r0, r1, r2 := rep[0].(map[string]any), rep[1].(map[string]any), rep[2].(map[string]any)
		assert.Equal(t, "", r0["verification"], "not verified yet")
		assert.Equal(t, "FAILED", r1["verification"], "from the task's consistency results")
		assert.EqualValues(t, 3600, r1["copy_seconds"])
		assert.EqualValues(t, 90, r2["downtime_seconds"], "measured downtime: final pass start to target started")
		assert.Equal(t, "PASSED", r2["verification"])
		for _, how := range []map[string]string{{"q": "?format=csv"}, {"accept": "text/csv"}} {
			r = e.doH("GET", "/v3/waves/"+id+"/report"+how["q"], "", map[string]string{"X-Auth-Token": e.token, "Accept": how["accept"]})
			require.Equal(t, http.StatusOK, r.status, r.body)
			assert.Contains(t, r.header.Get("Content-Type"), "text/csv")
			recs, err := csv.NewReader(strings.NewReader(r.body)).ReadAll()
			require.NoError(t, err)
			require.Len(t, recs, 4)
			assert.Equal(t, "member_id", recs[0][0])
			assert.Equal(t, "src-2", recs[3][2])
			assert.Equal(t, "90.000", recs[3][9])
		}
		wantError(t, e.do("GET", "/v3/waves/"+id+"/report?format=xml", "", e.token), 400, "SMS.9001")
	})
}

func ptrTime(t time.Time) *time.Time { return &t }

// TestWaveTaskCreationRollback: a member whose task cannot be made (a
// Windows source for a file-level wave, a disk smaller than what its
// source uses) refuses start, and the tasks made for the members before it
// are taken back, their members left without a task.
func TestWaveTaskCreationRollback(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, fw *fakeWaves) {
		f := newWaveFixture(t, e, 3)
		setSource(t, e, f.sources[1], map[string]any{"os_type": "WINDOWS"})
		id := createWave(t, e, waveJSON("w", f.project, `[{"name":"src-0"},{"name":"src-1"}]`))
		r := waveAction(e, id, "start")
		wantError(t, r, 400, "SMS.7712")
		assert.Contains(t, r.body, f.sources[1], "the detail names the member's source")
		check := func() {
			t.Helper()
			assert.Equal(t, "DRAFT", showWave(t, e, id)["state"])
			for _, m := range waveMembers(t, e, id) {
				assert.Nil(t, m.TaskID, "member %s keeps no task", m.ID)
			}
			assert.EqualValues(t, 0, taskCount(t, e))
			assert.Empty(t, currentTaskOf(t, e, f.sources[0]))
		}
		check()

		small := createWave(t, e, waveJSON("small", f.project, `[{"name":"src-0"},{"name":"src-2","disk_sizes_gib":[1]}]`))
		r = waveAction(e, small, "start")
		wantError(t, r, 400, string(wave.ErrInvalid.Code))
		assert.Contains(t, r.body, "cannot hold")
		assert.Equal(t, "DRAFT", showWave(t, e, small)["state"])
		for _, m := range waveMembers(t, e, small) {
			assert.Nil(t, m.TaskID)
		}
		assert.EqualValues(t, 0, taskCount(t, e))
		_, started, _, _ := fw.snapshot()
		assert.Empty(t, started)
	})
}

// TestWaveScheduledMembersAndCancel: in a scheduled wave an added member
// gets its task at once and a removed one loses it; cancel before the
// start drops the Schedule and the tasks and frees the sources.
func TestWaveScheduledMembersAndCancel(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, fw *fakeWaves) {
		f := newWaveFixture(t, e, 3)
		start := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
		id := createWave(t, e, withJSON(t, waveJSON("w", f.project, `[{"name":"src-0"}]`),
			func(m map[string]any) { m["start_at"] = start.Format(time.RFC3339) }))
		require.Equal(t, http.StatusOK, waveAction(e, id, "schedule").status)
		r := e.do("POST", "/v3/waves/"+id+"/members", `{"members":[{"name":"src-1"},{"name":"src-2"}]}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		ms := waveMembers(t, e, id)
		require.Len(t, ms, 3)
		for _, m := range ms {
			require.NotNil(t, m.TaskID, "every member of a scheduled wave has its task")
			assert.Equal(t, *m.TaskID, currentTaskOf(t, e, m.SourceID))
		}
		r = e.do("POST", "/v3/waves/"+id+"/members/delete", `{"ids":[`+q(ms[2].ID)+`]}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.False(t, taskExists(t, e, *ms[2].TaskID), "the removed member's task went with it")
		assert.Empty(t, currentTaskOf(t, e, f.sources[2]))

		// approve_cutover is not for a wave that has not replicated.
		wantError(t, waveAction(e, id, "approve_cutover"), 409,
			string(wave.ErrNotAwaiting.Code))
		require.Equal(t, http.StatusOK, waveAction(e, id, "cancel").status)
		m := showWave(t, e, id)
		assert.Equal(t, "CANCELED", m["state"])
		assert.NotEmpty(t, m["finished_at"])
		sc, started, acts, un := fw.snapshot()
		assert.NotContains(t, sc, id)
		assert.Contains(t, un, id)
		assert.Empty(t, started)
		assert.Empty(t, acts, "no run to ask")
		assert.EqualValues(t, 0, taskCount(t, e))
		// The sources are free for another wave; the canceled one goes.
		createWave(t, e, waveJSON("next", f.project, `[{"name":"src-0"}]`))
		require.Equal(t, http.StatusOK, e.do("POST", "/v3/waves/"+createWave(t, e, waveJSON("n2", f.project, `[{"name":"src-1"}]`))+"/action",
			`{"operation":"start"}`, e.token).status)
		require.Equal(t, http.StatusOK, e.do("DELETE", "/v3/waves/"+id, "", e.token).status)
	})
}

// A source in another active wave is refused when it would join a wave by
// members add or CSV import (create: TestWaveCreate), naming that wave, and
// nothing is added; once that wave is done, the source is free.
func TestWaveMemberInAnotherActiveWave(t *testing.T) {
	eachWave(t, nil, func(t *testing.T, e *env, _ *fakeWaves) {
		f := newWaveFixture(t, e, 3)
		a := createWave(t, e, waveJSON("a", f.project, `[{"name":"src-0"}]`))
		setWaveState(t, e, a, wave.WaveScheduled)
		b := createWave(t, e, waveJSON("b", f.project, `[{"name":"src-1"}]`))
		setWaveState(t, e, b, wave.WaveScheduled)

		r := e.do("POST", "/v3/waves/"+b+"/members", `{"members":[{"name":"src-2"},{"name":"src-0"}]}`, e.token)
		wantError(t, r, 409, string(wave.ErrMemberInWave.Code))
		assert.Contains(t, r.body, a)
		r = csvImport(e, b, "name\nsrc-2\nsrc-0\n", "text/csv")
		assert.Equal(t, 409, r.status, r.body)
		code, _ := r.smsError(t)
		assert.Equal(t, string(wave.ErrMemberInWave.Code), code, r.body)
		assert.Len(t, waveMembers(t, e, b), 1, "nothing added")

		// Once a is done, the source is free for another wave.
		setWaveState(t, e, a, wave.WaveDone)
		r = e.do("POST", "/v3/waves/"+b+"/members", `{"members":[{"name":"src-0"}]}`, e.token)
		assert.Equal(t, http.StatusOK, r.status, r.body)
	})
}
