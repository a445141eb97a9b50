package discover

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"net"
	"strings"
	"testing"

	"github.com/smsflow/smsflow/internal/testkit/diskimage"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/; the f.Add seeds below are
// the same shapes built in code. Run one with, e.g.,
//
//	go test -run '^$' -fuzz '^FuzzReadPartitionTable$' -fuzztime 30s ./agent/discover/

func FuzzParseOSRelease(f *testing.F) {
	f.Add("NAME=\"CentOS Linux\"\nID=\"centos\"\nVERSION_ID=\"7\"\n")
	f.Add("ID=ubuntu\nVERSION_ID=\"22.04\"\nPRETTY_NAME='x y'\n# c\nX=a\\ b # c\n")
	f.Add(`A="\"\\\$"` + "\nB='\n")
	f.Fuzz(func(t *testing.T, data string) {
		kv := parseOSRelease(data)
		for k, v := range kv {
			if k == "" || !validKey(k) || strings.ContainsAny(k, "=\n") {
				t.Fatalf("bad key %q", k)
			}
			if strings.Contains(v, "\n") {
				t.Fatalf("value of %s spans lines: %q", k, v)
			}
			// A value written back double-quoted reads the same.
			esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v)
			if got := parseOSRelease(k + `="` + esc + `"`)[k]; got != v {
				t.Fatalf("%s: %q re-read as %q", k, v, got)
			}
		}
		info := osInfo{ID: strings.ToLower(kv["ID"]), Version: kv["VERSION_ID"]}
		typ := releaseType(info.ID)
		if typ == "" || strings.ContainsAny(typ, " \n\t") {
			t.Fatalf("release type %q", typ)
		}
		if v := osVersion(typ, info.Version, "x86_64"); !strings.HasSuffix(v, "BIT") && !strings.Contains(v, "BIT_SP") {
			t.Fatalf("os_version %q", v)
		}
	})
}

// FuzzParseSwapsUdev: the swap and udev parsers never panic (the mount
// table's parsers are fuzzed in agent/procfs).
func FuzzParseSwapsUdev(f *testing.F) {
	f.Add("Filename Type Size Used Priority\n/dev/dm-1 partition 4 0 -2\n/swap\\040file file 4 0 -3\n")
	f.Add("S:disk/by-uuid/x\nE:ID_FS_TYPE=ext4\nE:ID_FS_UUID=x=y\nE:broken\n")
	f.Fuzz(func(t *testing.T, data string) {
		for _, dev := range parseSwaps(data) {
			if dev == "" {
				t.Fatalf("an empty swap device from %q", data)
			}
		}
		for k := range parseUdev(data) {
			if strings.Contains(k, "\n") {
				t.Fatalf("key %q spans lines", k)
			}
		}
	})
}

func FuzzParseRoutes(f *testing.F) {
	f.Add("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
		"eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n")
	f.Add("h\nx 0 0 3 0 0 -1 FFFFFFFF\n")
	f.Add("Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.0.5\n        /32 host LOCAL\n     |-- 127.0.0.1\n        /32 host LOCAL\n")
	f.Fuzz(func(t *testing.T, data string) {
		rs := parseRoutes(data)
		if len(rs) > strings.Count(data, "\n")+1 {
			t.Fatalf("%d routes", len(rs))
		}
		for _, r := range rs {
			if len(r.Dest) != 4 || len(r.Gateway) != 4 || len(r.Mask) != 4 || r.Iface == "" {
				t.Fatalf("bad route %+v", r)
			}
		}
		gw, order := defaultGateways(rs)
		if len(gw) != len(order) {
			t.Fatalf("gateways %v, order %v", gw, order)
		}
		for _, ifc := range order {
			if net.ParseIP(gw[ifc]) == nil {
				t.Fatalf("gateway %q of %s", gw[ifc], ifc)
			}
		}
		seen := map[string]bool{}
		for _, ip := range parseFibTrieLocal(data) {
			if len(ip) != 4 || ip.IsLoopback() || seen[ip.String()] {
				t.Fatalf("bad local address %v", ip)
			}
			seen[ip.String()] = true
		}
	})
}

// gptSeed is a small disk with a GPT of four entries.
func gptSeed() []byte {
	d := make([]byte, 64*512)
	copy(d, diskimage.MBR([]diskimage.Part{{Type: 0xee, LBA: 1, Sectors: 63}}))
	ents := make([]byte, 4*128)
	copy(ents, diskimage.GUID(diskimage.LinuxFS))
	copy(ents[16:], diskimage.GUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"))
	binary.LittleEndian.PutUint64(ents[32:], 34)
	binary.LittleEndian.PutUint64(ents[40:], 60)
	h := d[512:]
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint32(h[12:], 92)
	binary.LittleEndian.PutUint64(h[24:], 1)
	binary.LittleEndian.PutUint64(h[72:], 2)
	binary.LittleEndian.PutUint32(h[80:], 4)
	binary.LittleEndian.PutUint32(h[84:], 128)
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(ents))
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	copy(d[1024:], ents)
	return d
}

// smallExtended is an MBR whose extended partition (LBA 4) chains two EBRs.
func smallExtended() []byte {
	d := make([]byte, 16*512)
	copy(d, diskimage.MBR([]diskimage.Part{{Type: 0x83, Status: 0x80, LBA: 1, Sectors: 3}, {Type: 0x0f, LBA: 4, Sectors: 12}}))
	copy(d[4*512:], diskimage.MBR([]diskimage.Part{{Type: 0x83, LBA: 1, Sectors: 2}, {Type: 0x05, LBA: 4, Sectors: 4}}))
	copy(d[8*512:], diskimage.MBR([]diskimage.Part{{Type: 0x82, LBA: 1, Sectors: 3}}))
	return d
}

func FuzzReadPartitionTable(f *testing.F) {
	f.Add(diskimage.MBR([]diskimage.Part{{Type: 0x83, Status: 0x80, LBA: 2048, Sectors: 2097152}, {Type: 0x8e, LBA: 2099200, Sectors: 100}}), int64(0))
	f.Add(smallExtended(), int64(16*512))
	f.Add(gptSeed(), int64(64*512))
	f.Fuzz(func(t *testing.T, data []byte, size int64) {
		if size < 0 {
			size = -size
		}
		for _, ss := range []int{0, 512, 4096} {
			pt, err := readPartitionTable(bytes.NewReader(data), size, ss)
			if err != nil {
				continue
			}
			if pt.Style != "MBR" && pt.Style != "GPT" {
				t.Fatalf("style %q", pt.Style)
			}
			if len(pt.Parts) > maxGPTEntries+4 {
				t.Fatalf("%d partitions", len(pt.Parts))
			}
			seen := map[int]bool{}
			for _, p := range pt.Parts {
				if p.Number < 1 || p.Size <= 0 || p.Start <= 0 || seen[p.Number] {
					t.Fatalf("bad partition %+v", p)
				}
				seen[p.Number] = true
				if size > 0 && p.Start >= size {
					t.Fatalf("partition %+v starts past the disk's end (%d)", p, size)
				}
			}
		}
	})
}

func FuzzProbeFS(f *testing.F) {
	ext := make([]byte, 2048)
	copy(ext[1024:], diskimage.ExtSuperblock(make([]byte, 16), "x"))
	f.Add(ext)
	xfs := make([]byte, 512)
	copy(xfs, "XFSB")
	f.Add(xfs)
	lvm := make([]byte, 1024)
	copy(lvm[512:], diskimage.LVMLabel())
	f.Add(lvm)
	fat := diskimage.MBR(nil)
	copy(fat[82:], "FAT32   ")
	f.Add(fat)
	f.Fuzz(func(t *testing.T, data []byte) {
		fi, ok := probeFS(bytes.NewReader(data))
		if ok != (fi.Type != "") {
			t.Fatalf("ok=%v with %+v", ok, fi)
		}
		if fi.InodeSize < 0 {
			t.Fatalf("inode size %d", fi.InodeSize)
		}
	})
}
