package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/flotilla-dev/flotilla/node"
	"github.com/flotilla-dev/flotilla/transport"
)

// maxFaultsBody bounds the JSON body of POST /debug/faults.
const maxFaultsBody = 64 << 10

// faultsRequest is the body of POST /debug/faults: the peers this member
// stops sending to and the peers it stops hearing from. It replaces the
// current cut; an empty body field clears that direction.
type faultsRequest struct {
	DropTo   []uint64 `json:"drop_to"`
	DropFrom []uint64 `json:"drop_from"`
	// FsyncDelayMS delays every WAL fsync of the member (a slow disk);
	// 0 or absent: no delay. At most 10 s.
	FsyncDelayMS int64 `json:"fsync_delay_ms"`
}

// faultsState is what GET /debug/faults answers.
type faultsState struct {
	transport.FaultState
	FsyncDelayMS int64 `json:"fsync_delay_ms"`
}

// registerFaults adds the fault-injection endpoint, present only on a
// member started with --fault-injection:
//
//	GET    /debug/faults  the current cut and drop counts (transport.FaultState)
//	POST   /debug/faults  {"drop_to":[2],"drop_from":[3],"fsync_delay_ms":200}
//	                      replaces the cut and the fsync delay
//	DELETE /debug/faults  heals: drops nothing, delays nothing
func registerFaults(mux *http.ServeMux, f *transport.Faults, n *node.Node) {
	writeFaults := func(w http.ResponseWriter, f *transport.Faults) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(faultsState{f.State(), n.SyncDelay().Milliseconds()})
	}
	mux.HandleFunc("GET /debug/faults", func(w http.ResponseWriter, _ *http.Request) {
		writeFaults(w, f)
	})
	mux.HandleFunc("POST /debug/faults", func(w http.ResponseWriter, r *http.Request) {
		var req faultsRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, maxFaultsBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, fmt.Sprintf("admin: bad faults request: %v (want {\"drop_to\":[ids],\"drop_from\":[ids]})", err), http.StatusBadRequest)
			return
		}
		if req.FsyncDelayMS < 0 || req.FsyncDelayMS > 10_000 {
			http.Error(w, fmt.Sprintf("admin: fsync_delay_ms %d is out of range 0..10000", req.FsyncDelayMS), http.StatusBadRequest)
			return
		}
		f.Set(req.DropTo, req.DropFrom)
		n.SetSyncDelay(time.Duration(req.FsyncDelayMS) * time.Millisecond)
		writeFaults(w, f)
	})
	mux.HandleFunc("DELETE /debug/faults", func(w http.ResponseWriter, _ *http.Request) {
		f.Heal()
		n.SetSyncDelay(0)
		writeFaults(w, f)
	})
}
