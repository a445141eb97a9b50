package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// scriptedAgent speaks the agent API the way sms-agent does: it registers,
// long-polls for commands, answers them and reports progress. What it does
// for each command is up to the test.
type scriptedAgent struct {
	t        testing.TB
	srv      *server
	sourceID string

	mu       sync.Mutex
	commands []string
	params   []map[string]any // each command's command_param, in order
	// onCommand handles a command; it returns the result ("success"/"fail")
	// and its detail. Progress is reported from inside it.
	onCommand func(a *scriptedAgent, name, taskID string) (string, string)
	// pollWait is the long-poll's wait in seconds (2 unless set).
	pollWait int
}

// newAgent registers a small Linux server (one 2 GiB disk, 64 MiB used).
func newAgent(t testing.TB, srv *server, name string) *scriptedAgent {
	return newAgentUsed(t, srv, name, 64<<20)
}

// newAgentUsed registers it with used bytes on its disk: a wave's
// preflight checks the members' used bytes against the targets' free
// storage, which a thousand members of 64 MiB outgrow on a small disk.
func newAgentUsed(t testing.TB, srv *server, name string, used int64) *scriptedAgent {
	a := &scriptedAgent{t: t, srv: srv}
	body := map[string]any{
		"name": name, "hostname": name, "ip": "10.0.0.10", "os_type": "LINUX", "os_version": "CENTOS7.9",
		"has_rsync": true, "paravirtualization": false, "boot_loader": "GRUB", "btrfs_list": []any{}, "volume_groups": []any{},
		"has_tc": true, "linux_block_check": `{"architecture":"x86_64"}`, "agent_version": "scripted",
		"disks": []any{map[string]any{"name": "/dev/vda", "device_use": "BOOT", "partition_style": "MBR",
			"size": 2 << 30, "used_size": used, "physical_volumes": []any{map[string]any{"name": "/dev/vda1",
				"size": 2 << 30, "used_size": used, "file_system": "ext4", "mount_point": "/"}}}},
		"networks": []any{map[string]any{"name": "eth0", "ip": "10.0.0.10", "netmask": "255.255.255.0",
			"gateway": "10.0.0.1", "mac": "fa:16:3e:00:00:" + name[len(name)-2:], "mtu": 1500}},
	}
	var out struct {
		ID string `json:"id"`
	}
	srv.call("POST", "/v3/sources", body, &out)
	a.sourceID = out.ID
	return a
}

// run polls and executes commands until ctx ends, riding out server
// restarts with a short backoff.
func (a *scriptedAgent) run(ctx context.Context) {
	for ctx.Err() == nil {
		code, b, err := a.srv.do("GET", fmt.Sprintf("/v3/sources/%s/command?wait=%d", a.sourceID, cmp.Or(a.pollWait, 2)), nil)
		if err != nil || code != http.StatusOK {
			time.Sleep(200 * time.Millisecond) // the server is down or restarting
			continue
		}
		var cmd struct {
			Name  string          `json:"command_name"`
			Param json.RawMessage `json:"command_param"`
		}
		if err := json.Unmarshal(b, &cmd); err != nil || cmd.Name == "" {
			continue
		}
		var param map[string]any
		_ = json.Unmarshal(cmd.Param, &param)
		taskID, _ := param["task_id"].(string)
		a.mu.Lock()
		a.commands = append(a.commands, cmd.Name)
		a.params = append(a.params, param)
		a.mu.Unlock()
		result, detail := "success", "done"
		if a.onCommand != nil {
			result, detail = a.onCommand(a, cmd.Name, taskID)
		}
		a.retry(ctx, "POST", "/v3/sources/"+a.sourceID+"/command_result",
			map[string]any{"command_name": cmd.Name, "result": result, "result_detail": map[string]string{"msg": detail}})
	}
}

// retry sends until the server answers 200 (it may be restarting).
func (a *scriptedAgent) retry(ctx context.Context, method, path string, body any) {
	for ctx.Err() == nil {
		code, b, err := a.srv.do(method, path, body)
		if err == nil && code == http.StatusOK {
			return
		}
		if err == nil && code >= 400 && code < 500 && code != http.StatusNotFound {
			a.t.Errorf("%s %s: %d %s", method, path, code, b)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// progress reports a sub-task's progress.
func (a *scriptedAgent) progress(ctx context.Context, taskID, subtask string, pct int32) {
	a.retry(ctx, "PUT", "/v3/tasks/"+taskID+"/progress", map[string]any{
		"subtask_name": subtask, "progress": pct, "replicatesize": int64(pct) << 20, "totalsize": int64(100) << 20,
		"process_trace": fmt.Sprintf("%d%%", pct), "migrate_speed": 80.0, "remain_time": 100 - pct,
		"total_cpu_usage": 12.5, "agent_cpu_usage": 3.0, "total_mem_usage": 2048.0, "agent_mem_usage": 40.0,
		"agent_time": time.Now().Format(time.RFC3339),
	})
}

func (a *scriptedAgent) seen() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.commands...)
}

// lastParams is the command_param of the latest command of that name.
func (a *scriptedAgent) lastParams(name string) map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.commands) - 1; i >= 0; i-- {
		if a.commands[i] == name {
			return a.params[i]
		}
	}
	return nil
}

// count is how many commands of that name the agent received.
func (a *scriptedAgent) count(name string) int {
	n := 0
	for _, c := range a.seen() {
		if c == name {
			n++
		}
	}
	return n
}
