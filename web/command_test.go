package web_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/testdb"
)

func TestCommandQueue(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		id := register(t, e, e.token, linuxSource("a", "fa:16:3e:00:00:01"))
		ten := tenantOf(e)

		// Idle: the empty command name.
		r := e.do("GET", "/v3/sources/"+id+"/command", "", e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.JSONEq(t, `{"command_name":""}`, r.body)

		require.NoError(t, e.queue.Enqueue(t.Context(), ten, &store.Command{ID: "c-start", SourceID: id, Name: "START", TaskID: "task-1", Params: `{"speed_limit":100}`}))
		require.NoError(t, e.queue.Enqueue(t.Context(), ten, &store.Command{ID: "c-sync", SourceID: id, Name: "SYNC", TaskID: "task-1"}))
		r = e.do("GET", "/v3/sources/"+id+"/command", "", e.token)
		assert.JSONEq(t, `{"command_name":"START","command_id":"c-start","command_param":{"task_id":"task-1","speed_limit":100}}`, r.body)
		// Handed out, not answered: the next poll gets the next command.
		r = e.do("GET", "/v3/sources/"+id+"/command", "", e.token)
		assert.JSONEq(t, `{"command_name":"SYNC","command_id":"c-sync","command_param":{"task_id":"task-1"}}`, r.body)

		res := `{"command_name":"START","result":"success","result_detail":{"msg":"xxx"}}`
		r = e.do("POST", "/v3/sources/"+id+"/command_result", res, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		r = e.do("POST", "/v3/sources/"+id+"/command_result", res, e.token)
		assert.Equal(t, http.StatusOK, r.status, "the same report again is harmless")
		r = e.do("POST", "/v3/sources/"+id+"/command_result", `{"command_name":"START","result":"fail","result_detail":{"msg":"other"}}`, e.token)
		code, _ := r.smsError(t)
		assert.Equal(t, "SMS.6021", code, "a different result for a closed command")
		r = e.do("POST", "/v3/sources/"+id+"/command_result", `{"command_name":"STOP","result":"success","result_detail":null}`, e.token)
		code, _ = r.smsError(t)
		assert.Equal(t, "SMS.6021", code, "STOP was never handed out")
		r = e.do("POST", "/v3/sources/"+id+"/command_result", `{"command_name":"SYNC","result":"fail","result_detail":null}`, e.token)
		assert.Equal(t, http.StatusOK, r.status, "null result_detail (the SDK sends it)")

		cmds, err := e.store.Commands(t.Context(), ten, id)
		require.NoError(t, err)
		require.Len(t, cmds, 2)
		for _, c := range cmds {
			assert.Equal(t, store.CommandDone, c.State)
		}
		assert.Equal(t, `{"msg":"xxx"}`, cmds[1].ResultDetail)

		for _, bad := range []struct{ body, code string }{
			{`{"result":"success","result_detail":{}}`, "SMS.6020"},
			{`{"command_name":"","result":"success"}`, "SMS.6020"},
			{`{"command_name":"REBOOT","result":"success"}`, "SMS.9001"},
			{`{"command_name":"START","result":"ok"}`, "SMS.6022"},
			{`{"command_name":"START"}`, "SMS.6022"},
			{`{"command_name":"START","result":"success","result_detail":`, "SMS.6010"},
		} {
			r = e.do("POST", "/v3/sources/"+id+"/command_result", bad.body, e.token)
			assert.Equal(t, http.StatusBadRequest, r.status, bad.body)
			code, _ := r.smsError(t)
			assert.Equal(t, bad.code, code, bad.body)
		}
		for _, w := range []string{"x", "-1", "31"} {
			r = e.do("GET", "/v3/sources/"+id+"/command?wait="+w, "", e.token)
			assert.Equal(t, http.StatusBadRequest, r.status, w)
		}
	})
}

// TestCommandLongPoll: an agent waiting on ?wait=N learns of a command queued
// meanwhile at once, not at the end of its wait.
func TestCommandLongPoll(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		id := register(t, e, e.token, linuxSource("a", "fa:16:3e:00:00:01"))
		var wg sync.WaitGroup
		var got response
		var took time.Duration
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			got = e.do("GET", "/v3/sources/"+id+"/command?wait=10", "", e.token)
			took = time.Since(t0)
		}()
		require.Eventually(t, func() bool { return e.queue.Waiting() == 1 }, 5*time.Second, time.Millisecond)
		queued := time.Now()
		require.NoError(t, e.queue.Enqueue(t.Context(), tenantOf(e), &store.Command{ID: "c-stop", SourceID: id, Name: "STOP", TaskID: "t9"}))
		wg.Wait()
		assert.JSONEq(t, `{"command_name":"STOP","command_id":"c-stop","command_param":{"task_id":"t9"}}`, got.body)
		assert.Less(t, took, 10*time.Second)
		t.Logf("delivered %v after queueing", time.Since(queued))

		// Queued by another process (straight into the database): the
		// dispatcher's poller wakes the waiter.
		wg.Add(1)
		go func() {
			defer wg.Done()
			got = e.do("GET", "/v3/sources/"+id+"/command?wait=10", "", e.token)
		}()
		require.Eventually(t, func() bool { return e.queue.Waiting() == 1 }, 5*time.Second, time.Millisecond)
		require.NoError(t, e.store.EnqueueCommand(t.Context(), tenantOf(e), &store.Command{ID: "other-process", SourceID: id, Name: "SYNC", TaskID: "t9"}))
		wg.Wait()
		assert.JSONEq(t, `{"command_name":"SYNC","command_id":"other-process","command_param":{"task_id":"t9"}}`, got.body)

		// Nothing queued: the wait ends with the idle answer.
		t0 := time.Now()
		r := e.do("GET", "/v3/sources/"+id+"/command?wait=0.2", "", e.token)
		assert.JSONEq(t, `{"command_name":""}`, r.body)
		assert.GreaterOrEqual(t, time.Since(t0), 200*time.Millisecond)
	})
}

// TestPollStampsVisit: a poll marks the agent connected again.
func TestPollStampsVisit(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		id := register(t, e, e.token, linuxSource("a", "fa:16:3e:00:00:01"))
		old := time.Now().Add(-time.Hour).UnixMilli()
		require.NoError(t, e.store.DB().Model(&store.Source{}).Where("id = ?", id).Update("last_visit_time", old).Error)
		assert.Equal(t, false, e.do("GET", "/v3/sources/"+id, "", e.token).json(t)["connected"])
		e.do("GET", "/v3/sources/"+id+"/command", "", e.token)
		m := e.do("GET", "/v3/sources/"+id, "", e.token).json(t)
		assert.Equal(t, true, m["connected"])
		assert.Greater(t, m["last_visit_time"], float64(old))
	})
}

func TestAgentExtras(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		assert.JSONEq(t, `{"flag":false}`, e.do("GET", "/v3/privacy-agreements", "", e.token).body)
		r := e.do("POST", "/v3/privacy-agreements", `{}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		r = e.do("POST", "/v3/privacy-agreements", "", e.token)
		require.Equal(t, http.StatusOK, r.status, "signing twice is fine")
		assert.JSONEq(t, `{"flag":true}`, e.do("GET", "/v3/privacy-agreements", "", e.token).body)
		assert.JSONEq(t, `{"flag":false}`, e.do("GET", "/v3/privacy-agreements", "", e.other).body, "per domain")

		m := e.do("GET", "/v3/config", "", e.token).json(t)
		cfg := m["config"].(map[string]any)
		for k, v := range cfg {
			_, isString := v.(string)
			assert.True(t, isString, "config value %s must be a string (the SDK's type)", k)
		}
		assert.Equal(t, e.creds.ProjectID, cfg["project_id"])
		assert.Len(t, m["regions"], 1)

		r = e.do("GET", "/", "", "")
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, "v3", r.json(t)["versions"].([]any)[0].(map[string]any)["id"])
		r = e.do("GET", "/v3", "", "")
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, "CURRENT", r.json(t)["status"])
		r = e.do("GET", "/v9", "", "")
		assert.Equal(t, http.StatusNotFound, r.status)
	})
}

func TestCommandRedelivery(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		id := register(t, e, e.token, linuxSource("a", "fa:16:3e:00:00:01"))
		ten := tenantOf(e)
		require.NoError(t, e.store.EnqueueCommand(t.Context(), ten, &store.Command{ID: "c1", SourceID: id, Name: "START", TaskID: "t"}))
		now := time.Now()
		c, err := e.store.NextCommand(t.Context(), ten, id, now, time.Minute)
		require.NoError(t, err)
		require.NotNil(t, c)
		assert.EqualValues(t, 1, c.Deliveries)
		c, err = e.store.NextCommand(t.Context(), ten, id, now.Add(30*time.Second), time.Minute)
		require.NoError(t, err)
		assert.Nil(t, c, "still within the redelivery window")
		c, err = e.store.NextCommand(t.Context(), ten, id, now.Add(2*time.Minute), time.Minute)
		require.NoError(t, err)
		require.NotNil(t, c, "unanswered: handed out again")
		assert.EqualValues(t, 2, c.Deliveries)

		// Concurrent polls of one source: exactly one wins the command.
		require.NoError(t, e.store.EnqueueCommand(t.Context(), ten, &store.Command{ID: "c2", SourceID: id, Name: "SYNC", TaskID: "t"}))
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := e.store.NextCommand(t.Context(), ten, id, now.Add(2*time.Minute+time.Second), time.Hour)
				assert.NoError(t, err)
				if c != nil && c.ID == "c2" {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		assert.Equal(t, 1, wins)
	})
}

// TestCommandResultByID: two SYNCs open at once (the second queued while the
// first finishes). The first one's result, reported with its command_id,
// closes that one and leaves the other open (by name alone, a result closes
// the oldest open command of the name, whichever it answered).
func TestCommandResultByID(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		id := register(t, e, e.token, linuxSource("a", "fa:16:3e:00:00:01"))
		ten := tenantOf(e)
		for _, c := range []string{"sync-1", "sync-2"} {
			require.NoError(t, e.queue.Enqueue(t.Context(), ten, &store.Command{ID: c, SourceID: id, Name: "SYNC", TaskID: "t"}))
			r := e.do("GET", "/v3/sources/"+id+"/command", "", e.token)
			assert.Equal(t, c, r.json(t)["command_id"], "the command carries its id")
		}
		state := func() map[string]string {
			cmds, err := e.store.Commands(t.Context(), ten, id)
			require.NoError(t, err)
			m := map[string]string{}
			for _, c := range cmds {
				m[c.ID] = c.State
			}
			return m
		}
		// The second finishes first (its pass was short): its id closes it,
		// not the oldest open SYNC.
		res := `{"command_name":"SYNC","command_id":"sync-2","result":"success","result_detail":{}}`
		r := e.do("POST", "/v3/sources/"+id+"/command_result", res, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, map[string]string{"sync-1": store.CommandIssued, "sync-2": store.CommandDone}, state())
		r = e.do("POST", "/v3/sources/"+id+"/command_result", res, e.token)
		assert.Equal(t, http.StatusOK, r.status, "the same report again is harmless")

		for _, bad := range []struct{ body, code string }{
			{`{"command_name":"SYNC","command_id":"sync-9","result":"success"}`, "SMS.6021"},  // never handed out
			{`{"command_name":"START","command_id":"sync-1","result":"success"}`, "SMS.6021"}, // not that command's name
			{`{"command_name":"SYNC","command_id":"","result":"success"}`, "SMS.9001"},
			{`{"command_name":"SYNC","command_id":"` + strings.Repeat("x", 65) + `","result":"success"}`, "SMS.9001"},
			{`{"command_name":"SYNC","command_id":7,"result":"success"}`, "SMS.9001"},
		} {
			r = e.do("POST", "/v3/sources/"+id+"/command_result", bad.body, e.token)
			assert.Equal(t, http.StatusBadRequest, r.status, bad.body)
			code, _ := r.smsError(t)
			assert.Equal(t, bad.code, code, bad.body)
		}
		// Another domain cannot close it, even knowing the id.
		r = e.do("POST", "/v3/sources/"+id+"/command_result", `{"command_name":"SYNC","command_id":"sync-1","result":"fail"}`, e.other)
		assert.Equal(t, http.StatusNotFound, r.status, r.body)
		assert.Equal(t, store.CommandIssued, state()["sync-1"])

		r = e.do("POST", "/v3/sources/"+id+"/command_result", `{"command_name":"SYNC","command_id":"sync-1","result":"success"}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, map[string]string{"sync-1": store.CommandDone, "sync-2": store.CommandDone}, state())
	})
}

// TestPollEndStampsVisit: an agent whose long poll outlasts --agent-timeout
// reads connected all along: the poll's end is stamped as well as its start.
func TestPollEndStampsVisit(t *testing.T) {
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnvWith(t, s, envOptions{now: now, agentTimeout: 5 * time.Second})
		id := register(t, e, e.token, linuxSource("a", "fa:16:3e:00:00:01"))
		done := make(chan response, 1)
		go func() { done <- e.do("GET", "/v3/sources/"+id+"/command?wait=1", "", e.token) }()
		require.Eventually(t, func() bool { return e.queue.Waiting() == 1 }, 5*time.Second, time.Millisecond)
		// The poll waits 20 s on the server's clock: four agent timeouts.
		mu.Lock()
		clock = clock.Add(20 * time.Second)
		mu.Unlock()
		r := <-done
		assert.JSONEq(t, `{"command_name":""}`, r.body)
		m := e.do("GET", "/v3/sources/"+id, "", e.token).json(t)
		assert.Equal(t, true, m["connected"], "the agent polled a moment ago")
		assert.EqualValues(t, now().UnixMilli(), m["last_visit_time"])
	})
}

// TestFrequentPollsStayConnected: an agent polling every 2 s reads
// connected at every moment under the shortest --agent-timeout (5 s). The
// visit was stamped at most every 5 s, so between two stamps the source
// read gone for a second (CI's bad-network test saw it).
func TestFrequentPollsStayConnected(t *testing.T) {
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnvWith(t, s, envOptions{now: now, agentTimeout: 5 * time.Second})
		id := register(t, e, e.token, linuxSource("a", "fa:16:3e:00:00:02"))
		for tick := range 30 { // 15 s in half seconds
			if tick%4 == 0 { // a poll every 2 s
				r := e.do("GET", "/v3/sources/"+id+"/command", "", e.token)
				require.Equal(t, http.StatusOK, r.status, r.body)
			}
			m := e.do("GET", "/v3/sources/"+id, "", e.token).json(t)
			require.Equal(t, true, m["connected"], "%.1f s after the first poll", float64(tick)/2)
			advance(500 * time.Millisecond)
		}
	})
}
