package web_test

import (
	"net/http"
	"net/url"
	"reflect"
	"testing"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/sms/v3/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/sms"
)

// enumValues are the values of one of the SDK's enum structs (its fields
// are the values, each with a Value method).
func enumValues[T interface{ Value() string }](enum any) []string {
	var out []string
	v := reflect.ValueOf(enum)
	for i := range v.NumField() {
		out = append(out, v.Field(i).Interface().(T).Value())
	}
	return out
}

// TestTaskConfigKeyEnum: configuration-setting's config_key, in the query
// as in the body, is one of the SDK's ConfigBodyConfigKeyEnum; anything
// else is SMS.9001 with the spec's error body, naming the field.
func TestTaskConfigKeyEnum(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, _ *fakeEngine) {
		id, _ := newSourceTask(t, e, "cfg-1")
		path := "/v3/tasks/" + id + "/configuration-setting"
		keys := enumValues[model.ConfigBodyConfigKey](model.GetConfigBodyConfigKeyEnum())
		require.Len(t, keys, 16)
		for _, k := range keys {
			r := e.do("POST", path, `{"configurations":[{"config_key":`+q(k)+`,"config_value":"1"}]}`, e.token)
			require.Equal(t, http.StatusOK, r.status, k+": "+r.body)
			r = e.do("GET", path+"?config_key="+k, "", e.token)
			require.Equal(t, http.StatusOK, r.status, k+": "+r.body)
			items, _ := r.json(t)["configurations"].([]any)
			require.Len(t, items, 1, k)
			assert.Equal(t, k, items[0].(map[string]any)["config_key"])
		}
		assert.Len(t, e.do("GET", path, "", e.token).json(t)["configurations"], 16, "no key means every key")

		for _, bad := range []string{"ROOT_PASSWORD", "migrate_exclude_dir", "INSTALL_PWD_AGENT", "MIGRATE_EXCLUDE_DIR "} {
			params := wantError(t, e.do("GET", path+"?config_key="+url.QueryEscape(bad), "", e.token),
				http.StatusBadRequest, "SMS.9001", bad)
			assert.Equal(t, []string{"config_key"}, params, bad)
			params = wantError(t, e.do("POST", path, `{"configurations":[{"config_key":`+q(bad)+`,"config_value":"1"}]}`, e.token),
				http.StatusBadRequest, "SMS.9001", bad)
			assert.Equal(t, []string{"configurations[0].config_key"}, params, bad)
		}
		// Another domain's task is not found, whatever the key.
		wantError(t, e.do("GET", path+"?config_key=LINUX_CPU_LIMIT", "", e.other), http.StatusNotFound, "SMS.7703")
	})
}

// TestProgressSubtaskEnum: a progress report's subtask_name is one of the
// SDK's enum, or the spec's DETACH_AGENT_IMAGE; anything else is SMS.6004
// before the task's state is looked at (a READY task answers the valid
// names SMS.0501, not running).
func TestProgressSubtaskEnum(t *testing.T) {
	eachTask(t, func(t *testing.T, e *env, eng *fakeEngine) {
		id, _ := newSourceTask(t, e, "sub-1")
		path := "/v3/tasks/" + id + "/progress"
		report := func(name string) response {
			return e.do("PUT", path, withJSON(t, progressBody, func(m map[string]any) { m["subtask_name"] = name }), e.token)
		}
		names := enumValues[model.UpdateTaskSpeedReqSubtaskName](model.GetUpdateTaskSpeedReqSubtaskNameEnum())
		require.Len(t, names, len(sms.SubtaskNames))
		for _, n := range append(names, "DETACH_AGENT_IMAGE") {
			wantError(t, report(n), http.StatusBadRequest, "SMS.0501", n)
		}
		for _, bad := range []string{"COPY_EVERYTHING", "migrate_linux_file", "DETACH_AGENT_IMAGES", ""} {
			params := wantError(t, report(bad), http.StatusBadRequest, "SMS.6004", bad)
			assert.Equal(t, []string{"subtask_name"}, params, bad)
		}
		// Running: a name of the enum that is not this task's step is
		// still SMS.6004; its own is recorded.
		setTask(t, e, id, map[string]any{"state": sms.TaskRunning})
		wantError(t, report("MIGRATE_WINDOWS_BLOCK"), http.StatusBadRequest, "SMS.6004")
		assert.Empty(t, eng.calls().progress, "no refused report reaches the run")
		r := report("DETACH_AGENT_IMAGE")
		require.Equal(t, http.StatusOK, r.status, r.body)
	})
}
