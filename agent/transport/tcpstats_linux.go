package transport

import (
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// TCPStats are the kernel's counters for the connection's socket
// (TCP_INFO): what a network check derives packet loss from.
type TCPStats struct {
	SegsOut uint64        // segments sent
	Retrans uint64        // segments retransmitted, in total
	RTT     time.Duration // the kernel's smoothed round-trip estimate
}

// TCPStats reads the socket's TCP_INFO.
func (c *Conn) TCPStats() (TCPStats, error) {
	tcp, ok := c.counter.Conn.(*net.TCPConn)
	if !ok {
		return TCPStats{}, errors.New("transport: not a TCP connection")
	}
	sc, err := tcp.SyscallConn()
	if err != nil {
		return TCPStats{}, fmt.Errorf("transport: tcp info: %w", err)
	}
	var info *unix.TCPInfo
	var ierr error
	if err := sc.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return TCPStats{}, fmt.Errorf("transport: tcp info: %w", err)
	}
	if ierr != nil {
		return TCPStats{}, fmt.Errorf("transport: tcp info: %w", ierr)
	}
	return TCPStats{SegsOut: uint64(info.Segs_out), Retrans: uint64(info.Total_retrans),
		RTT: time.Duration(info.Rtt) * time.Microsecond}, nil
}
