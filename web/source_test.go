package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/store"
)

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return string(b)
}

// withJSON edits a JSON object body.
func withJSON(t *testing.T, body string, edit func(m map[string]any)) string {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &m))
	edit(m)
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return string(b)
}

func register(t *testing.T, e *env, token, body string) string {
	t.Helper()
	r := e.do("POST", "/v3/sources", body, token)
	require.Equal(t, http.StatusOK, r.status, r.body)
	id, _ := r.json(t)["id"].(string)
	require.NotEmpty(t, id)
	return id
}

// linuxSource is a small valid Linux registration for a given machine.
func linuxSource(name, mac string) string {
	return `{"name":` + q(name) + `,"hostname":` + q(name) + `,"ip":"10.0.0.1","os_type":"LINUX","os_version":"CENTOS7.9",
	"has_rsync":true,"paravirtualization":false,"boot_loader":"GRUB","btrfs_list":[],"volume_groups":[],"has_tc":true,
	"linux_block_check":"{\"architecture\":\"x86_64\"}","agent_version":"smsflow-1",
	"disks":[{"name":"/dev/vda","device_use":"BOOT","partition_style":"MBR","size":21474836480,"used_size":5368709120,
	  "physical_volumes":[{"name":"/dev/vda1","size":21473787904,"used_size":5368709120,"file_system":"xfs","mount_point":"/","index":1}]}],
	"networks":[{"name":"eth0","ip":"10.0.0.1","netmask":"255.255.255.0","gateway":"10.0.0.254","mac":` + q(mac) + `,"mtu":1500}]}`
}

// stripIDs removes the ids the server adds to nested facts.
func stripIDs(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range x {
			if k == "id" {
				continue
			}
			out[k] = stripIDs(val)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = stripIDs(x[i])
		}
		return out
	}
	return v
}

// TestRegisterSUSERoundTrip: the spec's SUSE example (23 btrfs subvolumes,
// LVM, swap) reads back through show unchanged, but for the numbers the
// example sends as strings, which come back as the SDK's integers.
func TestRegisterSUSERoundTrip(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		body := fixture(t, "register-suse.json")
		id := register(t, e, e.token, body)
		r := e.do("GET", "/v3/sources/"+id, "", e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		got := r.json(t)

		var want map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &want))
		fs := want["btrfs_list"].([]any)[0].(map[string]any)
		size := 3.30
		fs["size"] = float64(int64(size * float64(1<<30)))
		fs["nodesize"], fs["sectorsize"], fs["g_vol_used_size"] = 16384.0, 4096.0, 3894038528.0
		lv := want["volume_groups"].([]any)[0].(map[string]any)["logical_volumes"].([]any)[0].(map[string]any)
		lv["inode_size"] = 256.0
		for k, w := range want {
			assert.Equal(t, w, stripIDs(got[k]), "field %s", k)
		}
		assert.Len(t, got["btrfs_list"].([]any)[0].(map[string]any)["subvolumn"], 23)
		assert.Equal(t, "waiting", got["state"])
		assert.Equal(t, "checking", got["migration_cycle"])
		assert.Equal(t, true, got["connected"])
		// Every disk, partition, volume group and logical volume has an id.
		for _, d := range got["disks"].([]any) {
			assert.NotEmpty(t, d.(map[string]any)["id"])
			for _, p := range d.(map[string]any)["physical_volumes"].([]any) {
				assert.NotEmpty(t, p.(map[string]any)["id"])
			}
		}
		// The recommended target mirrors the disks.
		its := got["init_target_server"].(map[string]any)
		require.Len(t, its["disks"], 3)
		assert.Equal(t, "/dev/vda", its["disks"].([]any)[0].(map[string]any)["name"])
		assert.Equal(t, float64(40<<30), its["disks"].([]any)[0].(map[string]any)["size"])
		assert.Len(t, its["volume_groups"], 1)
	})
}

func TestRegisterAgainIsTheSameSource(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		id := register(t, e, e.token, linuxSource("web-1", "fa:16:3e:00:00:01"))
		r := e.do("PUT", "/v3/sources/"+id, `{"name":"renamed-by-operator"}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		diskID := e.do("GET", "/v3/sources/"+id, "", e.token).json(t)["disks"].([]any)[0].(map[string]any)["id"]

		// The agent restarts and registers again, with more memory now.
		again := withJSON(t, linuxSource("web-1", "FA:16:3E:00:00:01"), func(m map[string]any) { m["memory"] = 4096 })
		assert.Equal(t, id, register(t, e, e.token, again), "same machine, same source")
		m := e.do("GET", "/v3/sources/"+id, "", e.token).json(t)
		assert.Equal(t, float64(4096), m["memory"], "facts refreshed")
		assert.Equal(t, "renamed-by-operator", m["name"], "the operator's name is kept")
		assert.Equal(t, diskID, m["disks"].([]any)[0].(map[string]any)["id"], "disk ids are stable")

		// With the id it was given, too; and an explicit machine id wins.
		withID := withJSON(t, linuxSource("web-1", "fa:16:3e:00:00:99"), func(m map[string]any) { m["id"] = id })
		assert.Equal(t, id, register(t, e, e.token, withID))
		r = e.doH("POST", "/v3/sources", linuxSource("clone", "fa:16:3e:00:00:02"), map[string]string{"X-Auth-Token": e.token, "X-Smsflow-Machine-Id": "m-42"})
		clone := r.json(t)["id"]
		r = e.doH("POST", "/v3/sources", linuxSource("clone-renamed", "fa:16:3e:00:00:03"), map[string]string{"X-Auth-Token": e.token, "X-Smsflow-Machine-Id": "m-42"})
		assert.Equal(t, clone, r.json(t)["id"])

		// A clone with other MACs is another machine.
		other := register(t, e, e.token, linuxSource("web-1", "fa:16:3e:00:00:04"))
		assert.NotEqual(t, id, other)
		// Another tenant registering the same machine gets its own source.
		assert.NotEqual(t, id, register(t, e, e.other, linuxSource("web-1", "fa:16:3e:00:00:01")))
		assert.Equal(t, float64(3), e.do("GET", "/v3/sources", "", e.token).json(t)["count"])
	})
}

func TestRegisterIntoProjects(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		// No project yet: the first source creates the default one.
		id := register(t, e, e.token, linuxSource("a", "fa:16:3e:00:00:01"))
		src := e.do("GET", "/v3/sources/"+id, "", e.token).json(t)
		projects := e.do("GET", "/v3/migprojects", "", e.token).json(t)["migprojects"].([]any)
		require.Len(t, projects, 1)
		def := projects[0].(map[string]any)
		assert.Equal(t, true, def["isdefault"])
		assert.Equal(t, def["id"], src["migprojectid"])

		wave := createMigProject(t, e, e.token, "wave-2")
		id2 := register(t, e, e.token, withJSON(t, linuxSource("b", "fa:16:3e:00:00:02"), func(m map[string]any) { m["migprojectid"] = wave }))
		assert.Equal(t, wave, e.do("GET", "/v3/sources/"+id2, "", e.token).json(t)["migprojectid"])
		r := e.do("GET", "/v3/sources?migproject="+wave, "", e.token)
		assert.Equal(t, float64(1), r.json(t)["count"])

		r = e.do("POST", "/v3/sources", withJSON(t, linuxSource("c", "fa:16:3e:00:00:03"), func(m map[string]any) { m["migprojectid"] = "nope" }), e.token)
		assert.Equal(t, http.StatusNotFound, r.status)
		code, _ := r.smsError(t)
		assert.Equal(t, "SMS.7301", code)

		// A project holding sources cannot be deleted (SMS.7311); empty it first.
		r = e.do("DELETE", "/v3/migprojects/"+wave, "", e.token)
		code, _ = r.smsError(t)
		assert.Equal(t, "SMS.7311", code)
		r = e.do("PUT", "/v3/sources/"+id2, `{"migprojectid":`+q(def["id"].(string))+`}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		r = e.do("DELETE", "/v3/migprojects/"+wave, "", e.token)
		assert.Equal(t, http.StatusOK, r.status, r.body)
		r = e.do("PUT", "/v3/sources/"+id2, `{"migprojectid":"missing"}`, e.token)
		code, _ = r.smsError(t)
		assert.Equal(t, "SMS.7301", code)
	})
}

func TestRegisterWindowsAndRules(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		id := register(t, e, e.token, fixture(t, "register-windows.json"))
		m := e.do("GET", "/v3/sources/"+id, "", e.token).json(t)
		assert.Equal(t, "WINDOWS", m["os_type"])
		assert.Equal(t, "C:\\Windows", m["system_dir"])
		assert.Equal(t, "UEFI", m["firmware"])

		win := fixture(t, "register-windows.json")
		suse := fixture(t, "register-suse.json")
		del := func(body, key string) string {
			return withJSON(t, body, func(m map[string]any) { delete(m, key) })
		}
		set := func(body, key string, v any) string {
			return withJSON(t, body, func(m map[string]any) { m[key] = v })
		}
		cases := []struct {
			name, body, code, param string
		}{
			{"windows needs driver_files", del(win, "driver_files"), "SMS.6013", "driver_files"},
			{"windows needs system_services", del(win, "system_services"), "SMS.6013", "system_services"},
			{"windows needs account_rights", del(win, "account_rights"), "SMS.6013", "account_rights"},
			{"windows needs system_dir", del(win, "system_dir"), "SMS.6013", "system_dir"},
			{"linux needs btrfs_list", del(suse, "btrfs_list"), "SMS.6013", "btrfs_list"},
			{"linux needs has_rsync", del(suse, "has_rsync"), "SMS.6013", "has_rsync"},
			{"linux needs boot_loader", del(suse, "boot_loader"), "SMS.6013", "boot_loader"},
			{"linux needs volume_groups", del(suse, "volume_groups"), "SMS.6013", "volume_groups"},
			{"name missing", del(suse, "name"), "SMS.6001", "name"},
			{"name empty", set(suse, "name", ""), "SMS.6001", "name"},
			{"os_type missing", del(suse, "os_type"), "SMS.6013", "os_type"},
			{"os_type unknown", set(suse, "os_type", "MACOS"), "SMS.6601", "os_type"},
			{"os_version missing", del(suse, "os_version"), "SMS.6013", "os_version"},
			{"ip missing", del(suse, "ip"), "SMS.6013", "ip"},
			{"firmware enum", set(suse, "firmware", "CSM"), "SMS.9001", "firmware"},
			{"boot_loader enum", set(suse, "boot_loader", "SYSLINUX"), "SMS.9001", "boot_loader"},
			{"platform enum", set(suse, "platform", "oracle"), "SMS.9001", "platform"},
			{"cpu out of range", set(suse, "cpu_quantity", 70000), "SMS.9001", "cpu_quantity"},
			{"memory negative", set(suse, "memory", -1), "SMS.9001", "memory"},
			{"io_read_wait too big", set(suse, "io_read_wait", 10000.5), "SMS.9001", "io_read_wait"},
			{"name too long", set(suse, "name", strings.Repeat("n", 256)), "SMS.9001", "name"},
			{"cpu as string", set(suse, "cpu_quantity", "1"), "SMS.9001", "cpu_quantity"},
			{"has_rsync as string", set(suse, "has_rsync", "yes"), "SMS.9001", "has_rsync"},
			{"disk negative size", set(suse, "disks", []any{map[string]any{"name": "/dev/vda", "device_use": "BOOT", "partition_style": "MBR", "size": -1, "used_size": 0, "physical_volumes": []any{}}}), "SMS.9001", "disks[0].size"},
			{"disk without partition style", set(suse, "disks", []any{map[string]any{"name": "/dev/vda", "device_use": "BOOT", "size": 1, "used_size": 0, "physical_volumes": []any{}}}), "SMS.6013", "disks[0].partition_style"},
			{"disk device_use enum", set(suse, "disks", []any{map[string]any{"name": "/dev/vda", "device_use": "CDROM", "partition_style": "MBR", "size": 1, "used_size": 0, "physical_volumes": []any{}}}), "SMS.9001", "disks[0].device_use"},
			{"btrfs size garbage", set(suse, "btrfs_list", []any{map[string]any{"size": "lots"}}), "SMS.9001", "btrfs_list.size"},
			{"network without mac", set(suse, "networks", []any{map[string]any{"name": "eth0", "ip": "1", "netmask": "2", "gateway": "3"}}), "SMS.6013", "networks[0].mac"},
			{"state/cycle mismatch", set(set(suse, "state", "finished"), "migration_cycle", "checking"), "SMS.7728", ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := e.do("POST", "/v3/sources", tc.body, e.token)
				assert.Equal(t, http.StatusBadRequest, r.status, r.body)
				code, params := r.smsError(t)
				assert.Equal(t, tc.code, code, r.body)
				if tc.param != "" {
					assert.Contains(t, params, tc.param, r.body)
				}
			})
		}
		assert.Equal(t, float64(1), e.do("GET", "/v3/sources", "", e.token).json(t)["count"], "nothing written")

		// A source failing environment checks is unavailable, with the check.
		arm := register(t, e, e.token, withJSON(t, linuxSource("arm", "fa:16:3e:00:00:a1"), func(m map[string]any) {
			m["linux_block_check"] = `{"architecture":"aarch64"}`
		}))
		a := e.do("GET", "/v3/sources/"+arm, "", e.token).json(t)
		assert.Equal(t, "unavailable", a["state"])
		found := false
		for _, c := range a["checks"].([]any) {
			cm := c.(map[string]any)
			if cm["name"] == "architecture" {
				found = true
				assert.Equal(t, "ERROR", cm["result"])
				assert.Equal(t, "SMS.0206", cm["error_code"])
			}
		}
		assert.True(t, found)
	})
}

func TestSourceListFilters(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ids := make([]string, 5)
		for i := range ids {
			ids[i] = register(t, e, e.token, withJSON(t, linuxSource(fmt.Sprintf("srv-%d", i), fmt.Sprintf("fa:16:3e:00:01:%02d", i)), func(m map[string]any) {
				m["ip"] = fmt.Sprintf("10.0.1.%d", i)
			}))
		}
		// srv-1 replicating; srv-2 silent for 10 minutes; srv-3 has a consistency result.
		require.Equal(t, http.StatusOK, e.do("PUT", "/v3/sources/"+ids[1]+"/changestate", `{"copystate":"REPLICATE","migrationcycle":"replicating"}`, e.token).status)
		old := time.Now().Add(-10 * time.Minute).UnixMilli()
		require.NoError(t, e.store.DB().Model(&store.Source{}).Where("id = ?", ids[2]).Update("last_visit_time", old).Error)
		require.NoError(t, e.store.DB().Model(&store.Source{}).Where("id = ?", ids[3]).Update("is_consistency_result_exist", true).Error)

		cases := []struct {
			query string
			want  []string
		}{
			{"", ids},
			{"state=replicate", ids[1:2]},
			{"state=REPLICATE", ids[1:2]},
			{"migration_cycle=replicating", ids[1:2]},
			{"migration_cycle=checking", []string{ids[0], ids[2], ids[3], ids[4]}},
			{"name=srv-3", ids[3:4]},
			{"id=" + ids[4], ids[4:5]},
			{"ip=10.0.1.0", ids[0:1]},
			{"connected=false", ids[2:3]},
			{"connected=true&state=waiting", []string{ids[0], ids[3], ids[4]}},
			{"is_consistency_result_exist=true", ids[3:4]},
			{"enterprise_project_id=0", ids},
			{"enterprise_project_id=ep-x", nil},
			{"limit=2&offset=1", ids[1:3]},
			{"limit=0", ids},
			{"offset=5", nil},
		}
		for _, tc := range cases {
			r := e.do("GET", "/v3/sources?"+tc.query, "", e.token)
			require.Equal(t, http.StatusOK, r.status, tc.query+": "+r.body)
			m := r.json(t)
			var got []string
			for _, s := range m["source_servers"].([]any) {
				got = append(got, s.(map[string]any)["id"].(string))
			}
			assert.Equal(t, tc.want, got, tc.query)
			if !strings.Contains(tc.query, "limit") && !strings.Contains(tc.query, "offset") {
				assert.Equal(t, float64(len(tc.want)), m["count"], tc.query)
			} else {
				assert.Equal(t, float64(5), m["count"], "count ignores paging: "+tc.query)
			}
		}
		row := e.do("GET", "/v3/sources?id="+ids[2], "", e.token).json(t)["source_servers"].([]any)[0].(map[string]any)
		assert.Equal(t, false, row["connected"])
		for _, k := range []string{"id", "ip", "name", "enterprise_project_id", "add_date", "os_type", "os_version", "oem_system",
			"state", "connected", "cpu_quantity", "memory", "current_task", "checks", "init_target_server", "replicatesize",
			"stage_action_time", "totalsize", "last_visit_time", "migration_cycle", "state_action_time",
			"is_consistency_result_exist", "has_tc", "start_type"} {
			assert.Contains(t, row, k)
		}
		assert.Equal(t, float64(5368709120), row["totalsize"])

		for _, bad := range []string{"state=paused", "migration_cycle=done", "connected=maybe", "limit=201", "offset=-1", "name=" + strings.Repeat("x", 256)} {
			r := e.do("GET", "/v3/sources?"+bad, "", e.token)
			assert.Equal(t, http.StatusBadRequest, r.status, bad)
		}
	})
}

func TestChangeState(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		id := register(t, e, e.token, linuxSource("s", "fa:16:3e:00:00:01"))
		before := e.do("GET", "/v3/sources/"+id, "", e.token).json(t)
		time.Sleep(5 * time.Millisecond) // action times are in ms: let the clock move

		cases := []struct {
			body   string
			status int
			code   string
		}{
			{`{"copystate":"REPLICATE","migrationcycle":"replicating"}`, 200, ""},
			{`{"copystate":"syncing","migrationcycle":"syncing"}`, 200, ""},
			{`{"copystate":"INIT","migrationcycle":"replicating"}`, 200, ""},
			{`{"copystate":"WAITING","migrationcycle":"cutovered"}`, 400, "SMS.7728"}, // the spec's own example
			{`{"copystate":"finished","migrationcycle":"checking"}`, 400, "SMS.7728"},
			{`{"copystate":"WAITING"}`, 400, "SMS.7726"},
			{`{"migrationcycle":"checking"}`, 400, "SMS.7726"},
			{`{"copystate":"","migrationcycle":"checking"}`, 400, "SMS.7727"},
			{`{"copystate":"WAITING","migrationcycle":""}`, 400, "SMS.7727"},
			{`{"copystate":"PAUSED","migrationcycle":"checking"}`, 400, "SMS.9001"},
			{`{"copystate":1,"migrationcycle":"checking"}`, 400, "SMS.9001"},
			{`{"copystate":"finished","migrationcycle":"cutovered"}`, 200, ""},
		}
		for _, tc := range cases {
			r := e.do("PUT", "/v3/sources/"+id+"/changestate", tc.body, e.token)
			assert.Equal(t, tc.status, r.status, tc.body+": "+r.body)
			if tc.code != "" {
				code, _ := r.smsError(t)
				assert.Equal(t, tc.code, code, tc.body)
			}
		}
		after := e.do("GET", "/v3/sources/"+id, "", e.token).json(t)
		assert.Equal(t, "finished", after["state"])
		assert.Equal(t, "cutovered", after["migration_cycle"])
		assert.Greater(t, after["state_action_time"], before["state_action_time"])
		assert.Greater(t, after["stage_action_time"], before["stage_action_time"])
		r := e.do("PUT", "/v3/sources/nope/changestate", `{"copystate":"WAITING","migrationcycle":"checking"}`, e.token)
		assert.Equal(t, http.StatusNotFound, r.status)
	})
}

func TestSourceUpdateAndDiskInfo(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		id := register(t, e, e.token, fixture(t, "register-suse.json"))
		m := e.do("GET", "/v3/sources/"+id, "", e.token).json(t)
		disks := m["disks"].([]any)
		vdb := disks[1].(map[string]any)
		vdc := disks[2].(map[string]any)
		vg := m["volume_groups"].([]any)[0].(map[string]any)
		lv := vg["logical_volumes"].([]any)[0].(map[string]any)
		body := fmt.Sprintf(`{"name":"abcd","disks":[{"id":%q,"need_migration":true,"adjust_size":53687091200,"relation_name":"/dev/vde"},{"id":%q,"need_migration":false,"adjust_size":0}],
			"volume_group_s":[{"id":%q,"logical_volumes":[{"id":%q,"adjust_size":21474836480}]}]}`,
			vdb["id"], vdc["id"], vg["id"], lv["id"])
		r := e.do("PUT", "/v3/sources/"+id, body, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		m = e.do("GET", "/v3/sources/"+id, "", e.token).json(t)
		assert.Equal(t, "abcd", m["name"])
		its := m["init_target_server"].(map[string]any)
		td := its["disks"].([]any)
		require.Len(t, td, 2, "the excluded disk is left out of the target")
		assert.Equal(t, "/dev/vde", td[1].(map[string]any)["name"])
		assert.Equal(t, float64(50<<30), td[1].(map[string]any)["size"])
		tlv := its["volume_groups"].([]any)[0].(map[string]any)["logical_volumes"].([]any)[0].(map[string]any)
		assert.Equal(t, float64(20<<30), tlv["size"])

		r = e.do("PUT", "/v3/sources/"+id, `{"disks":[{"id":"nope"}]}`, e.token)
		assert.Equal(t, http.StatusBadRequest, r.status)
		_, params := r.smsError(t)
		assert.Contains(t, params, "disks.id=nope")
		r = e.do("PUT", "/v3/sources/"+id, `{"disks":[{"need_migration":true}]}`, e.token)
		code, _ := r.smsError(t)
		assert.Equal(t, "SMS.6013", code, "disk id is required")
		r = e.do("PUT", "/v3/sources/"+id, `{"disks":[{"id":"x","adjust_size":-5}]}`, e.token)
		code, _ = r.smsError(t)
		assert.Equal(t, "SMS.9001", code)

		// Disk info replaces disks and volume groups; same-named disks keep their id.
		r = e.do("PUT", "/v3/sources/"+id+"/diskinfo", fmt.Sprintf(`{"disks":[{"name":"/dev/vdb","device_use":"NORMAL","size":1073741824,"used_size":0,"physical_volumes":[]},
			{"name":"/dev/vdz","device_use":"NORMAL","size":1073741824,"used_size":0,"physical_volumes":[]}],"volumegroups":[],"btrfs_list":[]}`), e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		m = e.do("GET", "/v3/sources/"+id, "", e.token).json(t)
		nd := m["disks"].([]any)
		require.Len(t, nd, 2)
		assert.Equal(t, vdb["id"], nd[0].(map[string]any)["id"])
		assert.Empty(t, m["volume_groups"])
		assert.Empty(t, m["btrfs_list"])
		r = e.do("PUT", "/v3/sources/"+id+"/diskinfo", `{"disks":[{"name":"/dev/vdb","device_use":"NORMAL","size":-1,"used_size":0,"physical_volumes":[]}]}`, e.token)
		assert.Equal(t, http.StatusBadRequest, r.status)
	})
}

func TestSourceDelete(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		a := register(t, e, e.token, linuxSource("a", "fa:16:3e:00:00:01"))
		b := register(t, e, e.token, linuxSource("b", "fa:16:3e:00:00:02"))
		c := register(t, e, e.token, linuxSource("c", "fa:16:3e:00:00:03"))
		require.Equal(t, http.StatusOK, e.do("PUT", "/v3/sources/"+b+"/changestate", `{"copystate":"REPLICATE","migrationcycle":"replicating"}`, e.token).status)

		r := e.do("DELETE", "/v3/sources/"+b, "", e.token)
		assert.Equal(t, http.StatusBadRequest, r.status)
		code, params := r.smsError(t)
		assert.Equal(t, "SMS.7601", code)
		assert.Equal(t, []string{b}, params)

		r = e.do("POST", "/v3/sources/delete", `{"ids":[`+q(a)+`,`+q(b)+`]}`, e.token)
		code, _ = r.smsError(t)
		assert.Equal(t, "SMS.7601", code)
		r = e.do("POST", "/v3/sources/delete", `{"ids":[`+q(a)+`,"missing"]}`, e.token)
		assert.Equal(t, http.StatusNotFound, r.status)
		assert.Equal(t, float64(3), e.do("GET", "/v3/sources", "", e.token).json(t)["count"], "nothing deleted")

		require.NoError(t, e.queue.Enqueue(t.Context(), tenantOf(e), &store.Command{SourceID: a, Name: "START", TaskID: "t1"}))
		r = e.do("POST", "/v3/sources/delete", `{"ids":[`+q(a)+`,`+q(c)+`]}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		cmds, err := e.store.Commands(t.Context(), tenantOf(e), a)
		require.NoError(t, err)
		assert.Empty(t, cmds, "its commands went with it")
		r = e.do("DELETE", "/v3/sources/"+a, "", e.token)
		assert.Equal(t, http.StatusNotFound, r.status)
		r = e.do("POST", "/v3/sources/delete", `{}`, e.token)
		code, _ = r.smsError(t)
		assert.Equal(t, "SMS.6013", code)
	})
}

func tenantOf(e *env) store.Tenant {
	return store.Tenant{DomainID: e.creds.DomainID, ProjectID: e.creds.ProjectID}
}

func TestOverviewAndErrors(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ids := make([]string, 4)
		for i := range ids {
			ids[i] = register(t, e, e.token, linuxSource(fmt.Sprintf("s%d", i), fmt.Sprintf("fa:16:3e:00:00:%02d", i)))
		}
		taskID := "task-1"
		require.NoError(t, e.store.DB().Model(&store.Source{}).Where("id IN ?", ids[:3]).Update("current_task_id", &taskID).Error)
		e.do("PUT", "/v3/sources/"+ids[0]+"/changestate", `{"copystate":"REPLICATE","migrationcycle":"replicating"}`, e.token)
		e.do("PUT", "/v3/sources/"+ids[1]+"/changestate", `{"copystate":"ERROR","migrationcycle":"replicating"}`, e.token)
		require.NoError(t, e.store.DB().Model(&store.Source{}).Where("id = ?", ids[1]).
			Update("error_json", `{"error_code":"SMS.1302","error_param":"[\"/mnt/vdb1\"]"}`).Error)

		m := e.do("GET", "/v3/sources/overview", "", e.token).json(t)
		assert.Equal(t, float64(1), m["replicate"])
		assert.Equal(t, float64(1), m["error"])
		assert.Equal(t, float64(1), m["waiting"], "the third has a task and waits")
		assert.Equal(t, float64(1), m["unconfigured"])
		for _, k := range []string{"waiting", "replicate", "syncing", "stopped", "deleting", "cutovering", "unavailable", "stopping", "finished", "initialize", "error", "cloning", "unconfigured"} {
			assert.Contains(t, m, k)
		}

		r := e.do("GET", "/v3/errors?limit=10&offset=0", "", e.token)
		require.Equal(t, http.StatusOK, r.status)
		m = r.json(t)
		assert.Equal(t, float64(1), m["count"])
		me := m["migration_errors"].([]any)[0].(map[string]any)
		assert.Equal(t, ids[1], me["source_id"])
		assert.Equal(t, "s1", me["name"])
		assert.Equal(t, `{"error_code":"SMS.1302","error_param":"[\"/mnt/vdb1\"]"}`, me["error_json"])
		assert.Contains(t, me, "target_ip")
		assert.Equal(t, float64(0), e.do("GET", "/v3/errors?migproject=other", "", e.token).json(t)["count"])
		assert.Equal(t, http.StatusBadRequest, e.do("GET", "/v3/errors?limit=101", "", e.token).status)
		assert.Equal(t, float64(0), e.do("GET", "/v3/errors", "", e.other).json(t)["count"])
	})
}

// TestSourceIsolation: another tenant's source answers like a missing one on
// every endpoint and is left alone.
func TestSourceIsolation(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		id := register(t, e, e.token, linuxSource("mine", "fa:16:3e:00:00:01"))
		missing := "00000000-0000-0000-0000-000000000000"
		for _, tc := range []struct{ method, path, body string }{
			{"GET", "/v3/sources/%s", ""},
			{"PUT", "/v3/sources/%s", `{"name":"stolen"}`},
			{"DELETE", "/v3/sources/%s", ""},
			{"PUT", "/v3/sources/%s/changestate", `{"copystate":"WAITING","migrationcycle":"checking"}`},
			{"PUT", "/v3/sources/%s/diskinfo", `{"disks":[]}`},
			{"GET", "/v3/sources/%s/command", ""},
			{"POST", "/v3/sources/%s/command_result", `{"command_name":"START","result":"success","result_detail":{}}`},
		} {
			theirs := e.do(tc.method, fmt.Sprintf(tc.path, id), tc.body, e.other)
			none := e.do(tc.method, fmt.Sprintf(tc.path, missing), tc.body, e.other)
			assert.Equal(t, http.StatusNotFound, theirs.status, tc.method+" "+tc.path+": "+theirs.body)
			c1, _ := theirs.smsError(t)
			c2, _ := none.smsError(t)
			assert.Equal(t, c2, c1)
		}
		r := e.do("POST", "/v3/sources/delete", `{"ids":[`+q(id)+`]}`, e.other)
		assert.Equal(t, http.StatusNotFound, r.status)
		assert.Equal(t, float64(0), e.do("GET", "/v3/sources", "", e.other).json(t)["count"])
		assert.Equal(t, float64(0), e.do("GET", "/v3/sources?id="+id, "", e.other).json(t)["count"])
		m := e.do("GET", "/v3/sources/"+id, "", e.token).json(t)
		assert.Equal(t, "mine", m["name"])
		assert.Equal(t, "disks", func() string {
			if len(m["disks"].([]any)) == 1 {
				return "disks"
			}
			return "changed"
		}(), "disk info untouched")
	})
}

// TestSourceMoveToAnotherTenantsProject: a migration project of another
// domain is answered like a missing one (SMS.7301, found inside the store's
// transaction by MoveSource) and the source stays where it was, unrenamed.
func TestSourceMoveToAnotherTenantsProject(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		id := register(t, e, e.token, linuxSource("mine", "fa:16:3e:00:00:01"))
		home := e.do("GET", "/v3/sources/"+id, "", e.token).json(t)["migprojectid"]
		theirs := createMigProject(t, e, e.other, "theirs")
		for _, project := range []string{theirs, "00000000-0000-0000-0000-000000000000"} {
			r := e.do("PUT", "/v3/sources/"+id, `{"name":"moved","migprojectid":`+q(project)+`}`, e.token)
			assert.Equal(t, http.StatusNotFound, r.status, r.body)
			code, _ := r.smsError(t)
			assert.Equal(t, "SMS.7301", code)
		}
		m := e.do("GET", "/v3/sources/"+id, "", e.token).json(t)
		assert.Equal(t, home, m["migprojectid"])
		assert.Equal(t, "mine", m["name"])
	})
}
