package discover

import (
	"encoding/binary"
	"net"
	"sort"
	"strconv"
	"strings"
)

// route is one IPv4 route of /proc/net/route.
type route struct {
	Iface   string
	Dest    net.IP
	Gateway net.IP
	Mask    net.IPMask
	Flags   uint32
	Metric  int
}

const rtfGateway = 0x2

// parseRoutes reads /proc/net/route. Its addresses are 32-bit numbers in
// hex, in the kernel's memory order (the file is read on the machine that
// wrote it).
func parseRoutes(data string) []route {
	var out []route
	for i, ln := range strings.Split(data, "\n") {
		f := strings.Fields(ln)
		if i == 0 || len(f) < 8 {
			continue
		}
		dst, e1 := hexIP(f[1])
		gw, e2 := hexIP(f[2])
		flags, e3 := strconv.ParseUint(f[3], 16, 32)
		metric, e4 := strconv.Atoi(f[6])
		mask, e5 := hexIP(f[7])
		if e1 != nil || e2 != nil || e3 != nil || e4 != nil || e5 != nil {
			continue
		}
		out = append(out, route{Iface: f[0], Dest: dst, Gateway: gw, Mask: net.IPMask(mask), Flags: uint32(flags), Metric: metric})
	}
	return out
}

func hexIP(s string) (net.IP, error) {
	n, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, uint32(n))
	return net.IPv4(b[0], b[1], b[2], b[3]).To4(), nil
}

func (r route) isDefault() bool {
	ones, _ := r.Mask.Size()
	return r.Dest.Equal(net.IPv4zero) && ones == 0
}

// defaultGateways maps an interface to the gateway of its default route
// with the lowest metric; order lists those interfaces by metric.
func defaultGateways(rs []route) (gw map[string]string, order []string) {
	gw = map[string]string{}
	metric := map[string]int{}
	for _, r := range rs {
		if !r.isDefault() || r.Flags&rtfGateway == 0 {
			continue
		}
		if m, ok := metric[r.Iface]; !ok || r.Metric < m {
			if !ok {
				order = append(order, r.Iface)
			}
			metric[r.Iface], gw[r.Iface] = r.Metric, r.Gateway.String()
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return metric[order[i]] < metric[order[j]] })
	return gw, order
}

// parseFibTrieLocal lists the machine's own IPv4 addresses from
// /proc/net/fib_trie: the "|-- a.b.c.d" entries followed by "/32 host
// LOCAL". Loopback addresses are left out.
func parseFibTrieLocal(data string) []net.IP {
	var out []net.IP
	seen := map[string]bool{}
	var last net.IP
	for _, ln := range strings.Split(data, "\n") {
		t := strings.TrimSpace(ln)
		if rest, ok := strings.CutPrefix(t, "|-- "); ok {
			last = net.ParseIP(strings.TrimSpace(rest)).To4()
			continue
		}
		if last != nil && strings.HasPrefix(t, "/32 host LOCAL") {
			if !last.IsLoopback() && !seen[last.String()] {
				seen[last.String()] = true
				out = append(out, last)
			}
		}
	}
	return out
}

// addrOf is an interface's IPv4 address with its netmask and first global
// IPv6 address.
type addrOf struct {
	IP, Netmask, IPv6 string
}

// liveAddrs asks the kernel for every interface's addresses.
func liveAddrs() map[string]addrOf {
	out := map[string]addrOf{}
	ifs, err := net.Interfaces()
	if err != nil {
		return out
	}
	for _, ifc := range ifs {
		as, err := ifc.Addrs()
		if err != nil {
			continue
		}
		var a addrOf
		for _, x := range as {
			n, ok := x.(*net.IPNet)
			if !ok {
				continue
			}
			if ip4 := n.IP.To4(); ip4 != nil {
				if a.IP == "" && len(n.Mask) >= 4 {
					a.IP, a.Netmask = ip4.String(), net.IP(n.Mask[len(n.Mask)-4:]).String()
				}
			} else if a.IPv6 == "" && n.IP.IsGlobalUnicast() {
				a.IPv6 = n.IP.String()
			}
		}
		out[ifc.Name] = a
	}
	return out
}

// fileAddrs finds the interfaces' IPv4 addresses from files alone (a
// fixture tree): each local address of fib_trie on the interface whose
// link route (no gateway) contains it, with that route's mask.
func fileAddrs(e *env, rs []route) map[string]addrOf {
	out := map[string]addrOf{}
	for _, ip := range parseFibTrieLocal(e.read("/proc/net/fib_trie")) {
		best := -1
		var ifc string
		var mask net.IPMask
		for _, r := range rs {
			ones, _ := r.Mask.Size()
			if r.Flags&rtfGateway != 0 || r.isDefault() || !ip.Mask(r.Mask).Equal(r.Dest) || ones <= best {
				continue
			}
			best, ifc, mask = ones, r.Iface, r.Mask
		}
		if ifc == "" {
			continue
		}
		if _, ok := out[ifc]; !ok {
			out[ifc] = addrOf{IP: ip.String(), Netmask: net.IP(mask).String()}
		}
	}
	return out
}

// networks lists the interfaces of /sys/class/net but lo, with MAC and MTU
// from sysfs, addresses from the kernel (live) or fib_trie, gateways from
// /proc/net/route. primary is the interface of the best default route.
func networks(e *env) (nets []Network, primary string) {
	rs := parseRoutes(e.read("/proc/net/route"))
	gws, order := defaultGateways(rs)
	var addrs map[string]addrOf
	if e.live {
		addrs = liveAddrs()
	} else {
		addrs = fileAddrs(e, rs)
	}
	nets = []Network{}
	for _, name := range e.names("/sys/class/net") {
		dir := "/sys/class/net/" + name
		if name == "lo" || !e.isDir(dir) {
			continue
		}
		mtu, _ := e.int64(dir + "/mtu")
		a := addrs[name]
		nets = append(nets, Network{Name: name, IP: a.IP, IPv6: a.IPv6, Netmask: a.Netmask, Gateway: gws[name],
			MTU: int32(min(max(mtu, 0), 1<<31-1)), MAC: strings.ToLower(e.line(dir + "/address"))})
	}
	for _, ifc := range order {
		for _, n := range nets {
			if n.Name == ifc && n.IP != "" {
				return nets, ifc
			}
		}
	}
	for _, n := range nets {
		if n.IP != "" {
			return nets, n.Name
		}
	}
	return nets, ""
}
