package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/csv"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	sms "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/sms/v3"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/sms/v3/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/identity/taskcert"
	"github.com/smsflow/smsflow/internal/sms/speedlimit"
	"github.com/smsflow/smsflow/internal/testkit/sdktest"
)

// sdkClient is the official SDK pointed at the server with its bootstrap
// AK/SK and project.
func sdkClient(t *testing.T, s *server) *sms.SmsClient {
	return sdktest.Client(t, s.http, s.creds.AK, s.creds.SK, s.creds.ProjectID, "smsflow-e2e-sdk")
}

// sdkShow is ShowTask through the SDK; it must decode.
func sdkShow(t *testing.T, c *sms.SmsClient, id string) *model.ShowTaskResponse {
	t.Helper()
	tk, err := c.ShowTask(&model.ShowTaskRequest{TaskId: id})
	require.NoError(t, err)
	return tk
}

// sdkWaitState polls ShowTask through the SDK until the task is in state.
func sdkWaitState(t *testing.T, s *server, c *sms.SmsClient, id, state string, within time.Duration) *model.ShowTaskResponse {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		tk := sdkShow(t, c, id)
		if tk.State != nil && tk.State.Value() == state {
			return tk
		}
		if time.Now().After(deadline) {
			var got, ej string
			if tk.State != nil {
				got = tk.State.Value()
			}
			if tk.ErrorJson != nil {
				ej = *tk.ErrorJson
			}
			t.Fatalf("task %s is %s (%s), not %s after %s\n%s", id, got, ej, state, within, lastLines(s.log.String(), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func subtask(tk *model.ShowTaskResponse, name string) *model.SubTask {
	if tk.SubTasks == nil {
		return nil
	}
	for i := range *tk.SubTasks {
		st := &(*tk.SubTasks)[i]
		if st.Name != nil && *st.Name == name {
			return st
		}
	}
	return nil
}

// TestSDKTasks drives every task operation of the official SDK against the
// real server, its workflow and a scripted agent: create, list, show,
// update, actions, progress, speed windows, the SDK's task extras, the end
// of the migration, delete and batch delete.
func TestSDKTasks(t *testing.T) {
	s := newServer(t)
	c := sdkClient(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The agent: START reports 30 % and holds the copy (the task stays
	// RUNNING) until release; UPLOAD_LOG waits for logGate; the rest
	// behaves like copyAll.
	a := newAgent(t, s, "sdk-01")
	copying := make(chan string, 1)
	release := make(chan struct{})
	logGate := make(chan struct{})
	well := copyAll(ctx)
	a.onCommand = func(a *scriptedAgent, name, taskID string) (string, string) {
		switch name {
		case "START":
			go func() {
				a.progress(ctx, taskID, "MIGRATE_LINUX_BLOCK", 30)
				copying <- taskID
				select {
				case <-release:
				case <-ctx.Done():
					return
				}
				for _, p := range []int32{80, 100} {
					a.progress(ctx, taskID, "MIGRATE_LINUX_BLOCK", p)
				}
			}()
			return "success", "copying"
		case "UPLOAD_LOG":
			select {
			case <-logGate:
			case <-ctx.Done():
			}
			return "success", "uploaded"
		}
		return well(a, name, taskID)
	}
	go a.run(ctx)
	// A second source, with no agent running: its task stays READY.
	b := newAgent(t, s, "sdk-02")

	post := func(name, sourceID string) *model.PostTask {
		return &model.PostTask{
			Name: name, Type: model.GetPostTaskTypeEnum().MIGRATE_BLOCK,
			OsType:       new(model.GetPostTaskOsTypeEnum().LINUX),
			SourceServer: &model.SourceServerByTask{Id: sourceID},
			TargetServer: &model.TargetServerByTask{Name: name + "-target", VmId: ""},
			RegionName:   "local", RegionId: "local", ProjectName: "default", ProjectId: s.creds.ProjectID,
			AutoStart: new(false), StartTargetServer: new(true), Syncing: new(false), Priority: new(int32(2)),
			SpeedLimit: new(int32(500)), UsePublicIp: new(false), ExistServer: new(false),
		}
	}

	// 1. CreateTask.
	created, err := c.CreateTask(&model.CreateTaskRequest{Body: post("sdk-main", a.sourceID)})
	require.NoError(t, err)
	require.NotNil(t, created.Id)
	id := *created.Id
	created, err = c.CreateTask(&model.CreateTaskRequest{Body: post("sdk-second", b.sourceID)})
	require.NoError(t, err)
	second := *created.Id
	assert.NotEqual(t, id, second)
	_, err = c.CreateTask(&model.CreateTaskRequest{Body: post("sdk-again", a.sourceID)})
	sdktest.Err(t, err, http.StatusBadRequest, "SMS.6005", "one task per source")
	_, err = c.CreateTask(&model.CreateTaskRequest{Body: post("sdk-nosource", "no-such-source")})
	sdktest.Err(t, err, http.StatusNotFound, "SMS.7602")

	// 3. ShowTask while READY.
	tk := sdkShow(t, c, id)
	assert.Equal(t, id, *tk.Id)
	assert.Equal(t, "sdk-main", *tk.Name)
	assert.Equal(t, "READY", tk.State.Value())
	assert.Equal(t, "MIGRATE_BLOCK", tk.Type.Value())
	assert.Equal(t, "LINUX", tk.OsType.Value())
	assert.Equal(t, int32(2), tk.Priority.Value())
	assert.Equal(t, int32(500), *tk.SpeedLimit)
	assert.Equal(t, s.creds.ProjectID, *tk.ProjectId)
	assert.True(t, *tk.StartTargetServer)
	require.NotNil(t, tk.SourceServer)
	assert.Equal(t, a.sourceID, *tk.SourceServer.Id)
	assert.Equal(t, "sdk-01", tk.SourceServer.Name)
	assert.Equal(t, "10.0.0.10", tk.SourceServer.Ip)
	assert.Equal(t, "LINUX", tk.SourceServer.OsType.Value())
	require.NotNil(t, tk.TargetServer)
	assert.Equal(t, "sdk-main-target", *tk.TargetServer.Name)
	require.Len(t, tk.TargetServer.Disks, 1, "the recommended layout of the source's one disk")
	assert.Equal(t, "/dev/vda", *tk.TargetServer.Disks[0].Name)
	require.NotNil(t, tk.SubTasks)
	var names []string
	for _, st := range *tk.SubTasks {
		names = append(names, *st.Name)
		assert.Equal(t, int32(0), st.Progress, *st.Name)
	}
	assert.Equal(t, []string{"CREATE_CLOUD_SERVER", "SSL_CONFIG", "ATTACH_AGENT_IMAGE", "FORMAT_DISK_LINUX_BLOCK",
		"MIGRATE_LINUX_BLOCK", "SYNC_LINUX_BLOCK", "CONFIGURE_LINUX_BLOCK", "DETTACH_AGENT_IMAGE"}, names)
	assert.Positive(t, *tk.CreateDate)

	// 4. UpdateTask while READY: name, migration IP, target name and the
	// default speed limit, which the run picks up (START carries it).
	_, err = c.UpdateTask(&model.UpdateTaskRequest{TaskId: id, Body: &model.PutTaskReq{
		Name: new("sdk-renamed"), MigrationIp: new("192.168.7.7"), SpeedLimit: new(int32(300)),
		TargetServer: &model.TargetServer{Name: new("sdk-target-2")},
	}})
	require.NoError(t, err)
	tk = sdkShow(t, c, id)
	assert.Equal(t, "sdk-renamed", *tk.Name)
	assert.Equal(t, "192.168.7.7", *tk.MigrationIp)
	assert.Equal(t, int32(300), *tk.SpeedLimit)
	assert.Equal(t, "sdk-target-2", *tk.TargetServer.Name)
	_, err = c.UpdateTask(&model.UpdateTaskRequest{TaskId: "no-such-task", Body: &model.PutTaskReq{Name: new("x")}})
	sdktest.Err(t, err, http.StatusNotFound, "SMS.7703")

	// 7a. Speed windows while READY: without rules of its own the task shows
	// none (§4.2.9); its flat limit is the task's speed_limit.
	sl, err := c.ShowsSpeedLimits(&model.ShowsSpeedLimitsRequest{TaskId: id})
	require.NoError(t, err)
	require.NotNil(t, sl.SpeedLimit)
	assert.Empty(t, *sl.SpeedLimit)

	// 2. ListTasks with filters and paging.
	list := func(req *model.ListTasksRequest) *model.ListTasksResponse {
		t.Helper()
		out, err := c.ListTasks(req)
		require.NoError(t, err)
		require.NotNil(t, out.Count)
		return out
	}
	all := list(&model.ListTasksRequest{})
	assert.Equal(t, int32(2), *all.Count)
	require.Len(t, *all.Tasks, 2)
	assert.Equal(t, id, *(*all.Tasks)[0].Id, "oldest first")
	assert.Equal(t, "sdk-renamed", *(*all.Tasks)[0].Name)
	assert.Equal(t, a.sourceID, *(*all.Tasks)[0].SourceServer.Id)
	assert.Equal(t, "INIT", (*all.Tasks)[0].LogCollectStatus.Value())
	ready := list(&model.ListTasksRequest{State: new(model.GetListTasksRequestStateEnum().READY)})
	assert.Equal(t, int32(2), *ready.Count)
	running := list(&model.ListTasksRequest{State: new(model.GetListTasksRequestStateEnum().RUNNING)})
	assert.Equal(t, int32(0), *running.Count)
	assert.Empty(t, *running.Tasks)
	byName := list(&model.ListTasksRequest{Name: new("sdk-renamed")})
	require.Equal(t, int32(1), *byName.Count)
	assert.Equal(t, id, *(*byName.Tasks)[0].Id)
	bySource := list(&model.ListTasksRequest{SourceServerId: new(b.sourceID)})
	require.Equal(t, int32(1), *bySource.Count)
	assert.Equal(t, second, *(*bySource.Tasks)[0].Id)
	byID := list(&model.ListTasksRequest{Id: new(second)})
	require.Equal(t, int32(1), *byID.Count)
	assert.Equal(t, "sdk-second", *(*byID.Tasks)[0].Name)
	page := list(&model.ListTasksRequest{Limit: new(int32(1)), Offset: new(int32(1))})
	assert.Equal(t, int32(2), *page.Count, "count is the total, not the page")
	require.Len(t, *page.Tasks, 1)
	assert.Equal(t, second, *(*page.Tasks)[0].Id)
	past := list(&model.ListTasksRequest{Limit: new(int32(10)), Offset: new(int32(5))})
	assert.Equal(t, int32(2), *past.Count)
	assert.Empty(t, *past.Tasks)
	none := list(&model.ListTasksRequest{Name: new("sdk-renamed"), SourceServerId: new(b.sourceID)})
	assert.Equal(t, int32(0), *none.Count, "filters combine")
	_, err = c.ListTasks(&model.ListTasksRequest{Limit: new(int32(500))})
	sdktest.Err(t, err, http.StatusBadRequest, "SMS.9001")

	// 8a. What READY refuses: the TLS material, the passphrase, a log.
	_, err = c.ShowCertKey(&model.ShowCertKeyRequest{TaskId: id})
	sdktest.Err(t, err, http.StatusBadRequest, "SMS.9905")
	_, err = c.ShowPassphrase(&model.ShowPassphraseRequest{TaskId: id})
	sdktest.Err(t, err, http.StatusBadRequest, "SMS.9905")
	_, err = c.CollectLog(&model.CollectLogRequest{TaskId: id, Body: &model.UploadLogRequestBody{LogBucket: "logs"}})
	sdktest.Err(t, err, http.StatusBadRequest, "SMS.7717")

	// 5a. network_check while READY reaches the agent; UpdateNetworkCheckInfo
	// is its report, shown by the task.
	op := model.GetUpdateTaskStatusReqOperationEnum()
	action := func(taskID string, o model.UpdateTaskStatusReqOperation) error {
		_, err := c.UpdateTaskStatus(&model.UpdateTaskStatusRequest{TaskId: taskID, Body: &model.UpdateTaskStatusReq{Operation: o}})
		return err
	}
	require.NoError(t, action(id, op.NETWORK_CHECK))
	require.Eventually(t, func() bool { return a.count("NETWORK_CHECK") == 1 }, 20*time.Second, 100*time.Millisecond,
		"the agent is asked to check the network: %v", a.seen())
	assert.Equal(t, id, a.lastParams("NETWORK_CHECK")["task_id"])
	nc, err := c.UpdateNetworkCheckInfo(&model.UpdateNetworkCheckInfoRequest{TaskId: id, Body: &model.NetworkCheckInfoRequestBody{
		DomainConnectivity: new(true), DestinationConnectivity: new(false), NetworkDelay: 12.5, NetworkJitter: 1.25,
		MigrationSpeed: 93.5, LossPercentage: 0.5, CpuUsage: 7.5, MemUsage: 512, EvaluationResult: "good",
	}})
	require.NoError(t, err)
	assert.Equal(t, id, *nc.TaskId)
	tk = sdkShow(t, c, id)
	require.NotNil(t, tk.NetworkCheckInfo)
	assert.Equal(t, model.NetworkCheckInfoRequestBody{DomainConnectivity: new(true), DestinationConnectivity: new(false),
		NetworkDelay: 12.5, NetworkJitter: 1.25, MigrationSpeed: 93.5, LossPercentage: 0.5, CpuUsage: 7.5, MemUsage: 512,
		EvaluationResult: "good"}, *tk.NetworkCheckInfo)
	_, err = c.UpdateNetworkCheckInfo(&model.UpdateNetworkCheckInfoRequest{TaskId: id, Body: &model.NetworkCheckInfoRequestBody{
		LossPercentage: 150, EvaluationResult: "bad"}})
	sdktest.Err(t, err, http.StatusBadRequest, "SMS.9001")
	_, err = c.UpdateNetworkCheckInfo(&model.UpdateNetworkCheckInfoRequest{TaskId: "no-such-task", Body: &model.NetworkCheckInfoRequestBody{}})
	sdktest.Err(t, err, http.StatusNotFound, "SMS.7703")

	// 8b. Special configuration: set, replace one key, read back (all, and
	// one key).
	cfg, err := c.ShowConfigSetting(&model.ShowConfigSettingRequest{TaskId: id})
	require.NoError(t, err)
	assert.Equal(t, id, *cfg.TaskId)
	assert.Equal(t, model.GetShowConfigSettingResponseMigrateTypeEnum().LINUX_MIGRATE_BLOCK, *cfg.MigrateType, "the SDK's enum: OS and type")
	assert.Empty(t, *cfg.Configurations)
	keys := model.GetConfigBodyConfigKeyEnum()
	_, err = c.UploadSpecialConfigurationSetting(&model.UploadSpecialConfigurationSettingRequest{TaskId: id,
		Body: &model.ConfigurationRequestBody{Configurations: []model.ConfigBody{
			{ConfigKey: keys.MIGRATE_EXCLUDE_DIR, ConfigValue: "/tmp,/var/cache"},
			{ConfigKey: keys.LINUX_CPU_LIMIT, ConfigValue: "50", ConfigStatus: new("ON")},
		}}})
	require.NoError(t, err)
	_, err = c.UploadSpecialConfigurationSetting(&model.UploadSpecialConfigurationSettingRequest{TaskId: id,
		Body: &model.ConfigurationRequestBody{Configurations: []model.ConfigBody{{ConfigKey: keys.LINUX_CPU_LIMIT, ConfigValue: "70"}}}})
	require.NoError(t, err)
	cfg, err = c.ShowConfigSetting(&model.ShowConfigSettingRequest{TaskId: id})
	require.NoError(t, err)
	require.Len(t, *cfg.Configurations, 2)
	assert.Equal(t, "MIGRATE_EXCLUDE_DIR", (*cfg.Configurations)[0].ConfigKey.Value())
	assert.Equal(t, "/tmp,/var/cache", (*cfg.Configurations)[0].ConfigValue)
	assert.Equal(t, "LINUX_CPU_LIMIT", (*cfg.Configurations)[1].ConfigKey.Value())
	assert.Equal(t, "70", (*cfg.Configurations)[1].ConfigValue, "setting a key again replaces it")
	one, err := c.ShowConfigSetting(&model.ShowConfigSettingRequest{TaskId: id, ConfigKey: new("LINUX_CPU_LIMIT")})
	require.NoError(t, err)
	require.Len(t, *one.Configurations, 1, "config_key selects one item")
	assert.Equal(t, "70", (*one.Configurations)[0].ConfigValue)
	byIDWithCfg := list(&model.ListTasksRequest{Id: new(id)})
	require.NotNil(t, (*byIDWithCfg.Tasks)[0].SpecialConfig)
	assert.Len(t, *(*byIDWithCfg.Tasks)[0].SpecialConfig, 2, "the task lists them too")

	// 5b. start is accepted; the copy begins and holds at 30 %.
	require.NoError(t, action(id, op.START))
	select {
	case got := <-copying:
		require.Equal(t, id, got)
	case <-time.After(40 * time.Second):
		t.Fatalf("the copy did not start: %v\n%s", a.seen(), lastLines(s.log.String(), 40))
	}
	assert.Equal(t, float64(300), a.lastParams("START")["speed_limit"], "the updated speed_limit reached the run")
	tk = sdkWaitState(t, s, c, id, "RUNNING", 10*time.Second)
	for _, name := range names[:4] {
		assert.Equal(t, int32(100), subtask(tk, name).Progress, "%s is done before the copy", name)
	}
	mig := subtask(tk, "MIGRATE_LINUX_BLOCK")
	assert.Equal(t, int32(30), mig.Progress)
	assert.NotNil(t, mig.StartDate)
	assert.Positive(t, *tk.StartDate)
	assert.True(t, *tk.Connected)
	assert.Equal(t, "replicate", tk.SourceServer.State.Value())
	assert.NotEmpty(t, *tk.TargetServer.VmId, "the target was created")

	// Wrong-state operations come back with their SMS codes.
	sdktest.Err(t, action(id, op.START), http.StatusBadRequest, "SMS.7713", "start while RUNNING")
	sdktest.Err(t, action(id, op.RESTART), http.StatusBadRequest, "SMS.7722", "restart while RUNNING")
	sdktest.Err(t, action(id, op.TEST), http.StatusBadRequest, "SMS.7721", "test is for a syncing task")
	sdktest.Err(t, action(second, op.STOP), http.StatusBadRequest, "SMS.7714", "stop while READY")
	sdktest.Err(t, action("no-such-task", op.START), http.StatusNotFound, "SMS.7703")

	// UpdateTask while RUNNING: a rename is fine, a new type is not.
	_, err = c.UpdateTask(&model.UpdateTaskRequest{TaskId: id, Body: &model.PutTaskReq{Name: new("sdk-running")}})
	require.NoError(t, err)
	assert.Equal(t, "sdk-running", *sdkShow(t, c, id).Name)
	_, err = c.UpdateTask(&model.UpdateTaskRequest{TaskId: id, Body: &model.PutTaskReq{
		Type: new(model.GetPutTaskReqTypeEnum().MIGRATE_FILE)}})
	sdktest.Err(t, err, http.StatusBadRequest, "SMS.7712")
	running = list(&model.ListTasksRequest{State: new(model.GetListTasksRequestStateEnum().RUNNING)})
	require.Equal(t, int32(1), *running.Count)
	assert.Equal(t, id, *(*running.Tasks)[0].Id)

	// 8c. While RUNNING: the TLS material and the passphrase.
	ck, err := c.ShowCertKey(&model.ShowCertKeyRequest{TaskId: id, EnableCaCert: new(true)})
	require.NoError(t, err)
	_, err = tls.X509KeyPair([]byte(*ck.Cert), []byte(*ck.PrivateKey))
	require.NoError(t, err, "cert and private_key are a pair")
	blk, _ := pem.Decode([]byte(*ck.Cert))
	require.NotNil(t, blk)
	cert, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	assert.Equal(t, "smsflow-task-"+id, cert.Subject.CommonName)
	require.NotNil(t, ck.Ca, "enable_ca_cert: the issuer comes too")
	assert.Equal(t, *ck.Cert, *ck.Ca, "the task certificate is its own CA")
	// Distinct pairs for the target's management and data planes, issued
	// by the task certificate.
	for _, p := range [][2]*string{{ck.TargetMgmtCert, ck.TargetMgmtPrivateKey}, {ck.TargetDataCert, ck.TargetDataPrivateKey}} {
		_, err := tls.X509KeyPair([]byte(*p[0]), []byte(*p[1]))
		require.NoError(t, err)
		require.NoError(t, taskcert.Verify(*ck.Ca, *p[0], time.Now()))
		assert.NotEqual(t, *ck.PrivateKey, *p[1])
	}
	assert.NotEqual(t, *ck.TargetMgmtPrivateKey, *ck.TargetDataPrivateKey)
	plain, err := c.ShowCertKey(&model.ShowCertKeyRequest{TaskId: id})
	require.NoError(t, err)
	assert.Nil(t, plain.Ca, "no CA unless enabled")
	assert.Equal(t, *ck.TargetDataPrivateKey, *plain.TargetDataPrivateKey)
	pp, err := c.ShowPassphrase(&model.ShowPassphraseRequest{TaskId: id})
	require.NoError(t, err)
	assert.Equal(t, id, *pp.TaskId)
	assert.Regexp(t, regexp.MustCompile(`^[A-Za-z0-9]{32}$`), *pp.Passphrase)
	pp2, err := c.ShowPassphrase(&model.ShowPassphraseRequest{TaskId: id})
	require.NoError(t, err)
	assert.Equal(t, *pp.Passphrase, *pp2.Passphrase, "one passphrase per task")
	_, err = c.ShowCertKey(&model.ShowCertKeyRequest{TaskId: second})
	sdktest.Err(t, err, http.StatusBadRequest, "SMS.9905", "the READY task still refuses")

	// 6. UpdateTaskSpeed (PUT /progress) as the agent: the task shows it.
	before := time.Now().UnixMilli()
	_, err = c.UpdateTaskSpeed(&model.UpdateTaskSpeedRequest{TaskId: id, Body: &model.UpdateTaskSpeedReq{
		SubtaskName: model.GetUpdateTaskSpeedReqSubtaskNameEnum().MIGRATE_LINUX_BLOCK, Progress: 50,
		Replicatesize: 50 << 20, Totalsize: 100 << 20, ProcessTrace: "sdk 50%", MigrateSpeed: new(64.5),
		CompressRate: new(1.5), RemainTime: new(int64(120)), TotalCpuUsage: new(33.5), AgentCpuUsage: new(4.5),
		TotalMemUsage: new(1024.0), AgentMemUsage: new(48.0), TotalDiskIo: new(12.0), AgentDiskIo: new(3.0),
		AgentTime: new(time.Now().Format(time.RFC3339)),
	}})
	require.NoError(t, err)
	tk = sdkShow(t, c, id)
	mig = subtask(tk, "MIGRATE_LINUX_BLOCK")
	assert.Equal(t, int32(50), mig.Progress)
	assert.Equal(t, "sdk 50%", *mig.ProcessTrace)
	assert.Equal(t, 64.5, *mig.MigrateSpeed)
	assert.Equal(t, 64.5, *tk.MigrateSpeed)
	assert.Equal(t, 1.5, *tk.CompressRate)
	assert.Equal(t, int64(120), *tk.RemainSeconds)
	assert.GreaterOrEqual(t, *tk.EstimateCompleteTime, before+120_000)
	assert.Equal(t, 33.5, *tk.TotalCpuUsage)
	assert.Equal(t, 4.5, *tk.AgentCpuUsage)
	assert.Equal(t, 1024.0, *tk.TotalMemUsage)
	assert.Equal(t, 48.0, *tk.AgentMemUsage)
	assert.Equal(t, 12.0, *tk.TotalDiskIo)
	assert.Equal(t, 3.0, *tk.AgentDiskIo)
	assert.Equal(t, "MIGRATE_LINUX_BLOCK", *tk.SubtaskInfo)
	assert.Equal(t, "RUNNING", tk.State.Value(), "50 % does not finish the step")
	progress := func(taskID string, sub model.UpdateTaskSpeedReqSubtaskName, pct int32) error {
		_, err := c.UpdateTaskSpeed(&model.UpdateTaskSpeedRequest{TaskId: taskID, Body: &model.UpdateTaskSpeedReq{
			SubtaskName: sub, Progress: pct, Replicatesize: 1, Totalsize: 2, ProcessTrace: "x"}})
		return err
	}
	subs := model.GetUpdateTaskSpeedReqSubtaskNameEnum()
	sdktest.Err(t, progress(id, subs.MIGRATE_WINDOWS_BLOCK, 60), http.StatusBadRequest, "SMS.6004", "not a step of a Linux block task")
	sdktest.Err(t, progress(id, subs.MIGRATE_LINUX_BLOCK, 101), http.StatusBadRequest, "SMS.6101")
	sdktest.Err(t, progress(second, subs.MIGRATE_LINUX_BLOCK, 10), http.StatusBadRequest, "SMS.0501", "the READY task is not running")
	sdktest.Err(t, progress("no-such-task", subs.MIGRATE_LINUX_BLOCK, 10), http.StatusNotFound, "SMS.7703")
	assert.Equal(t, int32(50), subtask(sdkShow(t, c, id), "MIGRATE_LINUX_BLOCK").Progress, "refusals change nothing")

	// 7b. UpdateSpeed with the spec's example windows ("0:00"–"8:00" ...): the
	// running copy gets the limit in force now.
	windows := []model.SpeedLimitlJson{
		{Start: "0:00", End: "8:00", Speed: new(int32(20))},
		{Start: "8:00", End: "15:00", Speed: new(int32(50))},
		{Start: "15:00", End: "23:59", Speed: new(int32(25))},
	}
	rules := make([]speedlimit.Rule, len(windows))
	for i, w := range windows {
		rules[i] = speedlimit.Rule{Start: w.Start, End: w.End, Speed: *w.Speed}
	}
	ws, errs := speedlimit.Parse(rules)
	require.Empty(t, errs)
	def := speedlimit.Limit{Mbps: 300}
	nowBefore, _ := speedlimit.At(ws, def, time.Now(), time.Local)
	_, err = c.UpdateSpeed(&model.UpdateSpeedRequest{TaskId: id, Body: &model.SpeedLimit{SpeedLimit: windows}})
	require.NoError(t, err)
	nowAfter, _ := speedlimit.At(ws, def, time.Now(), time.Local)
	sl, err = c.ShowsSpeedLimits(&model.ShowsSpeedLimitsRequest{TaskId: id})
	require.NoError(t, err)
	require.NotNil(t, sl.SpeedLimit)
	assert.Equal(t, windows, *sl.SpeedLimit, "the windows as sent")
	if nowBefore.Mbps != 300 || nowAfter.Mbps != 300 { // not in the one uncovered minute, 23:59–24:00
		require.Eventually(t, func() bool {
			p := a.lastParams("SPEED_LIMIT")
			if p == nil {
				return false
			}
			v := p["speed_limit"]
			return v == float64(nowBefore.Mbps) || v == float64(nowAfter.Mbps)
		}, 20*time.Second, 100*time.Millisecond, "the agent runs at the window's limit: %v", a.seen())
	}
	for _, bad := range []struct {
		name  string
		rules []model.SpeedLimitlJson
		code  string
	}{
		{"overlapping", []model.SpeedLimitlJson{{Start: "00:00", End: "12:00", Speed: new(int32(10))},
			{Start: "11:00", End: "13:00", Speed: new(int32(20))}}, "SMS.9001"},
		{"end before start", []model.SpeedLimitlJson{{Start: "10:00", End: "09:00", Speed: new(int32(10))}}, "SMS.9001"},
		{"not a time", []model.SpeedLimitlJson{{Start: "25:00", End: "26:00", Speed: new(int32(10))}}, "SMS.6405"},
		{"speed too high", []model.SpeedLimitlJson{{Start: "00:00", End: "01:00", Speed: new(int32(10001))}}, "SMS.9001"},
	} {
		_, err = c.UpdateSpeed(&model.UpdateSpeedRequest{TaskId: id, Body: &model.SpeedLimit{SpeedLimit: bad.rules}})
		sdktest.Err(t, err, http.StatusBadRequest, bad.code, bad.name)
	}
	sl, err = c.ShowsSpeedLimits(&model.ShowsSpeedLimitsRequest{TaskId: id})
	require.NoError(t, err)
	assert.Equal(t, windows, *sl.SpeedLimit, "refused windows change nothing")
	_, err = c.ShowsSpeedLimits(&model.ShowsSpeedLimitsRequest{TaskId: "no-such-task"})
	sdktest.Err(t, err, http.StatusNotFound, "SMS.7703")

	// 8d. CollectLog while RUNNING: the agent is asked (with the bucket);
	// one collection at a time.
	_, err = c.CollectLog(&model.CollectLogRequest{TaskId: id, Body: &model.UploadLogRequestBody{LogBucket: "sdk-logs"}})
	require.NoError(t, err)
	_, err = c.CollectLog(&model.CollectLogRequest{TaskId: id, Body: &model.UploadLogRequestBody{LogBucket: "sdk-logs"}})
	sdktest.Err(t, err, http.StatusBadRequest, "SMS.7716")
	require.Eventually(t, func() bool { return a.count("UPLOAD_LOG") == 1 }, 20*time.Second, 100*time.Millisecond)
	assert.Equal(t, "sdk-logs", a.lastParams("UPLOAD_LOG")["bucket"])
	assert.Equal(t, "UPLOADING", (*list(&model.ListTasksRequest{Id: new(id)}).Tasks)[0].LogCollectStatus.Value())
	close(logGate)
	require.Eventually(t, func() bool {
		return (*list(&model.ListTasksRequest{Id: new(id)}).Tasks)[0].LogCollectStatus.Value() == "UPLOADED"
	}, 20*time.Second, 100*time.Millisecond, "the agent's result is the collection's status")

	// 8e. Consistency results: empty, reported, read back, exported as CSV.
	cr, err := c.ShowConsistencyResult(&model.ShowConsistencyResultRequest{TaskId: id})
	require.NoError(t, err)
	assert.Equal(t, id, *cr.TaskId)
	assert.Empty(t, *cr.ResultList)
	results := []model.ConsistencyResult{
		{DirCheck: "/", NumTotalFiles: 1200, NumDifferentFiles: 3, NumTargetMissFiles: 1, NumTargetMoreFiles: 0},
		{DirCheck: "/data", NumTotalFiles: 40, NumDifferentFiles: 0, NumTargetMissFiles: 0, NumTargetMoreFiles: 2},
	}
	_, err = c.UpdateConsistencyResult(&model.UpdateConsistencyResultRequest{TaskId: id,
		Body: &model.SetConsistencyResultRequestBody{ConsistencyResult: &results}})
	require.NoError(t, err)
	cr, err = c.ShowConsistencyResult(&model.ShowConsistencyResultRequest{TaskId: id})
	require.NoError(t, err)
	require.Len(t, *cr.ResultList, 2)
	for i, raw := range *cr.ResultList {
		var got model.ConsistencyResult
		require.NoError(t, json.Unmarshal([]byte(raw), &got), raw)
		assert.Equal(t, results[i], got)
	}
	_, err = c.UpdateConsistencyResult(&model.UpdateConsistencyResultRequest{TaskId: "no-such-task",
		Body: &model.SetConsistencyResultRequestBody{ConsistencyResult: &results}})
	sdktest.Err(t, err, http.StatusNotFound, "SMS.7703")
	exp, err := c.ExportConsistencyResults(&model.ExportConsistencyResultsRequest{XLanguage: new("en-us"),
		Body: &model.BatchGetConsistencyResultReq{TaskInfo: []model.BatchConsistencyReq{
			{TaskId: new(id), SourceId: new(a.sourceID), SourceName: new("sdk-01")}, {TaskId: new(second)}}}})
	require.NoError(t, err)
	require.NotNil(t, exp.Body)
	csvRaw, err := io.ReadAll(exp.Body)
	require.NoError(t, err)
	require.NoError(t, exp.Body.Close())
	rows, err := csv.NewReader(bytes.NewReader(csvRaw)).ReadAll()
	require.NoError(t, err, string(csvRaw))
	assert.Equal(t, [][]string{
		{"task_id", "source_id", "source_name", "dir_check", "num_total_files", "num_different_files",
			"num_target_miss_files", "num_target_more_files"},
		{id, a.sourceID, "sdk-01", "/", "1200", "3", "1", "0"},
		{id, a.sourceID, "sdk-01", "/data", "40", "0", "0", "2"},
	}, rows, "the second task has no results")
	_, err = c.ExportConsistencyResults(&model.ExportConsistencyResultsRequest{Body: &model.BatchGetConsistencyResultReq{
		TaskInfo: []model.BatchConsistencyReq{{TaskId: new("no-such-task")}}}})
	sdktest.Err(t, err, http.StatusNotFound, "SMS.7703")

	// The verification after the final pass finds the copy complete (the
	// workflow refuses to launch a target whose last verification
	// differs: SMS.1511).
	clean := []model.ConsistencyResult{{DirCheck: "/", NumTotalFiles: 1200}}
	_, err = c.UpdateConsistencyResult(&model.UpdateConsistencyResultRequest{TaskId: id,
		Body: &model.SetConsistencyResultRequestBody{ConsistencyResult: &clean}})
	require.NoError(t, err)

	// 9. Release the copy: the final sync, cutover and MIGRATE_SUCCESS.
	close(release)
	tk = sdkWaitState(t, s, c, id, "MIGRATE_SUCCESS", 40*time.Second)
	for _, st := range *tk.SubTasks {
		assert.Equal(t, int32(100), st.Progress, *st.Name)
	}
	assert.Equal(t, "finished", tk.SourceServer.State.Value())
	assert.Equal(t, "cutovered", tk.SourceServer.MigrationCycle.Value())
	assert.GreaterOrEqual(t, *tk.FinishDate, *tk.StartDate)
	assert.Equal(t, 1, a.count("START"))
	assert.Equal(t, 1, a.count("SYNC"))
	sdktest.Err(t, action(id, op.STOP), http.StatusBadRequest, "SMS.7714", "stop on a finished task")
	sdktest.Err(t, action(id, op.NETWORK_CHECK), http.StatusBadRequest, "SMS.7713", "no network check on a finished task")

	// 9b. The SDK's later words on a finished task: skip wants a running
	// task, migration_test continuous sync, sync_failed_rollback (the
	// older API's word) a failed sync (SMS.7718); start synchronizes it
	// again (SYNCING, SYNC_SUCCESS), and clear drops its snapshot.
	sdktest.Err(t, action(id, op.SKIP), http.StatusBadRequest, "SMS.7713", "skip on a finished task")
	sdktest.Err(t, action(id, op.MIGRATION_TEST), http.StatusBadRequest, "SMS.7721", "migration_test on a finished task")
	code, body, err := s.do("POST", "/v3/tasks/"+id+"/action", map[string]string{"operation": "sync_failed_rollback"})
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, string(body), "SMS.7718")
	require.NoError(t, action(id, op.START))
	tk = sdkWaitState(t, s, c, id, "SYNC_SUCCESS", 40*time.Second)
	assert.Equal(t, 2, a.count("SYNC"), "one more pass")
	assert.Equal(t, "finished", tk.SourceServer.State.Value())
	// The pass snapshotted the target first (what a rollback restores):
	// the id is the task's target_snapshot_id, the copy in the target's
	// folder; clear deletes both.
	require.NotNil(t, tk.TargetSnapshotId, "the pass recorded its snapshot")
	snapDir := filepath.Join(s.dataDir, "targets", id, "snapshots", *tk.TargetSnapshotId)
	assert.DirExists(t, snapDir)
	require.NoError(t, action(id, op.CLEAR))
	require.Eventually(t, func() bool { return sdkShow(t, c, id).TargetSnapshotId == nil }, 20*time.Second, 100*time.Millisecond,
		"clear forgets the snapshot")
	assert.NoDirExists(t, snapDir, "clear deletes the snapshot")
	sdktest.Err(t, action(id, op.STOP), http.StatusBadRequest, "SMS.7714", "stop on a synced task")
	s.recordHistory(id, "sdk-finished-sync-check")
	_, err = c.ShowPassphrase(&model.ShowPassphraseRequest{TaskId: id})
	sdktest.Err(t, err, http.StatusBadRequest, "SMS.9905", "no passphrase once the copy is over")

	// DeleteTask, then DeleteTasks on the second task.
	_, err = c.DeleteTask(&model.DeleteTaskRequest{TaskId: id})
	require.NoError(t, err)
	_, err = c.DeleteTasks(&model.DeleteTasksRequest{Body: &model.DeleteTasksReq{Ids: []string{second, "no-such-task"}}})
	sdktest.Err(t, err, http.StatusNotFound, "SMS.7703", "a missing id deletes none")
	require.NotNil(t, sdkShow(t, c, second), "still there")
	_, err = c.DeleteTasks(&model.DeleteTasksRequest{Body: &model.DeleteTasksReq{Ids: []string{second}}})
	require.NoError(t, err)
	for _, tid := range []string{id, second} {
		require.Eventually(t, func() bool {
			_, err := c.ShowTask(&model.ShowTaskRequest{TaskId: tid})
			var se *sdkerr.ServiceResponseError
			return errors.As(err, &se) && se.StatusCode == http.StatusNotFound
		}, 30*time.Second, 200*time.Millisecond, "task %s is deleted", tid)
		_, err = c.ShowTask(&model.ShowTaskRequest{TaskId: tid})
		sdktest.Err(t, err, http.StatusNotFound, "SMS.7703")
	}
	require.Eventually(t, func() bool { return a.count("DELETE") == 1 }, 20*time.Second, 100*time.Millisecond,
		"the agent is told to forget the task: %v", a.seen())
	assert.Equal(t, id, a.lastParams("DELETE")["task_id"])
	_, err = c.DeleteTask(&model.DeleteTaskRequest{TaskId: id})
	sdktest.Err(t, err, http.StatusNotFound, "SMS.7703")
	gone := list(&model.ListTasksRequest{})
	assert.Equal(t, int32(0), *gone.Count)
}
