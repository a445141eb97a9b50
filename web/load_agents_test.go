package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/identity/signer"
	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
)

// TestLoadAgentPolling simulates a fleet of agents polling for commands over
// real loopback HTTP with AK/SK signatures, while commands are queued for
// random sources; it reports the poll latency and how long a queued command
// waits until an agent receives it. It is a load test, run on demand:
//
//	SMSFLOW_LOAD_AGENTS=1000 SMSFLOW_LOAD_SECONDS=60 go test -run LoadAgentPolling -v ./web/
//
// (SMSFLOW_LOAD_DB=mysql with SMSFLOW_TEST_MYSQL_DSN for MySQL.)
func TestLoadAgentPolling(t *testing.T) {
	agents, _ := strconv.Atoi(os.Getenv("SMSFLOW_LOAD_AGENTS"))
	if agents == 0 {
		t.Skip("set SMSFLOW_LOAD_AGENTS (and SMSFLOW_LOAD_SECONDS) to run the agent load test")
	}
	secs, _ := strconv.Atoi(os.Getenv("SMSFLOW_LOAD_SECONDS"))
	if secs == 0 {
		secs = 60
	}
	dialect := store.SQLite
	if os.Getenv("SMSFLOW_LOAD_DB") == "mysql" {
		dialect = store.MySQL
	}
	e := newEnvTB(t, testdb.Open(t, dialect))
	ids := seedSources(t, e, agents)
	srv := httptest.NewServer(e.handler)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: agents + 10, MaxIdleConnsPerHost: agents + 10}, Timeout: 30 * time.Second}

	do := func(method, path, body string) (int, []byte, error) {
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Project-Id", e.creds.ProjectID)
		if err := signer.Sign(req, []byte(body), e.creds.AK, e.creds.SK, time.Now()); err != nil {
			return 0, nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
	defer cancel()
	var mu sync.Mutex
	pollLat := make([]time.Duration, 0, agents*secs)
	var delivery []time.Duration
	var errs, polls, queued, delivered atomic.Int64

	var wg sync.WaitGroup
	for i := 0; i < agents; i++ {
		wg.Add(1)
		go func(id string, offset time.Duration) {
			defer wg.Done()
			select {
			case <-time.After(offset): // spread the fleet over the second
			case <-ctx.Done():
				return
			}
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				t0 := time.Now()
				code, body, err := do("GET", "/v3/sources/"+id+"/command", "")
				lat := time.Since(t0)
				polls.Add(1)
				if err != nil || code != http.StatusOK {
					if ctx.Err() == nil {
						errs.Add(1)
						t.Logf("poll: %d %v %s", code, err, body)
					}
				} else {
					var cmd struct {
						Name  string `json:"command_name"`
						Param struct {
							QueuedAt int64 `json:"queued_at"`
						} `json:"command_param"`
					}
					_ = json.Unmarshal(body, &cmd)
					mu.Lock()
					pollLat = append(pollLat, lat)
					if cmd.Name != "" {
						delivery = append(delivery, time.Since(time.Unix(0, cmd.Param.QueuedAt)))
					}
					mu.Unlock()
					if cmd.Name != "" {
						delivered.Add(1)
						if code, b, err := do("POST", "/v3/sources/"+id+"/command_result",
							`{"command_name":"`+cmd.Name+`","result":"success","result_detail":{}}`); err != nil || code != http.StatusOK {
							errs.Add(1)
							t.Logf("result: %d %v %s", code, err, b)
						}
					}
				}
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
			}
		}(ids[i], time.Duration(i)*time.Second/time.Duration(agents))
	}
	// A command every 50 ms for a random agent.
	go func() {
		rng := rand.New(rand.NewSource(1))
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			c := &store.Command{SourceID: ids[rng.Intn(len(ids))], Name: "SYNC", TaskID: "load",
				Params: fmt.Sprintf(`{"queued_at":%d}`, time.Now().UnixNano())}
			if err := e.queue.Enqueue(context.Background(), tenantOf(e), c); err == nil {
				queued.Add(1)
			}
		}
	}()
	wg.Wait()

	p50, p99 := percentiles(pollLat)
	var d50, d99 time.Duration
	if len(delivery) > 0 {
		d50, d99 = percentiles(delivery)
	}
	t.Logf("%s: %d agents for %ds: %d polls (%.0f/s), poll p50 %v p99 %v max %v, errors %d; commands queued %d delivered %d, delivery p50 %v p99 %v",
		dialect, agents, secs, polls.Load(), float64(polls.Load())/float64(secs), p50, p99, pollLat[len(pollLat)-1], errs.Load(),
		queued.Load(), delivered.Load(), d50, d99)
	assert.Zero(t, errs.Load(), "no errors")
	require.NotEmpty(t, pollLat)
}
