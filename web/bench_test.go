package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
)

// benchEnv seeds 1,000 migration projects and 1,000 templates in the admin
// tenant (templates go straight into the table: the API's quota of 50 per
// tenant would stop at 50, and the point is the query at scale).
func benchEnv(b *testing.B, d store.Dialect) (http.Handler, string) {
	b.Helper()
	s := testdb.Open(b, d)
	e := newEnvTB(b, s)
	tenant := store.Tenant{DomainID: e.creds.DomainID, ProjectID: e.creds.ProjectID}
	ctx := b.Context()
	now := time.Now().UTC()
	mps := make([]store.MigProject, 1000)
	tpls := make([]store.Template, 1000)
	for i := range mps {
		mps[i] = store.MigProject{ID: uuid.NewString(), DomainID: tenant.DomainID, Name: fmt.Sprintf("project-%04d", i),
			Region: "region", Type: "MIGRATE_BLOCK", EnterpriseProject: "default", CreatedAt: now.Add(time.Duration(i)), UpdatedAt: now}
		tpl := newBenchTemplate(i)
		tpl.DomainID = tenant.DomainID
		tpl.CreatedAt, tpl.UpdatedAt = now.Add(time.Duration(i)), now
		tpls[i] = *tpl
	}
	if err := s.DB().WithContext(ctx).CreateInBatches(mps, 200).Error; err != nil {
		b.Fatal(err)
	}
	if err := s.DB().WithContext(ctx).CreateInBatches(tpls, 200).Error; err != nil {
		b.Fatal(err)
	}
	return e.handler, e.token
}

func newBenchTemplate(i int) *store.Template {
	name := fmt.Sprintf("template-%04d", i)
	cidr := "192.168.0.0/16"
	id := int64(0)
	return &store.Template{
		ID: uuid.NewString(), Name: name, NameKey: &name, IsTemplate: true, Region: "region", ProjectID: "p",
		AvailabilityZone: "az1", Flavor: "s6.large.2", VolumeType: "SAS",
		VPC:            &store.VPC{ID: "vpc", Name: "vpc", CIDR: &cidr},
		NICs:           []store.NIC{{ID: "n1", Name: "subnet", CIDR: "192.168.0.0/24"}},
		SecurityGroups: []store.SecurityGroup{{ID: "sg", Name: "default"}},
		PublicIP:       &store.PublicIP{Type: "5_bgp", BandwidthSize: 5},
		Disks:          []store.TemplateDisk{{ID: &id, Index: 0, Name: "system", DiskType: "SAS", Size: 40}, {Index: 1, Name: "data", DiskType: "SAS", Size: 100}},
	}
}

func benchList(b *testing.B, path string) {
	for _, d := range testdb.Dialects() {
		b.Run(string(d), func(b *testing.B) {
			h, tok := benchEnv(b, d)
			get := func() int {
				req := httptest.NewRequest("GET", path, nil)
				req.Header.Set("X-Auth-Token", tok)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				return w.Code
			}
			if c := get(); c != http.StatusOK {
				b.Fatalf("status %d", c)
			}
			b.Run("serial", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if c := get(); c != http.StatusOK {
						b.Fatalf("status %d", c)
					}
				}
			})
			// 50 clients, each sending its next request as soon as the last
			// answer arrives: the server saturated, latency is mostly queueing.
			b.Run("50clients-saturated", func(b *testing.B) { loadClients(b, 50, 0, get) })
			// 50 clients, each sending 10 requests a second (500 req/s).
			b.Run("50clients-10rps", func(b *testing.B) { loadClients(b, 50, 100*time.Millisecond, get) })
		})
	}
}

// loadClients runs b.N requests from n concurrent clients; a client waits
// period between its request starts (0 = back to back). It reports the p50
// and p99 latency.
func loadClients(b *testing.B, n int, period time.Duration, get func() int) {
	var next atomic.Int64
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := 0; c < n; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			due := start.Add(period * time.Duration(c) / time.Duration(n))
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if period > 0 {
					time.Sleep(time.Until(due))
					due = due.Add(period)
				}
				t0 := time.Now()
				if code := get(); code != http.StatusOK {
					b.Errorf("status %d", code)
					return
				}
				lat[i] = time.Since(t0)
			}
		}(c)
	}
	wg.Wait()
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

func BenchmarkListMigProjects(b *testing.B) { benchList(b, "/v3/migprojects?limit=100&offset=0") }

func BenchmarkListTemplates(b *testing.B) { benchList(b, "/v3/vm/templates?limit=100&offset=0") }
