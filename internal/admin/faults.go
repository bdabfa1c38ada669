package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

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
}

// registerFaults adds the fault-injection endpoint, present only on a
// member started with --fault-injection:
//
//	GET    /debug/faults  the current cut and drop counts (transport.FaultState)
//	POST   /debug/faults  {"drop_to":[2],"drop_from":[3]} replaces the cut
//	DELETE /debug/faults  heals: drops nothing any more
func registerFaults(mux *http.ServeMux, f *transport.Faults) {
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
		f.Set(req.DropTo, req.DropFrom)
		writeFaults(w, f)
	})
	mux.HandleFunc("DELETE /debug/faults", func(w http.ResponseWriter, _ *http.Request) {
		f.Heal()
		writeFaults(w, f)
	})
}

func writeFaults(w http.ResponseWriter, f *transport.Faults) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(f.State())
}
