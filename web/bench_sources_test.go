package web_test

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
	"github.com/smsflow/smsflow/web"
)

// realisticSource is a registered Linux server: 4 disks of 3 partitions, 2
// NICs, one volume group; the facts a real agent reports.
func realisticSource(e *env, i int, now time.Time) store.Source {
	disks := make([]store.SourceDisk, 4)
	for d := range disks {
		use := "NORMAL"
		if d == 0 {
			use = "BOOT"
		}
		pvs := make([]store.PhysicalVolume, 3)
		for k := range pvs {
			pvs[k] = store.PhysicalVolume{Name: new(fmt.Sprintf("/dev/vd%c%d", 'a'+d, k+1)), Size: new(int64(10 << 30)), UsedSize: new(int64(2 << 30)),
				FileSystem: new("xfs"), MountPoint: new(fmt.Sprintf("/data%d%d", d, k)), DeviceUse: new("NORMAL"), UUID: new(uuid.NewString())}
		}
		disks[d] = store.SourceDisk{Name: new(fmt.Sprintf("/dev/vd%c", 'a'+d)), DeviceUse: new(use), PartitionStyle: new("GPT"),
			Size: new(int64(30 << 30)), UsedSize: new(int64(6 << 30)), PhysicalVolumes: pvs}
	}
	nets := []store.Network{
		{Name: new("eth0"), IP: new(fmt.Sprintf("10.%d.%d.1", i/250, i%250)), Netmask: new("255.255.255.0"), Gateway: new("10.0.0.254"), MAC: new(fmt.Sprintf("fa:16:3e:%02x:%02x:01", i/256, i%256))},
		{Name: new("eth1"), IP: new(fmt.Sprintf("172.16.%d.%d", i/250, i%250)), Netmask: new("255.255.0.0"), Gateway: new("172.16.0.1"), MAC: new(fmt.Sprintf("fa:16:3e:%02x:%02x:02", i/256, i%256))},
	}
	states := []struct {
		state sms.SourceState
		cycle sms.Cycle
	}{{"waiting", "checking"}, {"replicate", "replicating"}, {"syncing", "syncing"}, {"finished", "cutovered"}, {"error", "replicating"}}
	st := states[i%len(states)]
	visit := now.UnixMilli()
	if i%7 == 0 {
		visit = now.Add(-time.Hour).UnixMilli()
	}
	src := store.Source{ID: uuid.NewString(), DomainID: e.creds.DomainID, ProjectID: e.creds.ProjectID, MigProjectID: "mp",
		Name: fmt.Sprintf("srv-%05d", i), Hostname: fmt.Sprintf("srv-%05d", i), IP: *nets[0].IP, OSType: sms.Linux, OSVersion: "CENTOS7.9",
		AgentVersion: "1", EnterpriseProjectID: "0", State: st.state, MigrationCycle: st.cycle, AddDate: now.UnixMilli() + int64(i), RegSeq: now.UnixNano() + int64(i),
		StateActionTime: visit, StageActionTime: visit, LastVisitTime: visit, Disks: disks, Networks: nets,
		VolumeGroups: []store.VolumeGroup{}, BtrfsList: []store.BtrfsFileSystem{}, UpdatedAt: now}
	return src
}

func seedSources(tb testing.TB, e *env, n int) []string {
	tb.Helper()
	now := time.Now()
	ids := make([]string, 0, n)
	batch := make([]store.Source, 0, 250)
	flush := func() {
		for i := range batch {
			web.RefreshDerived(&batch[i])
		}
		require.NoError(tb, e.store.BulkInsertSources(context.Background(), batch))
		batch = batch[:0]
	}
	for i := 0; i < n; i++ {
		s := realisticSource(e, i, now)
		ids = append(ids, s.ID)
		batch = append(batch, s)
		if len(batch) == cap(batch) {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
	require.NoError(tb, e.store.Analyze(context.Background()))
	return ids
}

// TestSourceListQueryCount: a page of 200 sources costs the same handful of
// queries as a page of 1 — no query per row.
func TestSourceListQueryCount(t *testing.T) {
	for _, d := range testdb.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			s := testdb.Open(t, d)
			// The dispatcher's background poller reads the commands table
			// meanwhile: it is not part of the request.
			qc := s.CountStatements("commands")
			e := newEnv(t, s)
			seedSources(t, e, 300)
			e.do("GET", "/v3/sources?limit=1", "", e.token) // warm the auth cache
			one := qc.Count(func() { e.do("GET", "/v3/sources?limit=1", "", e.token) })
			many := qc.Count(func() {
				r := e.do("GET", "/v3/sources?limit=200", "", e.token)
				require.Len(t, r.json(t)["source_servers"], 200)
			})
			assert.Equal(t, one, many, "queries must not grow with the page")
			assert.LessOrEqual(t, many, 4, "a count, the page's ids, rows and facts")
			filtered := qc.Count(func() { e.do("GET", "/v3/sources?state=error&connected=true", "", e.token) })
			assert.LessOrEqual(t, filtered, 4)
		})
	}
}

func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

// BenchmarkSources: 10,000 realistic sources; list pages of 200 with and
// without filters, and show; p50/p99 reported per request.
func BenchmarkSources(b *testing.B) {
	for _, d := range testdb.Dialects() {
		b.Run(string(d), func(b *testing.B) {
			e := newEnvTB(b, testdb.Open(b, d))
			ids := seedSources(b, e, 10000)
			get := func(path string) int {
				req := httptest.NewRequest("GET", path, nil)
				req.Header.Set("X-Auth-Token", e.token)
				w := httptest.NewRecorder()
				e.handler.ServeHTTP(w, req)
				return w.Code
			}
			rng := rand.New(rand.NewSource(1))
			cases := []struct {
				name string
				path func() string
			}{
				{"list-200", func() string { return "/v3/sources?limit=200" }},
				{"list-200-offset-5000", func() string { return "/v3/sources?limit=200&offset=5000" }},
				{"list-state", func() string { return "/v3/sources?limit=200&state=replicate" }},
				{"list-connected-cycle", func() string { return "/v3/sources?limit=200&connected=true&migration_cycle=syncing" }},
				{"list-name", func() string { return "/v3/sources?name=srv-04242" }},
				{"show", func() string { return "/v3/sources/" + ids[rng.Intn(len(ids))] }},
			}
			for _, c := range cases {
				b.Run(c.name, func(b *testing.B) {
					lat := make([]time.Duration, 0, b.N)
					b.ReportAllocs()
					for b.Loop() {
						t0 := time.Now()
						if code := get(c.path()); code != http.StatusOK {
							b.Fatalf("status %d", code)
						}
						lat = append(lat, time.Since(t0))
					}
					p50, p99 := percentiles(lat)
					b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
				})
			}
		})
	}
}
