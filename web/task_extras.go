package web

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/identity/taskcert"
	"github.com/smsflow/smsflow/internal/ptr"
	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/store"
)

// The task operations the SDK has beyond the spec: TLS material and
// passphrase for the agent ↔ target link, special configuration,
// consistency results, log collection and network check reports.

// secretsReadable: the TLS key and passphrase are handed out only while a
// copy runs (SMS.9905).
func secretsReadable(task *store.Task) error {
	if task.State != sms.TaskRunning && task.State != sms.TaskSyncing {
		return smserr.New(smserr.SMS9905).WithDetail("the task is " + string(task.State))
	}
	if task.KeyPEMEnc == "" || task.PassphraseEnc == "" {
		return smserr.New(smserr.SMS0521, "not configured yet").WithDetail("SSL_CONFIG has not run for this task yet")
	}
	return nil
}

// loadTask reads the request's task; false when it failed the request.
func (h taskHandlers) loadTask(c *gin.Context, r request) (*store.Task, bool) {
	task, err := h.store.Task(c.Request.Context(), r.tenant, r.id)
	if err != nil {
		fail(c, taskError(err, r.id))
		return nil, false
	}
	return task, true
}

// certKey: GET /v3/tasks/{id}/certkey[?enable_ca_cert=true]: the task's
// pair (cert, private_key: what smsflow's agent and receiver use, pinned),
// the target's management and data pairs, and with enable_ca_cert the CA.
func (h taskHandlers) certKey(c *gin.Context, r request, box *secret.Box) {
	task, found := h.loadTask(c, r)
	if !found {
		return
	}
	if err := secretsReadable(task); err != nil {
		fail(c, err)
		return
	}
	key, err := box.Open(task.KeyPEMEnc)
	if err != nil {
		fail(c, fmt.Errorf("task %s key: %w", task.ID, err))
		return
	}
	var v checks
	withCA := queryBool(c, &v, "enable_ca_cert")
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	out := gin.H{"cert": task.CertPEM, "private_key": key}
	// The target's management and data planes get pairs of their own,
	// issued by the task certificate; with enable_ca_cert the answer
	// carries that issuer (ca) to verify them by.
	for _, p := range []struct {
		role      taskcert.Role
		cert, key string
	}{{taskcert.Management, "target_mgmt_cert", "target_mgmt_private_key"}, {taskcert.Data, "target_data_cert", "target_data_private_key"}} {
		cert, pk, err := taskcert.Issue(task.CertPEM, key, p.role)
		if err != nil {
			fail(c, fmt.Errorf("task %s %s pair: %w", task.ID, p.role, err))
			return
		}
		out[p.cert], out[p.key] = cert, pk
	}
	if ptr.Deref(withCA) {
		out["ca"] = task.CAPEM
	}
	logFor(c).InfoContext(c.Request.Context(), "task key read", "task", task.ID, "user", r.principal.UserName)
	ok(c, out)
}

// passphrase: GET /v3/tasks/{id}/passphrase.
func (h taskHandlers) passphrase(c *gin.Context, r request, box *secret.Box) {
	task, found := h.loadTask(c, r)
	if !found {
		return
	}
	if err := secretsReadable(task); err != nil {
		fail(c, err)
		return
	}
	pass, err := box.Open(task.PassphraseEnc)
	if err != nil {
		fail(c, fmt.Errorf("task %s passphrase: %w", task.ID, err))
		return
	}
	ok(c, gin.H{"task_id": task.ID, "passphrase": pass})
}

// configKeys are the SDK's ConfigBodyConfigKeyEnum: the keys a task's
// configuration-setting holds and its config_key query selects. (The SDK's
// field comment also names INSTALL_PWD_AGENT; its enum has no such value.)
var configKeys = []string{"MIGRATE_EXCLUDE_DIR", "SYNC_EXCLUDE_DIR", "ONLY_SYNC_DIR", "CONSISTENCY_DIR", "CONSISTENCY_DIR_ILLEGAL",
	"LINUX_BLOCK_COMPRESS_THREAD_NUM", "MIGRATE_DST_IP", "LINUX_BLOCK_CACHE_SIZE", "LINUX_CPU_LIMIT", "LINUX_MEM_LIMIT",
	"LINUX_IO_LIMIT", "NUM_PROCESS_MIGRATE", "NUM_PROCESS_SYNC", "CONSISTENCY_RECHECK", "CONSISTENCY_MODE", "DYNAMIC_PORT"}

// showConfig: GET /v3/tasks/{id}/configuration-setting[?config_key=K] (the
// SDK's ConfigKey selects one item).
func (h taskHandlers) showConfig(c *gin.Context, r request) {
	key := c.Query("config_key")
	if key != "" {
		var v checks
		v.enum("config_key", &key, optional, configKeys...)
		if err := v.err(); err != nil {
			fail(c, err)
			return
		}
	}
	task, found := h.loadTask(c, r)
	if !found {
		return
	}
	items := nonNilConfig(task.SpecialConfig)
	if key != "" {
		items = []store.ConfigItem{}
		for _, it := range task.SpecialConfig {
			if it.ConfigKey == key {
				items = append(items, it)
			}
		}
	}
	ok(c, gin.H{"task_id": task.ID, "migrate_type": sms.MigrateTypeOf(task.Type, task.OSType), "configurations": items})
}

// setConfig: POST /v3/tasks/{id}/configuration-setting — sets the given keys,
// keeping the others.
func (h taskHandlers) setConfig(c *gin.Context, r request) {
	var b struct {
		Configurations *[]struct {
			ConfigKey    *string `json:"config_key"`
			ConfigValue  *string `json:"config_value"`
			ConfigStatus *string `json:"config_status"`
		} `json:"configurations"`
	}
	if err := bindJSON(c, &b); err != nil {
		fail(c, err)
		return
	}
	var v checks
	if !v.required("configurations", b.Configurations != nil) {
		fail(c, v.err())
		return
	}
	for i, item := range *b.Configurations {
		f := "configurations[" + strconv.Itoa(i) + "]."
		v.enum(f+"config_key", item.ConfigKey, required, configKeys...)
		v.str(f+"config_value", item.ConfigValue, required, 0, 4096)
		v.str(f+"config_status", item.ConfigStatus, optional, 0, 255)
	}
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	err := h.store.UpdateTask(c.Request.Context(), r.tenant, r.id, func(task *store.Task) error {
		for _, item := range *b.Configurations {
			ci := store.ConfigItem{ConfigKey: *item.ConfigKey, ConfigValue: *item.ConfigValue, ConfigStatus: item.ConfigStatus}
			replaced := false
			for i := range task.SpecialConfig {
				if task.SpecialConfig[i].ConfigKey == ci.ConfigKey {
					task.SpecialConfig[i], replaced = ci, true
				}
			}
			if !replaced {
				task.SpecialConfig = append(task.SpecialConfig, ci)
			}
		}
		return nil
	})
	if err != nil {
		fail(c, taskError(err, r.id))
		return
	}
	okEmpty(c)
}

// showConsistency: GET /v3/tasks/{id}/consistency-result — each result as a
// JSON string (the SDK declares result_list an array of strings).
func (h taskHandlers) showConsistency(c *gin.Context, r request) {
	task, found := h.loadTask(c, r)
	if !found {
		return
	}
	list := make([]string, 0, len(task.ConsistencyResults))
	for _, r := range task.ConsistencyResults {
		b, _ := json.Marshal(r)
		list = append(list, string(b))
	}
	ok(c, gin.H{"task_id": task.ID, "result_list": list})
}

// setConsistency: POST /v3/tasks/{id}/consistency-result, from the agent
// after a verification pass.
func (h taskHandlers) setConsistency(c *gin.Context, r request) {
	var b struct {
		ConsistencyResult *[]struct {
			DirCheck           *string `json:"dir_check"`
			NumTotalFiles      *int32  `json:"num_total_files"`
			NumDifferentFiles  *int32  `json:"num_different_files"`
			NumTargetMissFiles *int32  `json:"num_target_miss_files"`
			NumTargetMoreFiles *int32  `json:"num_target_more_files"`
		} `json:"consistency_result"`
	}
	if err := bindJSON(c, &b); err != nil {
		fail(c, err)
		return
	}
	var v checks
	var results []store.ConsistencyResult
	if b.ConsistencyResult != nil {
		for i, r := range *b.ConsistencyResult {
			f := "consistency_result[" + strconv.Itoa(i) + "]."
			v.str(f+"dir_check", r.DirCheck, required, 0, 4096)
			for _, n := range []struct {
				name string
				v    *int32
			}{{"num_total_files", r.NumTotalFiles}, {"num_different_files", r.NumDifferentFiles},
				{"num_target_miss_files", r.NumTargetMissFiles}, {"num_target_more_files", r.NumTargetMoreFiles}} {
				between(&v, f+n.name, n.v, required, 0, maxInt32)
			}
			results = append(results, store.ConsistencyResult{DirCheck: ptr.Deref(r.DirCheck), NumTotalFiles: ptr.Deref(r.NumTotalFiles),
				NumDifferentFiles: ptr.Deref(r.NumDifferentFiles), NumTargetMissFiles: ptr.Deref(r.NumTargetMissFiles),
				NumTargetMoreFiles: ptr.Deref(r.NumTargetMoreFiles)})
		}
	}
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	t := r.tenant
	err := h.store.SetConsistencyResults(c.Request.Context(), t, r.id, results)
	if err != nil {
		fail(c, taskError(err, r.id))
		return
	}
	okEmpty(c)
}

// exportConsistency: POST /v3/tasks/consistency-results/export — the results
// of the named tasks as CSV.
func (h taskHandlers) exportConsistency(c *gin.Context) {
	var b struct {
		TaskInfo *[]struct {
			TaskID     *string `json:"task_id"`
			SourceID   *string `json:"source_id"`
			SourceName *string `json:"source_name"`
		} `json:"task_info"`
	}
	if err := bindJSON(c, &b); err != nil {
		fail(c, err)
		return
	}
	var v checks
	if !v.required("task_info", b.TaskInfo != nil) {
		fail(c, v.err())
		return
	}
	for i, ti := range *b.TaskInfo {
		v.str("task_info["+strconv.Itoa(i)+"].task_id", ti.TaskID, required, 1, 255)
	}
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"task_id", "source_id", "source_name", "dir_check", "num_total_files", "num_different_files",
		"num_target_miss_files", "num_target_more_files"})
	t := mustPrincipal(c).Tenant()
	for _, ti := range *b.TaskInfo {
		task, err := h.store.Task(c.Request.Context(), t, *ti.TaskID)
		if err != nil {
			fail(c, taskError(err, *ti.TaskID))
			return
		}
		for _, r := range task.ConsistencyResults {
			_ = w.Write([]string{task.ID, task.SourceID, ptr.Deref(ti.SourceName), r.DirCheck, strconv.Itoa(int(r.NumTotalFiles)),
				strconv.Itoa(int(r.NumDifferentFiles)), strconv.Itoa(int(r.NumTargetMissFiles)), strconv.Itoa(int(r.NumTargetMoreFiles))})
		}
	}
	w.Flush()
	c.Header("Content-Disposition", `attachment; filename="consistency-results.csv"`)
	c.Data(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
}

// collectLog: POST /v3/tasks/{id}/log — asks the agent to upload its log
// (UPLOAD_LOG); one collection at a time (SMS.7716), not before the task
// started (SMS.7717).
func (h taskHandlers) collectLog(c *gin.Context, r request, queue Enqueuer) {
	var b struct {
		LogBucket *string `json:"log_bucket"`
	}
	if err := bindJSON(c, &b); err != nil {
		fail(c, err)
		return
	}
	var v checks
	v.str("log_bucket", b.LogBucket, required, 0, 255)
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	ctx := c.Request.Context()
	t := r.tenant
	var sourceID string
	err := h.store.UpdateTask(ctx, t, r.id, func(task *store.Task) error {
		if task.State == sms.TaskReady {
			return smserr.New(smserr.SMS7717)
		}
		if task.LogCollectStatus == sms.LogUploading {
			return smserr.New(smserr.SMS7716)
		}
		task.LogCollectStatus, sourceID = sms.LogUploading, task.SourceID
		return nil
	})
	if err != nil {
		fail(c, taskError(err, r.id))
		return
	}
	if err := queue.Enqueue(ctx, t, &store.Command{SourceID: sourceID, Name: sms.CmdUploadLog, TaskID: r.id, Bucket: *b.LogBucket}); err != nil {
		fail(c, err)
		return
	}
	okEmpty(c)
}

// networkCheckInfo: POST /v3/{task_id}/update-network-check-info, from the
// agent.
func (h taskHandlers) networkCheckInfo(c *gin.Context, r request) {
	var b struct {
		DomainConnectivity      *bool    `json:"domain_connectivity"`
		DestinationConnectivity *bool    `json:"destination_connectivity"`
		NetworkDelay            *float64 `json:"network_delay"`
		NetworkJitter           *float64 `json:"network_jitter"`
		MigrationSpeed          *float64 `json:"migration_speed"`
		LossPercentage          *float64 `json:"loss_percentage"`
		CPUUsage                *float64 `json:"cpu_usage"`
		MemUsage                *float64 `json:"mem_usage"`
		EvaluationResult        *string  `json:"evaluation_result"`
	}
	if err := bindJSON(c, &b); err != nil {
		fail(c, err)
		return
	}
	var v checks
	for _, f := range []struct {
		name string
		x    *float64
		max  float64
	}{{"network_delay", b.NetworkDelay, 1e6}, {"network_jitter", b.NetworkJitter, 1e6}, {"migration_speed", b.MigrationSpeed, 1e6},
		{"loss_percentage", b.LossPercentage, 100}, {"cpu_usage", b.CPUUsage, 100}, {"mem_usage", b.MemUsage, 1e7}} {
		v.required(f.name, f.x != nil)
		floatBetween(&v, f.name, f.x, 0, f.max)
	}
	v.str("evaluation_result", b.EvaluationResult, required, 0, 255)
	if err := v.err(); err != nil {
		fail(c, err)
		return
	}
	info := &store.NetworkCheckInfo{DomainConnectivity: b.DomainConnectivity, DestinationConnectivity: b.DestinationConnectivity,
		NetworkDelay: *b.NetworkDelay, NetworkJitter: *b.NetworkJitter, MigrationSpeed: *b.MigrationSpeed,
		LossPercentage: *b.LossPercentage, CPUUsage: *b.CPUUsage, MemUsage: *b.MemUsage, EvaluationResult: *b.EvaluationResult}
	err := h.store.UpdateTask(c.Request.Context(), r.tenant, r.id, func(task *store.Task) error {
		task.NetworkCheckInfo = info
		return nil
	})
	if err != nil {
		fail(c, taskError(err, r.id))
		return
	}
	ok(c, gin.H{"task_id": r.id})
}
