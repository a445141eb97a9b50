package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
	"github.com/smsflow/smsflow/internal/wave"
)

// seedWave makes a running wave of n realistic sources: each member has a
// task (a third copying, a third syncing with a day of churn samples, the
// rest cut over), as the workflow leaves them.
func seedWave(tb testing.TB, e *env, n int) string {
	tb.Helper()
	ctx := context.Background()
	ten := tenantOf(e)
	require.NoError(tb, e.store.CreateMigProject(ctx, ten, &store.MigProject{ID: "mp", Name: "bench", Type: sms.MigrateBlock}))
	ids := seedSources(tb, e, n)
	w := &store.Wave{ID: uuid.NewString()}
	w.SetSpec(wave.Spec{Name: "bench", ProjectID: "mp", MaxConcurrent: 20, TimeZone: "Europe/Berlin",
		CutoverMode: wave.CutoverAuto, Budget: wave.Budget{DefaultMbps: 1000, Windows: []wave.TimeWindow{
			{Start: "08:00", End: "18:00", Weekdays: []wave.Weekday{"MON", "TUE", "WED", "THU", "FRI"}, Mbps: 200}}}})
	ms := make([]store.WaveMember, n)
	for i, id := range ids {
		ms[i] = store.WaveMember{ID: uuid.NewString(), SourceID: id, Priority: int32(i % 3)}
	}
	require.NoError(tb, e.store.CreateWave(ctx, ten, w, ms))
	now := time.Now().UTC()
	tasks := make([]store.Task, n)
	for i := range ms {
		tid := uuid.NewString()
		ms[i].TaskID = &tid
		tasks[i] = store.Task{ID: tid, DomainID: ten.DomainID, SourceID: ms[i].SourceID, MigProjectID: "mp",
			Name: fmt.Sprintf("bench-%d", i), Type: sms.MigrateBlock, State: sms.TaskRunning,
			Totalsize: 120 << 30, Replicatesize: int64(i) << 27, MigrateSpeed: 45, WaveID: &w.ID, UpdatedAt: now,
			SubTasks: []store.SubTask{{ID: 1, Name: "CREATE_CLOUD_SERVER", Progress: 100}, {ID: 2, Name: "SSL_CONFIG"}}}
		st := wave.MemberCopying
		switch i % 3 {
		case 1:
			st, tasks[i].State, tasks[i].Replicatesize = wave.MemberSyncing, sms.TaskSyncing, 120<<30
			for k := range store.MaxChurnSamples {
				ms[i].Churn = append(ms[i].Churn, wave.SyncPass{End: now.Add(-time.Duration(24-k) * time.Hour), BytesChanged: 2 << 30})
			}
			// As UpdateWaveMember measures it when the samples come in.
			c, ok := wave.MeasureChurn(ms[i].Churn)
			require.True(tb, ok)
			iv := c.Interval.Seconds()
			ms[i].ChurnBytesPerHour, ms[i].ChurnIntervalSeconds = &c.BytesPerHour, &iv
		case 2:
			st, tasks[i].State, tasks[i].Replicatesize = wave.MemberDone, sms.TaskMigrateSuccess, 120<<30
			d := 95.0
			ms[i].DowntimeSeconds, ms[i].CutoverStartedAt, ms[i].TargetStartedAt = &d, &now, &now
		}
		ms[i].State, ms[i].ShareMbps, ms[i].LastSpeedMbps, ms[i].BytesTotal = st, 50, 45, 120<<30
	}
	db := e.store.DB().WithContext(ctx)
	require.NoError(tb, db.CreateInBatches(tasks, 200).Error)
	for i := range ms {
		require.NoError(tb, db.Model(&store.WaveMember{}).Where("id = ?", ms[i].ID).
			Select("task_id", "state", "churn", "churn_bytes_per_hour", "churn_interval_seconds", "share_mbps", "last_speed_mbps", "bytes_total", "downtime_seconds",
				"cutover_started_at", "target_started_at").Updates(&ms[i]).Error)
	}
	require.NoError(tb, db.Model(&store.Wave{}).Where("id = ?", w.ID).Update("state", string(wave.WaveReplicating)).Error)
	return w.ID
}

// TestWaveShowQueryCount: showing a wave reads its members and their
// tasks in a fixed number of queries, whatever its size.
func TestWaveShowQueryCount(t *testing.T) {
	for _, d := range testdb.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			s := testdb.Open(t, d)
			qc := s.CountStatements("commands")
			e := newEnv(t, s)
			id := seedWave(t, e, 60)
			small := createWave(t, e, waveJSON("small", "mp", `[]`))
			e.do("GET", "/v3/waves/"+id, "", e.token) // warm the auth cache
			one := qc.Count(func() { e.do("GET", "/v3/waves/"+small, "", e.token) })
			many := qc.Count(func() {
				r := e.do("GET", "/v3/waves/"+id, "", e.token)
				require.Equal(t, http.StatusOK, r.status)
				require.Len(t, r.json(t)["members"], 60)
			})
			assert.Equal(t, one, many, "queries must not grow with the members")
			assert.LessOrEqual(t, many, 4, "the wave, its existence check, members, tasks")
		})
	}
}

// BenchmarkWaveShow: GET /v3/waves/{id} of a 1,000-member running wave
// (members with tasks, churn samples, estimates and the wave's copy
// simulation); p50/p99 per request. Target p99 < 50 ms.
func BenchmarkWaveShow(b *testing.B) {
	for _, d := range testdb.Dialects() {
		b.Run(string(d), func(b *testing.B) {
			e := newEnvTB(b, testdb.Open(b, d))
			id := seedWave(b, e, 1000)
			require.NoError(b, e.store.Analyze(context.Background()))
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				req := httptest.NewRequest("GET", "/v3/waves/"+id, nil)
				req.Header.Set("X-Auth-Token", e.token)
				w := httptest.NewRecorder()
				t0 := time.Now()
				e.handler.ServeHTTP(w, req)
				lat = append(lat, time.Since(t0))
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body.String())
				}
			}
			// CPU of this process (not the MySQL server's) per request: what
			// the latency comes to on an idle machine, whatever the other
			// work on it.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(len(lat)), "cpu-ms/op")
			p50, p99 := percentiles(lat)
			b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		})
	}
}

// cpuTime is the user and system CPU this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
