package web

import (
	"net/http"
	"os"
	"testing"

	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/internal/sms/sourcestate"
	"github.com/smsflow/smsflow/internal/store"
)

// checkDecodeResult: decoding plus validation either succeeds or yields a
// client error (400) with a catalog code — never a panic, never a 500.
func checkDecodeResult(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	e, ok := smserr.As(err)
	if !ok {
		t.Fatalf("not an SMS error: %T %v", err, err)
	}
	if e.Status != http.StatusBadRequest {
		t.Fatalf("status %d for a client mistake: %v", e.Status, e)
	}
	if _, known := smserr.Lookup(e.Code); !known {
		t.Fatalf("code %s not in the catalog", e.Code)
	}
}

func FuzzMigProjectBody(f *testing.F) {
	f.Add([]byte(`{"name":"N121","description":"","region":"region","start_target_server":true,"speed_limit":0,"use_public_ip":true,"exist_server":true,"isdefault":true,"type":"MIGRATE_BLOCK","syncing":false,"enterprise_project":"default"}`))
	f.Add([]byte(`{"name":225,"speed_limit":1e99}`))
	f.Add([]byte(`{"name":"\u0000\ud800"}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var b migProjectBody
		err := decodeJSON(body, &b)
		if err == nil {
			if err = b.validate(creating); err == nil {
				var p store.MigProject
				b.apply(&p) // what validates must apply without a nil dereference
			}
		}
		checkDecodeResult(t, err)
	})
}

func FuzzTemplateBody(f *testing.F) {
	f.Add([]byte(`{"template":{"name":"xxxx","is_template":true,"region":"region","projectid":"p","vpc":{"id":"v","name":"n","cidr":"192.168.0.0/16"},"nics":[{"id":"a","name":"b","cidr":"c","ip":""}],"security_groups":[{"id":"s","name":"n"}],"disk":[{"id":"0","index":0,"name":"Disk 0","disktype":"SATA","size":40,"device_use":"BOOT"}],"volumetype":"SATA","publicip":{"type":"5_bgp","bandwidth_size":10}}}`))
	f.Add([]byte(`{"template":{"disk":[{"id":"-1"},{"id":9223372036854775808}],"nics":[null]}}`))
	f.Add([]byte(`{"template":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var req templateRequest
		err := decodeJSON(body, &req)
		if err == nil && req.Template != nil {
			for _, use := range []purpose{creating, updating} {
				if err := req.Template.validate(use); err != nil {
					checkDecodeResult(t, err)
				} else if use == creating {
					// What validates must apply without a nil dereference.
					var tpl = newEmptyTemplate()
					if err := req.Template.apply(tpl, testBox()); err != nil {
						t.Fatalf("apply: %v", err)
					}
				}
			}
			return
		}
		checkDecodeResult(t, err)
	})
}

func FuzzRegisterBody(f *testing.F) {
	for _, name := range []string{"register-suse.json", "register-windows.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"name":"x","os_type":"LINUX","btrfs_list":[{"size":"1e400GiB","nodesize":"-1","subvolumn":[null]}]}`))
	f.Add([]byte(`{"name":"x","disks":[{"physical_volumes":[{"inode_size":"9999999999"}]}],"volume_groups":[{"logical_volumes":[{}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var b registerBody
		err := decodeJSON(body, &b)
		if err == nil {
			if err = b.validate(); err == nil {
				// What validates converts and derives without a panic.
				src := sourceHandlers{}.facts(&b)
				refreshDerived(src)
				_ = machineKey("", &b)
			}
		}
		checkDecodeResult(t, err)
	})
}

func FuzzChangeStateBody(f *testing.F) {
	f.Add([]byte(`{"copystate":"WAITING","migrationcycle":"checking"}`))
	f.Add([]byte(`{"copystate":"init","migrationcycle":"REPLICATING"}`))
	f.Add([]byte(`{"copystate":null,"migrationcycle":7}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var b struct {
			CopyState      *string `json:"copystate"`
			MigrationCycle *string `json:"migrationcycle"`
		}
		err := decodeJSON(body, &b)
		if err == nil && b.CopyState != nil && b.MigrationCycle != nil {
			st, okS := sourcestate.ParseState(*b.CopyState)
			cyc, okC := sourcestate.ParseCycle(*b.MigrationCycle)
			if okS && okC {
				_ = sourcestate.Check(cyc, st)
			}
			return
		}
		checkDecodeResult(t, err)
	})
}
