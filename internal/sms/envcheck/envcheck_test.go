package envcheck

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/smsflow/smsflow/internal/store"
)

func TestRun(t *testing.T) {
	good := Facts{OSType: "LINUX", LinuxBlockCheck: `{"architecture":"x86_64"}`, HasRsync: new(true), HasTc: new(true),
		Disks: []store.SourceDisk{{Name: new("/dev/vda"), DeviceUse: new("BOOT"), PartitionStyle: new("MBR")}}}
	cs := Run(good)
	assert.Len(t, cs, 6)
	assert.False(t, Failed(cs))
	for _, c := range cs {
		assert.Equal(t, OK, c.Result, c.Name)
	}

	cases := []struct {
		name   string
		mutate func(f *Facts)
		check  string
		result string
		code   string
	}{
		{"arm", func(f *Facts) { f.LinuxBlockCheck = `{"architecture":"aarch64"}` }, "architecture", Error, "SMS.0206"},
		{"arch unknown", func(f *Facts) { f.LinuxBlockCheck = "" }, "architecture", Warn, "SMS.0206"},
		{"no boot disk", func(f *Facts) { f.Disks[0].DeviceUse = new("NORMAL") }, "boot_disk", Error, "SMS.6531"},
		{"odd partition", func(f *Facts) { f.Disks[0].PartitionStyle = new("LDM") }, "partition_style", Error, "SMS.6508"},
		{"no rsync", func(f *Facts) { f.HasRsync = new(false) }, "rsync", Warn, "SMS.6517"},
		{"no tc", func(f *Facts) { f.HasTc = nil }, "tc", Warn, ""},
		{"bad os", func(f *Facts) { f.OSType = "BSD" }, "os_type", Error, "SMS.6601"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := good
			f.Disks = []store.SourceDisk{{Name: new("/dev/vda"), DeviceUse: new("BOOT"), PartitionStyle: new("MBR")}}
			tc.mutate(&f)
			cs := Run(f)
			found := false
			for _, c := range cs {
				if c.Name == tc.check {
					found = true
					assert.Equal(t, tc.result, c.Result)
					assert.Equal(t, tc.code, c.ErrorCode)
					assert.NotEmpty(t, c.ErrorOrWarn)
				}
			}
			assert.True(t, found)
			assert.Equal(t, tc.result == Error, Failed(cs))
		})
	}
	win := Run(Facts{OSType: "WINDOWS", Disks: good.Disks})
	assert.Len(t, win, 4, "no rsync/tc checks on Windows")
}
