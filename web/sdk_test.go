package web_test

import (
	"net/http"
	"testing"

	sms "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/sms/v3"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/sms/v3/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/internal/testkit/sdktest"
)

// sdkClient is the official SDK pointed at the test server.
func sdkClient(t *testing.T, e *env, ak, sk, projectID string) *sms.SmsClient {
	return sdktest.Client(t, e.srv.Listener.Addr().String(), ak, sk, projectID, "smsflow-sdk-test")
}

func TestSDKMigProjects(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		c := sdkClient(t, e, e.creds.AK, e.creds.SK, e.creds.ProjectID)

		created, err := c.CreateMigproject(&model.CreateMigprojectRequest{Body: &model.PostMigProjectBody{
			Name: "N121", Description: new(""), Region: "region", StartTargetServer: new(true), SpeedLimit: new(int32(0)),
			UsePublicIp: new(true), ExistServer: new(true), Isdefault: new(true),
			Type: model.GetPostMigProjectBodyTypeEnum().MIGRATE_BLOCK, Syncing: new(false), EnterpriseProject: new("default"),
		}})
		require.NoError(t, err)
		require.NotNil(t, created.Id)
		first := *created.Id

		second, err := c.CreateMigproject(&model.CreateMigprojectRequest{Body: &model.PostMigProjectBody{
			Name: "second", Region: "region", Type: model.GetPostMigProjectBodyTypeEnum().MIGRATE_FILE, SpeedLimit: new(int32(100)),
		}})
		require.NoError(t, err)

		shown, err := c.ShowMigproject(&model.ShowMigprojectRequest{MigProjectId: *second.Id})
		require.NoError(t, err)
		assert.Equal(t, "second", *shown.Name)
		assert.Equal(t, "MIGRATE_FILE", shown.Type.Value())
		assert.Equal(t, int32(100), *shown.SpeedLimit)
		assert.False(t, *shown.Isdefault)

		list, err := c.ListMigprojects(&model.ListMigprojectsRequest{Limit: new(int32(1)), Offset: new(int32(0))})
		require.NoError(t, err)
		assert.Equal(t, int32(2), *list.Count)
		require.Len(t, *list.Migprojects, 1)
		assert.Equal(t, first, *(*list.Migprojects)[0].Id)
		assert.True(t, *(*list.Migprojects)[0].Isdefault)

		_, err = c.UpdateMigproject(&model.UpdateMigprojectRequest{MigProjectId: *second.Id, Body: &model.MigProject{
			Name: new("225"), Description: new("hello"), SpeedLimit: new(int32(5)),
		}})
		require.NoError(t, err)
		shown, err = c.ShowMigproject(&model.ShowMigprojectRequest{MigProjectId: *second.Id})
		require.NoError(t, err)
		assert.Equal(t, "225", *shown.Name)
		assert.Equal(t, "hello", *shown.Description)

		_, err = c.UpdateDefaultMigproject(&model.UpdateDefaultMigprojectRequest{MigProjectId: *second.Id})
		require.NoError(t, err)
		_, err = c.DeleteMigproject(&model.DeleteMigprojectRequest{MigProjectId: first})
		require.NoError(t, err)

		// Error cases come back as ServiceResponseError with our codes.
		_, err = c.DeleteMigproject(&model.DeleteMigprojectRequest{MigProjectId: *second.Id})
		sdktest.Err(t, err, http.StatusBadRequest, "SMS.7303")
		_, err = c.ShowMigproject(&model.ShowMigprojectRequest{MigProjectId: first})
		sdktest.Err(t, err, http.StatusNotFound, "SMS.7301")
		_, err = c.CreateMigproject(&model.CreateMigprojectRequest{Body: &model.PostMigProjectBody{
			Name: "225", Region: "r", Type: model.GetPostMigProjectBodyTypeEnum().MIGRATE_BLOCK}})
		sdktest.Err(t, err, http.StatusBadRequest, "SMS.7312")
		_, err = c.CreateMigproject(&model.CreateMigprojectRequest{Body: &model.PostMigProjectBody{
			Name: "x", Region: "r", Type: model.GetPostMigProjectBodyTypeEnum().MIGRATE_BLOCK}})
		sdktest.Err(t, err, http.StatusBadRequest, "SMS.9001")
		_, err = c.ListMigprojects(&model.ListMigprojectsRequest{Limit: new(int32(500))})
		sdktest.Err(t, err, http.StatusBadRequest, "SMS.9001")

		// Wrong SK and a project outside the domain.
		bad := sdkClient(t, e, e.creds.AK, "wrong-secret-key-0000000000000000000000", e.creds.ProjectID)
		_, err = bad.ListMigprojects(&model.ListMigprojectsRequest{})
		sdktest.Err(t, err, http.StatusUnauthorized, "SMS.0202")
		foreign := sdkClient(t, e, e.creds.AK, e.creds.SK, "0123456789abcdef0123456789abcdef")
		_, err = foreign.ListMigprojects(&model.ListMigprojectsRequest{})
		sdktest.Err(t, err, http.StatusForbidden, "SMS.9003")
	})
}

func TestSDKTemplates(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		c := sdkClient(t, e, e.creds.AK, e.creds.SK, e.creds.ProjectID)
		tpl := &model.TemplateRequest{
			Name: "xxxx", IsTemplate: new(true), Region: new("region"), Projectid: new(e.creds.ProjectID),
			TargetServerName: new("ggg-win16-t"), AvailabilityZone: new("az1"), TargetPassword: new("S3cret-Pa55"),
			Flavor: new("c3.medium.2"), Volumetype: new("SATA"),
			Vpc:            &model.VpcObject{Id: new("vpc-1"), Name: new("Migrate-SSd-1"), Cidr: new("192.168.0.0/16")},
			Nics:           &[]model.Nics{{Id: "subnet-1", Name: "Migrate-SSd-35", Cidr: "192.168.0.0/16", Ip: new("")}},
			SecurityGroups: &[]model.SgObject{{Id: "sg-1", Name: "Migrate-dddd"}},
			Disk:           &[]model.TemplateDisk{{Id: new(int64(0)), Index: 0, Name: "Disk 0", Disktype: "SATA", Size: 40, DeviceUse: new("BOOT")}},
			Publicip:       &model.PublicIp{Type: "5_g-vm", BandwidthSize: 10, BandwidthShareType: new("PER")},
		}
		created, err := c.CreateTemplate(&model.CreateTemplateRequest{Body: &model.CreateTemplateReq{Template: tpl}})
		require.NoError(t, err)
		id := *created.Id

		shown, err := c.ShowTemplate(&model.ShowTemplateRequest{Id: id})
		require.NoError(t, err)
		got := shown.Template
		assert.Equal(t, "xxxx", got.Name)
		assert.Equal(t, "true", *got.IsTemplate)
		assert.Equal(t, "SATA", got.Volumetype.Value())
		assert.Equal(t, "vpc-1", *got.Vpc.Id)
		assert.Equal(t, "subnet-1", got.Nics[0].Id)
		assert.Equal(t, "sg-1", got.SecurityGroups[0].Id)
		assert.Equal(t, int64(40), got.Disk[0].Size)
		assert.Equal(t, int32(10), got.Publicip.BandwidthSize)
		assert.Empty(t, got.TargetPassword, "never returned by show")

		pw, err := c.ShowTargetPassword(&model.ShowTargetPasswordRequest{Id: id})
		require.NoError(t, err)
		assert.Equal(t, "S3cret-Pa55", *pw.TargetPassword)

		list, err := c.ListTemplates(&model.ListTemplatesRequest{Name: new("xxxx"), AvailabilityZone: new("az1"), Region: new("region"), Limit: new(int32(10)), Offset: new(int32(0))})
		require.NoError(t, err)
		assert.Equal(t, int32(1), *list.Count)
		require.Len(t, *list.Templates, 1)

		_, err = c.UpdateTemplate(&model.UpdateTemplateRequest{Id: id, Body: &model.UpdateTemplateReq{Template: &model.TemplateRequest{
			Name: "renamed", Flavor: new("s6.large.2")}}})
		require.NoError(t, err)
		shown, err = c.ShowTemplate(&model.ShowTemplateRequest{Id: id})
		require.NoError(t, err)
		assert.Equal(t, "renamed", shown.Template.Name)
		assert.Equal(t, "s6.large.2", shown.Template.Flavor)

		second, err := c.CreateTemplate(&model.CreateTemplateRequest{Body: &model.CreateTemplateReq{Template: &model.TemplateRequest{
			Name: "second", IsTemplate: new(false), Region: new("region"), Projectid: new("p")}}})
		require.NoError(t, err)
		third, err := c.CreateTemplate(&model.CreateTemplateRequest{Body: &model.CreateTemplateReq{Template: &model.TemplateRequest{
			Name: "third", IsTemplate: new(false), Region: new("region"), Projectid: new("p")}}})
		require.NoError(t, err)

		// Errors.
		_, err = c.CreateTemplate(&model.CreateTemplateRequest{Body: &model.CreateTemplateReq{Template: &model.TemplateRequest{
			Name: "second", IsTemplate: new(false), Region: new("region"), Projectid: new("p")}}})
		sdktest.Err(t, err, http.StatusBadRequest, "SMS.7112")
		_, err = c.CreateTemplate(&model.CreateTemplateRequest{Body: &model.CreateTemplateReq{Template: &model.TemplateRequest{
			Name: "bad", IsTemplate: new(false), Region: new("region"), Projectid: new("p"), Volumetype: new("NVME")}}})
		sdktest.Err(t, err, http.StatusBadRequest, "SMS.9001")
		_, err = c.DeleteTemplates(&model.DeleteTemplatesRequest{Body: &model.DeletetemplatesReq{Ids: []string{*second.Id, "missing"}}})
		sdktest.Err(t, err, http.StatusNotFound, "SMS.7101")

		_, err = c.DeleteTemplates(&model.DeleteTemplatesRequest{Body: &model.DeletetemplatesReq{Ids: []string{*second.Id, *third.Id}}})
		require.NoError(t, err)
		_, err = c.DeleteTemplate(&model.DeleteTemplateRequest{Id: id})
		require.NoError(t, err)
		_, err = c.ShowTemplate(&model.ShowTemplateRequest{Id: id})
		sdktest.Err(t, err, http.StatusNotFound, "SMS.7101")
		_, err = c.DeleteTemplate(&model.DeleteTemplateRequest{Id: id})
		sdktest.Err(t, err, http.StatusNotFound, "SMS.7101")
		_, err = c.ShowTargetPassword(&model.ShowTargetPasswordRequest{Id: id})
		sdktest.Err(t, err, http.StatusNotFound, "SMS.7101")
		list, err = c.ListTemplates(&model.ListTemplatesRequest{})
		require.NoError(t, err)
		assert.Equal(t, int32(0), *list.Count)
	})
}
