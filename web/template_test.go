package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The spec's second create example (§4.4.1), with its string disk id.
const specTemplate = `{
 "template": {
 "name": "xxxx",
 "is_template": true,
 "region": "region",
 "target_server_name": "ggg-win16-t",
 "availability_zone": "availability_zone",
 "projectid": "xxxxxxxxxxxxxxxxxxxxxxxx00000001",
 "target_password": "S3cret-Pa55",
 "flavor": "c3.medium.2",
 "vpc": {"id": "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxx0001", "name": "Migrate-SSd-1", "cidr": "192.168.0.0/16"},
 "nics": [{"id": "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxx0001", "name": "Migrate-SSd-35", "cidr": "192.168.0.0/16", "ip": ""}],
 "security_groups": [{"id": "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxx0001", "name": "Migrate-dddd"}],
 "disk": [{"id": "0", "index": 0, "name": "Disk 0", "disktype": "SATA", "size": 40, "device_use": "BOOT"}],
 "volumetype": "SATA",
 "publicip": {"type": "5_g-vm", "bandwidth_size": 10, "bandwidth_share_type": "PER"}
 }
}`

func createTemplate(t *testing.T, e *env, token, name string) string {
	t.Helper()
	r := e.do("POST", "/v3/vm/templates", `{"template":{"name":`+q(name)+`,"is_template":false,"region":"region","projectid":"p","availability_zone":"az1"}}`, token)
	require.Equal(t, http.StatusOK, r.status, r.body)
	return r.json(t)["id"].(string)
}

func TestTemplateLifecycle(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r := e.do("POST", "/v3/vm/templates", specTemplate, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		id := r.json(t)["id"].(string)

		r = e.do("GET", "/v3/vm/templates/"+id, "", e.token)
		require.Equal(t, http.StatusOK, r.status)
		assert.NotContains(t, r.body, "S3cret-Pa55", "show never returns the password")
		assert.NotContains(t, r.body, "target_password")
		var got struct {
			Template map[string]json.RawMessage `json:"template"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.body), &got))
		tpl := got.Template
		assert.JSONEq(t, `"true"`, string(tpl["is_template"]), "is_template is a string in answers")
		assert.JSONEq(t, `{"id":"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxx0001","name":"Migrate-SSd-1","cidr":"192.168.0.0/16"}`, string(tpl["vpc"]))
		assert.JSONEq(t, `[{"id":"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxx0001","name":"Migrate-SSd-35","cidr":"192.168.0.0/16","ip":""}]`, string(tpl["nics"]))
		assert.JSONEq(t, `[{"id":"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxx0001","name":"Migrate-dddd"}]`, string(tpl["security_groups"]))
		assert.JSONEq(t, `[{"id":0,"index":0,"name":"Disk 0","disktype":"SATA","size":40,"device_use":"BOOT"}]`, string(tpl["disk"]), "disk id answered as an integer")
		assert.JSONEq(t, `{"type":"5_g-vm","bandwidth_size":10,"bandwidth_share_type":"PER"}`, string(tpl["publicip"]))
		for k, want := range map[string]string{"name": "xxxx", "region": "region", "flavor": "c3.medium.2", "volumetype": "SATA",
			"target_server_name": "ggg-win16-t", "availability_zone": "availability_zone", "projectid": "xxxxxxxxxxxxxxxxxxxxxxxx00000001"} {
			assert.JSONEq(t, q(want), string(tpl[k]), k)
		}

		// The password is stored encrypted and readable only through its endpoint.
		var enc string
		require.NoError(t, e.store.DB().Raw("SELECT target_password_enc FROM templates WHERE id = ?", id).Scan(&enc).Error)
		assert.NotEmpty(t, enc)
		assert.NotContains(t, enc, "S3cret")
		r = e.do("GET", "/v3/vm/templates/"+id+"/target-password", "", e.token)
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, "S3cret-Pa55", r.json(t)["target_password"])
		assert.Equal(t, id, r.json(t)["template_id"])
		r = e.do("GET", "/v3/vm/templates/"+id+"/target-password", "", e.other)
		assert.Equal(t, http.StatusNotFound, r.status)

		// Update: GET-then-PUT keeps the password; a partial update changes one field.
		r = e.do("PUT", "/v3/vm/templates/"+id, `{"template":{"name":"test1025","is_template":false,"region":"region","projectid":"p2","vpc":{"id":"autoCreate","name":"autoCreate"},"nics":[{"id":"autoCreate","name":"autoCreate","cidr":"192.168.0.0/24"}],"security_groups":[{"id":"autoCreate","name":"autoCreate"}],"publicip":{"type":"5_bgp","bandwidth_size":1},"disk":[{"index":0,"name":"index1","disktype":"type","size":111}]}}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		m := e.do("GET", "/v3/vm/templates/"+id, "", e.token).json(t)["template"].(map[string]any)
		assert.Equal(t, "test1025", m["name"])
		assert.Equal(t, "false", m["is_template"])
		assert.Equal(t, "c3.medium.2", m["flavor"], "absent fields keep their value")
		assert.Equal(t, "autoCreate", m["vpc"].(map[string]any)["id"])
		assert.Equal(t, float64(111), m["disk"].([]any)[0].(map[string]any)["size"])
		assert.Equal(t, "S3cret-Pa55", e.do("GET", "/v3/vm/templates/"+id+"/target-password", "", e.token).json(t)["target_password"])
		r = e.do("PUT", "/v3/vm/templates/"+id, `{"template":{"target_password":"n3w"}}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, "n3w", e.do("GET", "/v3/vm/templates/"+id+"/target-password", "", e.token).json(t)["target_password"])

		// Duplicate names.
		r = e.do("POST", "/v3/vm/templates", `{"template":{"name":"test1025","is_template":true,"region":"r","projectid":"p"}}`, e.token)
		code, _ := r.smsError(t)
		assert.Equal(t, "SMS.7112", code)
		other := createTemplate(t, e, e.token, "other")
		r = e.do("PUT", "/v3/vm/templates/"+other, `{"template":{"name":"test1025"}}`, e.token)
		code, _ = r.smsError(t)
		assert.Equal(t, "SMS.7112", code)

		// Delete one; then it is gone.
		r = e.do("DELETE", "/v3/vm/templates/"+other, "", e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		r = e.do("GET", "/v3/vm/templates/"+other, "", e.token)
		assert.Equal(t, http.StatusNotFound, r.status)
		code, _ = r.smsError(t)
		assert.Equal(t, "SMS.7101", code)
	})
}

func TestTemplateListFilters(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ids := map[string]string{}
		for _, n := range []string{"a", "b", "c"} {
			ids[n] = createTemplate(t, e, e.token, n)
		}
		r := e.do("POST", "/v3/vm/templates", `{"template":{"name":"z","is_template":true,"region":"r2","projectid":"p","availability_zone":"az9"}}`, e.token)
		require.Equal(t, http.StatusOK, r.status)
		cases := []struct {
			query string
			count int
			page  int
		}{
			{"", 4, 4},
			{"name=b", 1, 1},
			{"availability_zone=az1", 3, 3},
			{"region=r2", 1, 1},
			{"region=r2&availability_zone=az1", 0, 0},
			{"limit=2", 4, 2},
			{"limit=2&offset=3", 4, 1},
			{"offset=10", 4, 0},
			{"id=" + ids["c"], 1, 1},
		}
		for _, tc := range cases {
			r := e.do("GET", "/v3/vm/templates?"+tc.query, "", e.token)
			require.Equal(t, http.StatusOK, r.status, tc.query)
			m := r.json(t)
			assert.Equal(t, float64(tc.count), m["count"], tc.query)
			assert.Len(t, m["templates"], tc.page, tc.query)
		}
		r = e.do("GET", "/v3/vm/templates", "", e.other)
		assert.Equal(t, float64(0), r.json(t)["count"], "other tenant sees none")
	})
}

func TestTemplateBatchDelete(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		a, b := createTemplate(t, e, e.token, "a"), createTemplate(t, e, e.token, "b")
		theirs := createTemplate(t, e, e.other, "t")

		// One id the caller cannot see: nothing is deleted.
		r := e.do("POST", "/v3/vm/templates/delete", `{"ids":[`+q(a)+`,`+q(theirs)+`]}`, e.token)
		assert.Equal(t, http.StatusNotFound, r.status)
		code, params := r.smsError(t)
		assert.Equal(t, "SMS.7101", code)
		assert.Equal(t, []string{theirs}, params)
		assert.Equal(t, float64(2), e.do("GET", "/v3/vm/templates", "", e.token).json(t)["count"])
		assert.Equal(t, float64(1), e.do("GET", "/v3/vm/templates", "", e.other).json(t)["count"])

		r = e.do("POST", "/v3/vm/templates/delete", `{"ids":[`+q(a)+`,`+q(b)+`]}`, e.token)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, float64(0), e.do("GET", "/v3/vm/templates", "", e.token).json(t)["count"])

		r = e.do("POST", "/v3/vm/templates/delete", `{"ids":"x"}`, e.token)
		code, _ = r.smsError(t)
		assert.Equal(t, "SMS.9001", code)
		r = e.do("POST", "/v3/vm/templates/delete", `{}`, e.token)
		assert.Equal(t, http.StatusOK, r.status, "no ids, nothing to do")
	})
}

func TestTemplateIsolation(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		id := createTemplate(t, e, e.token, "mine")
		missing := "00000000-0000-0000-0000-000000000000"
		for _, tc := range []struct{ method, path, body string }{
			{"GET", "/v3/vm/templates/%s", ""},
			{"GET", "/v3/vm/templates/%s/target-password", ""},
			{"PUT", "/v3/vm/templates/%s", `{"template":{"name":"stolen"}}`},
			{"DELETE", "/v3/vm/templates/%s", ""},
		} {
			theirs := e.do(tc.method, fmt.Sprintf(tc.path, id), tc.body, e.other)
			none := e.do(tc.method, fmt.Sprintf(tc.path, missing), tc.body, e.other)
			assert.Equal(t, http.StatusNotFound, theirs.status, tc.method+" "+tc.path)
			c1, _ := theirs.smsError(t)
			c2, _ := none.smsError(t)
			assert.Equal(t, c2, c1)
		}
		m := e.do("GET", "/v3/vm/templates/"+id, "", e.token).json(t)["template"].(map[string]any)
		assert.Equal(t, "mine", m["name"])
	})
}

func TestTemplateQuota(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		for i := 0; i < 50; i++ {
			createTemplate(t, e, e.token, fmt.Sprintf("t%02d", i))
		}
		r := e.do("POST", "/v3/vm/templates", `{"template":{"name":"t50","is_template":true,"region":"r","projectid":"p"}}`, e.token)
		assert.Equal(t, http.StatusBadRequest, r.status)
		code, _ := r.smsError(t)
		assert.Equal(t, "SMS.8115", code)
		createTemplate(t, e, e.other, "fine-elsewhere")
	})
}

func TestTemplateBadInput(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		base := `"name":"n","is_template":true,"region":"r","projectid":"p"`
		cases := []struct {
			name, body, code, param string
		}{
			{"no template", `{}`, "SMS.6013", "template"},
			{"missing is_template", `{"template":{"name":"n","region":"r","projectid":"p"}}`, "SMS.6013", "template.is_template"},
			{"missing projectid", `{"template":{"name":"n","is_template":true,"region":"r"}}`, "SMS.6013", "template.projectid"},
			{"volumetype enum", `{"template":{` + base + `,"volumetype":"NVME"}}`, "SMS.9001", "template.volumetype"},
			{"data_volume_type enum", `{"template":{` + base + `,"data_volume_type":"x"}}`, "SMS.9001", "template.data_volume_type"},
			{"bandwidth 0", `{"template":{` + base + `,"publicip":{"type":"5_bgp","bandwidth_size":0}}}`, "SMS.9001", "template.publicip.bandwidth_size"},
			{"bandwidth 2001", `{"template":{` + base + `,"publicip":{"type":"5_bgp","bandwidth_size":2001}}}`, "SMS.9001", "template.publicip.bandwidth_size"},
			{"publicip without type", `{"template":{` + base + `,"publicip":{"bandwidth_size":5}}}`, "SMS.6013", "template.publicip.type"},
			{"vpc empty id", `{"template":{` + base + `,"vpc":{"id":"","name":"v"}}}`, "SMS.9001", "template.vpc.id"},
			{"nic missing cidr", `{"template":{` + base + `,"nics":[{"id":"a","name":"b"}]}}`, "SMS.6013", "template.nics[0].cidr"},
			{"disk negative size", `{"template":{` + base + `,"disk":[{"index":0,"name":"d","disktype":"SAS","size":-1}]}}`, "SMS.9001", "template.disk[0].size"},
			{"disk bad id", `{"template":{` + base + `,"disk":[{"id":"zero","index":0,"name":"d","disktype":"SAS","size":1}]}}`, "SMS.9001", "template.disk.id"},
			{"disk index overflow", `{"template":{` + base + `,"disk":[{"index":3000000000,"name":"d","disktype":"SAS","size":1}]}}`, "SMS.9001", "template.disk.index"},
			{"disk size string", `{"template":{` + base + `,"disk":[{"index":0,"name":"d","disktype":"SAS","size":"40"}]}}`, "SMS.9001", "template.disk.size"},
			{"password too long", `{"template":{` + base + `,"target_password":"` + strings.Repeat("p", 1025) + `"}}`, "SMS.9001", "template.target_password"},
			{"name too long", `{"template":{"name":"` + strings.Repeat("n", 256) + `","is_template":true,"region":"r","projectid":"p"}}`, "SMS.9001", "template.name"},
			{"nics not array", `{"template":{` + base + `,"nics":{}}}`, "SMS.9001", "template.nics"},
			{"is_template string", `{"template":{"name":"n","is_template":"true","region":"r","projectid":"p"}}`, "SMS.9001", "template.is_template"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := e.do("POST", "/v3/vm/templates", tc.body, e.token)
				assert.Equal(t, http.StatusBadRequest, r.status, r.body)
				code, params := r.smsError(t)
				assert.Equal(t, tc.code, code, r.body)
				assert.Contains(t, params, tc.param, r.body)
			})
		}
		assert.Equal(t, float64(0), e.do("GET", "/v3/vm/templates", "", e.token).json(t)["count"], "nothing written")
	})
}
