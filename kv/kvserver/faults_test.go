package kvserver

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/node"
)

// TestFaultInjectionEndpoint checks that /debug/faults is served only with
// Config.FaultInjection, and that a cut posted there reaches the transport.
func TestFaultInjectionEndpoint(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		addrs, err := node.FreeAddrs(3)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Start(Config{ID: 1, ClusterID: 7, Members: []Member{{ID: 1, PeerAddr: addrs[0], ClientAddr: addrs[1]}},
			ListenAdmin: addrs[2], DataDir: t.TempDir(), FaultInjection: enabled,
			Node: node.Config{TickInterval: 10 * time.Millisecond, NoSync: true}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		url := fmt.Sprintf("http://%s/debug/faults", s.AdminAddr())
		resp, err := http.Post(url, "application/json", strings.NewReader(`{"drop_to":[2]}`))
		if err != nil {
			s.Stop()
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		s.Stop()
		want := http.StatusNotFound
		if enabled {
			want = http.StatusOK
		}
		if resp.StatusCode != want {
			t.Errorf("FaultInjection %v: POST /debug/faults: %s %s, want %d", enabled, resp.Status, body, want)
		}
		if enabled && !strings.Contains(string(body), `"drop_to":[2]`) {
			t.Errorf("POST /debug/faults answered %s", body)
		}
	}
}
