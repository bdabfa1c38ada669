package admin

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/transport"
)

// TestFaultsEndpoint drives /debug/faults: absent without Config.Faults;
// with it, POST replaces the cut, GET shows it, DELETE heals, and a bad
// body is refused.
func TestFaultsEndpoint(t *testing.T) {
	n := leader(t)
	if resp, _ := do(t, "GET", server(t, Config{Node: n}).URL+"/debug/faults"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /debug/faults without fault injection: %s, want 404", resp.Status)
	}
	f := transport.NewFaults()
	url := server(t, Config{Node: n, Faults: f}).URL + "/debug/faults"
	post := func(body string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	if resp, body := post(`{"drop_to":[2,3],"drop_from":[3]}`); resp.StatusCode != 200 || !strings.Contains(body, `"drop_to":[2,3],"drop_from":[3]`) {
		t.Fatalf("POST: %s %s", resp.Status, body)
	}
	if st := f.State(); len(st.DropTo) != 2 || len(st.DropFrom) != 1 {
		t.Fatalf("after POST the filter is %+v", st)
	}
	if resp, body := do(t, "GET", url); resp.StatusCode != 200 || !strings.Contains(body, `"drop_from":[3]`) {
		t.Fatalf("GET: %s %s", resp.Status, body)
	}
	if resp, body := post(`{"drop_too":[2]}`); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("POST with an unknown field: %s %s, want 400", resp.Status, body)
	}
	if resp, body := post(`{"fsync_delay_ms":120}`); resp.StatusCode != 200 || !strings.Contains(body, `"fsync_delay_ms":120`) || n.SyncDelay() != 120*time.Millisecond {
		t.Fatalf("POST fsync_delay_ms: %s %s; node delay %v", resp.Status, body, n.SyncDelay())
	}
	if resp, body := post(`{"fsync_delay_ms":20000}`); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("POST an fsync delay over 10 s: %s %s, want 400", resp.Status, body)
	}
	if resp, body := do(t, "DELETE", url); resp.StatusCode != 200 || !strings.Contains(body, `"drop_to":[],"drop_from":[]`) || n.SyncDelay() != 0 {
		t.Fatalf("DELETE: %s %s; node delay %v", resp.Status, body, n.SyncDelay())
	}
}
