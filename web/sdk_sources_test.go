package web_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/sms/v3/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/store"
	"github.com/smsflow/smsflow/internal/testkit/sdktest"
)

// TestSDKSources drives every source, command and agent-extra operation with
// the official SDK, from the spec's register example to the error cases.
func TestSDKSources(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		c := sdkClient(t, e, e.creds.AK, e.creds.SK, e.creds.ProjectID)

		// The agent's start: privacy agreement, config, API versions.
		_, err := c.CreatePrivacyAgreements(&model.CreatePrivacyAgreementsRequest{})
		require.NoError(t, err)
		pa, err := c.ShowPrivacyAgreements(&model.ShowPrivacyAgreementsRequest{})
		require.NoError(t, err)
		assert.True(t, *pa.Flag)
		cfg, err := c.ShowConfig(&model.ShowConfigRequest{})
		require.NoError(t, err)
		assert.Equal(t, e.creds.ProjectID, cfg.Config["project_id"])
		vers, err := c.ListApiVersion(&model.ListApiVersionRequest{})
		require.NoError(t, err)
		assert.Equal(t, "v3", *(*vers.Versions)[0].Id)
		ver, err := c.ShowApiVersion(&model.ShowApiVersionRequest{Version: "v3"})
		require.NoError(t, err)
		assert.Equal(t, "CURRENT", *ver.Status)

		// Register the spec's SUSE example through the SDK's own type. Its
		// btrfs numbers are strings in the example; the SDK type has integers.
		raw := fixture(t, "register-suse.json")
		raw = withJSON(t, raw, func(m map[string]any) {
			fs := m["btrfs_list"].([]any)[0].(map[string]any)
			fs["size"], fs["nodesize"], fs["sectorsize"], fs["g_vol_used_size"] = 3543348019, 16384, 4096, 3894038528
			lv := m["volume_groups"].([]any)[0].(map[string]any)["logical_volumes"].([]any)[0].(map[string]any)
			lv["inode_size"] = 256
		})
		var body model.PostSourceServerBody
		require.NoError(t, json.Unmarshal([]byte(raw), &body))
		reg, err := c.RegisterServer(&model.RegisterServerRequest{Body: &body})
		require.NoError(t, err)
		id := *reg.Id
		again, err := c.RegisterServer(&model.RegisterServerRequest{Body: &body})
		require.NoError(t, err)
		assert.Equal(t, id, *again.Id, "registering again returns the same source")

		shown, err := c.ShowServer(&model.ShowServerRequest{SourceId: id})
		require.NoError(t, err)
		assert.Equal(t, "host-192-168-136-xxx", *shown.Name)
		assert.Len(t, *shown.Disks, 3)
		assert.Len(t, *(*shown.BtrfsList)[0].Subvolumn, 23)
		assert.Equal(t, int64(3543348019), *(*shown.BtrfsList)[0].Size)
		assert.Equal(t, "waiting", shown.State.Value())
		assert.True(t, *shown.Connected)
		require.NotNil(t, shown.InitTargetServer)
		assert.Len(t, shown.InitTargetServer.Disks, 3)

		list, err := c.ListServers(&model.ListServersRequest{Name: new("host-192-168-136-xxx"), Limit: new(int32(10)), Offset: new(int32(0)), Connected: new(true)})
		require.NoError(t, err)
		assert.Equal(t, int32(1), *list.Count)
		row := (*list.SourceServers)[0]
		assert.Equal(t, id, *row.Id)
		assert.Equal(t, "checking", row.MigrationCycle.Value())
		assert.NotEmpty(t, *row.Checks)

		// Update, disk info, state.
		_, err = c.UpdateServerName(&model.UpdateServerNameRequest{SourceId: id, Body: &model.PutSourceServerBody{Name: new("suse-web")}})
		require.NoError(t, err)
		_, err = c.UpdateDiskInfo(&model.UpdateDiskInfoRequest{SourceId: id, Body: &model.PutDiskInfoReq{
			Disks:        &[]model.ServerDisk{{Name: new("/dev/vda"), DeviceUse: new("BOOT"), Size: new(int64(42949672960)), UsedSize: new(int64(1)), PhysicalVolumes: &[]model.PhysicalVolume{}}},
			Volumegroups: &[]model.VolumeGroups{}, BtrfsList: &[]model.BtrfsFileSystem{}}})
		require.NoError(t, err)
		_, err = c.UpdateCopyState(&model.UpdateCopyStateRequest{SourceId: id, Body: &model.PutCopyStateReq{
			Copystate: model.GetPutCopyStateReqCopystateEnum().REPLICATE, Migrationcycle: model.GetPutCopyStateReqMigrationcycleEnum().REPLICATING}})
		require.NoError(t, err)
		shown, err = c.ShowServer(&model.ShowServerRequest{SourceId: id})
		require.NoError(t, err)
		assert.Equal(t, "suse-web", *shown.Name)
		assert.Len(t, *shown.Disks, 1)
		assert.Equal(t, "replicate", shown.State.Value())

		ov, err := c.ShowOverview(&model.ShowOverviewRequest{})
		require.NoError(t, err)
		assert.Equal(t, int32(1), *ov.Unconfigured)

		// Commands.
		cmd, err := c.ShowCommand(&model.ShowCommandRequest{ServerId: id})
		require.NoError(t, err)
		assert.Equal(t, "", *cmd.CommandName)
		require.NoError(t, e.queue.Enqueue(t.Context(), tenantOf(e), &store.Command{SourceID: id, Name: "START", TaskID: "task-1"}))
		cmd, err = c.ShowCommand(&model.ShowCommandRequest{ServerId: id})
		require.NoError(t, err)
		assert.Equal(t, "START", *cmd.CommandName)
		assert.Equal(t, "task-1", *cmd.CommandParam.TaskId)
		var detail any = map[string]any{"msg": "xxx"}
		_, err = c.UpdateCommandResult(&model.UpdateCommandResultRequest{ServerId: id, Body: &model.CommandBody{CommandName: "START", Result: "success", ResultDetail: &detail}})
		require.NoError(t, err)
		_, err = c.UpdateCommandResult(&model.UpdateCommandResultRequest{ServerId: id, Body: &model.CommandBody{CommandName: "STOP", Result: "success"}})
		sdktest.Err(t, err, http.StatusBadRequest, "SMS.6021")

		errs, err := c.ListErrorServers(&model.ListErrorServersRequest{Limit: new(int32(10)), Offset: 0})
		require.NoError(t, err)
		assert.Equal(t, int32(0), *errs.Count)

		// Error cases.
		_, err = c.UpdateCopyState(&model.UpdateCopyStateRequest{SourceId: id, Body: &model.PutCopyStateReq{
			Copystate: model.GetPutCopyStateReqCopystateEnum().FINISHED, Migrationcycle: model.GetPutCopyStateReqMigrationcycleEnum().CHECKING}})
		sdktest.Err(t, err, http.StatusBadRequest, "SMS.7728")
		_, err = c.DeleteServer(&model.DeleteServerRequest{SourceId: id})
		sdktest.Err(t, err, http.StatusBadRequest, "SMS.7601")
		_, err = c.ShowServer(&model.ShowServerRequest{SourceId: "missing"})
		sdktest.Err(t, err, http.StatusNotFound, "SMS.7602")
		bad := body
		bad.OsType = model.PostSourceServerBodyOsType{}
		_, err = c.RegisterServer(&model.RegisterServerRequest{Body: &bad})
		sdktest.Err(t, err, http.StatusBadRequest, "SMS.6601")
		_, err = c.ListServers(&model.ListServersRequest{Limit: new(int32(500))})
		sdktest.Err(t, err, http.StatusBadRequest, "SMS.9001")

		// Delete: one, then a batch.
		_, err = c.UpdateCopyState(&model.UpdateCopyStateRequest{SourceId: id, Body: &model.PutCopyStateReq{
			Copystate: model.GetPutCopyStateReqCopystateEnum().STOPPED, Migrationcycle: model.GetPutCopyStateReqMigrationcycleEnum().REPLICATING}})
		require.NoError(t, err)
		_, err = c.DeleteServer(&model.DeleteServerRequest{SourceId: id})
		require.NoError(t, err)
		a := register(t, e, e.token, linuxSource("a", "fa:16:3e:00:00:01"))
		b := register(t, e, e.token, linuxSource("b", "fa:16:3e:00:00:02"))
		_, err = c.DeleteServers(&model.DeleteServersRequest{Body: &model.DeleteIds{Ids: []string{a, "missing"}}})
		sdktest.Err(t, err, http.StatusNotFound, "SMS.7602")
		_, err = c.DeleteServers(&model.DeleteServersRequest{Body: &model.DeleteIds{Ids: []string{a, b}}})
		require.NoError(t, err)
		list, err = c.ListServers(&model.ListServersRequest{})
		require.NoError(t, err)
		assert.Equal(t, int32(0), *list.Count)
	})
}
