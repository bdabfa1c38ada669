package node

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeAddrs checks that FreeAddrs returns distinct loopback addresses
// that can be bound, below the ephemeral port range where it can be read.
func TestFreeAddrs(t *testing.T) {
	addrs, err := FreeAddrs(20)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := reservablePorts()
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("%s returned twice in %v", a, addrs)
		}
		seen[a] = true
		host, port, err := net.SplitHostPort(a)
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("address %q: %v", a, err)
		}
		if p, _ := strconv.Atoi(port); hi > lo && (p < lo || p >= hi) {
			t.Errorf("port %d outside [%d, %d), below the ephemeral range", p, lo, hi)
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("binding %s: %v", a, err)
		}
		l.Close()
	}
	t.Logf("ports picked from [%d, %d): %v", lo, hi, addrs[:3])
}
