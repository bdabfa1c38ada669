package nemesis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/flotilla-dev/flotilla/kv/kvclient"
	"github.com/flotilla-dev/flotilla/proto/kvpb"
)

// final is the healed cluster's state: every member's status at one
// applied index, each member's local (serializable) value of every key,
// and the members that exited on their own during the run.
type final struct {
	statuses []*kvpb.StatusResponse
	local    map[uint64]map[string]Output // member -> key -> value
	crashes  []string
}

// keysOf returns the keys of the events, sorted.
func keysOf(ev []Event) []string {
	seen := map[string]bool{}
	var keys []string
	for _, e := range ev {
		if !seen[e.In.Key] {
			seen[e.In.Key] = true
			keys = append(keys, e.In.Key)
		}
	}
	slices.Sort(keys)
	return keys
}

// finish waits for the healed members to converge, appends a linearizable
// read of every key to the history (so that the linearizability check also
// covers the final state), and reads every member's local copy of every
// key. If the applied index moves meanwhile (a write left in flight by a
// timed-out client commits late), it does it all again.
func finish(ctx context.Context, c *cluster, h *history) (*final, error) {
	keys := keysOf(h.events())
	kvc, err := kvclient.New(kvclient.Config{Endpoints: c.endpoints(), AttemptTimeout: time.Second})
	if err != nil {
		return nil, err
	}
	defer kvc.Close()
	for range 5 {
		sts, err := c.converged(ctx)
		if err != nil {
			return nil, err
		}
		if err := finalReads(ctx, kvc, h, keys); err != nil {
			return nil, err
		}
		fin := &final{statuses: sts, local: map[uint64]map[string]Output{}}
		for _, m := range c.members {
			if fin.local[m.id], err = localReads(ctx, m, keys); err != nil {
				return nil, err
			}
		}
		again, err := c.converged(ctx)
		if err != nil {
			return nil, err
		}
		if again[0].AppliedIndex == sts[0].AppliedIndex {
			fin.crashes = c.crashed()
			return fin, nil
		}
	}
	return nil, errors.New("nemesis: the applied index kept moving after the heal, with no clients running")
}

// finalReads reads every key linearizably, as client 0, into the history.
func finalReads(ctx context.Context, kvc *kvclient.Client, h *history, keys []string) error {
	for _, k := range keys {
		in := Input{Op: OpGet, Key: k}
		err := poll(ctx, 50*time.Millisecond, func() error {
			e := Event{Client: 0, In: in, Call: h.now()}
			out, err := apply(ctx, kvc, in)
			if err != nil {
				return err
			}
			e.Out, e.Return = out, h.now()
			h.add(e)
			return nil
		})
		if err != nil {
			return fmt.Errorf("nemesis: final read of %s: %w", k, err)
		}
	}
	return nil
}

// localReads reads every key from m's own store (a serializable read).
func localReads(ctx context.Context, m *member, keys []string) (map[string]Output, error) {
	one, err := kvclient.New(kvclient.Config{Endpoints: []string{m.client}, AttemptTimeout: time.Second})
	if err != nil {
		return nil, err
	}
	defer one.Close()
	vals := map[string]Output{}
	for _, k := range keys {
		out, err := apply(ctx, one, Input{Op: OpGet, Key: k}, kvclient.Serializable())
		if err != nil {
			return nil, fmt.Errorf("nemesis: local read of %s on member %d: %w", k, m.id, err)
		}
		vals[k] = out
	}
	return vals, nil
}

// Check names.
const (
	CheckLinearizable = "linearizable"
	CheckLostWrites   = "no lost or duplicated writes"
	CheckReplicas     = "replicas agree"
	CheckProgress     = "progress"
	CheckCrashes      = "no member crashed"
)

// check runs every check on the history and the final state. info is
// porcupine's, for the timeline.
func check(ev []Event, fin *final, timeout time.Duration) ([]Check, porcupine.LinearizationInfo) {
	lin, info := checkLinearizable(ev, timeout)
	return []Check{lin, checkLostWrites(ev), checkReplicas(ev, fin), checkProgress(ev), checkCrashes(fin)}, info
}

// checkCrashes fails a run in which a member exited without being killed
// (the heal restarted it, so the other checks would not notice).
func checkCrashes(fin *final) Check {
	if len(fin.crashes) > 0 {
		return Check{Name: CheckCrashes, Detail: summarize(fin.crashes)}
	}
	return Check{Name: CheckCrashes, OK: true, Detail: "no member exited on its own"}
}

func checkLinearizable(ev []Event, timeout time.Duration) (Check, porcupine.LinearizationInfo) {
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(model, operations(ev), timeout)
	took := time.Since(start).Round(time.Millisecond)
	c := Check{Name: CheckLinearizable}
	switch res {
	case porcupine.Ok:
		c.OK, c.Detail = true, fmt.Sprintf("porcupine linearized %d operations in %v", len(ev), took)
	case porcupine.Illegal:
		c.Detail = fmt.Sprintf("porcupine found no linearization of the %d operations (see timeline.html for the longest partial linearization of each key)", len(ev))
	default:
		c.Detail = fmt.Sprintf("inconclusive: porcupine gave up after %v on %d operations", took, len(ev))
	}
	return c, info
}

// finalValues are the values of the final reads (client 0) by key.
func finalValues(ev []Event) map[string]Output {
	vals := map[string]Output{}
	for _, e := range ev {
		if e.Client == 0 && e.In.Op == OpGet {
			vals[e.In.Key] = e.Out
		}
	}
	return vals
}

// checkLostWrites checks every append key's final value: each acknowledged
// append's token is in it, no token twice, and no token that no client
// appended.
func checkLostWrites(ev []Event) Check {
	attempted, acked := map[string]bool{}, map[string][]string{}
	for _, e := range ev {
		if e.In.Op == OpAppend {
			tok := strings.TrimSuffix(e.In.Value, tokenEnd)
			attempted[tok] = true
			if !e.Out.Unknown {
				acked[e.In.Key] = append(acked[e.In.Key], tok)
			}
		}
	}
	vals := finalValues(ev)
	var problems []string
	n := 0
	for _, k := range keysOf(ev) {
		if !isAppendKey(k) {
			continue
		}
		seen := map[string]int{}
		for _, tok := range appendTokens(vals[k].Value) {
			seen[tok]++
			if seen[tok] == 2 {
				problems = append(problems, fmt.Sprintf("%s: %s applied twice", k, tok))
			}
			if !attempted[tok] {
				problems = append(problems, fmt.Sprintf("%s: %s was never appended", k, tok))
			}
		}
		for _, tok := range acked[k] {
			n++
			if seen[tok] == 0 {
				problems = append(problems, fmt.Sprintf("%s: acknowledged append %s is lost", k, tok))
			}
		}
	}
	if len(problems) > 0 {
		return Check{Name: CheckLostWrites, Detail: summarize(problems)}
	}
	return Check{Name: CheckLostWrites, OK: true, Detail: fmt.Sprintf("all %d acknowledged appends are in the final values, once each", n)}
}

// checkReplicas checks that every member has the same state hash and key
// count at the same applied index, and the same local value of every key
// as the final linearizable read.
func checkReplicas(ev []Event, fin *final) Check {
	var problems []string
	first := fin.statuses[0]
	for _, st := range fin.statuses[1:] {
		if st.AppliedIndex != first.AppliedIndex || st.StateHash != first.StateHash || st.Keys != first.Keys {
			problems = append(problems, "state hashes differ: "+describeStatuses(fin.statuses))
			break
		}
	}
	vals := finalValues(ev)
	ids := make([]uint64, 0, len(fin.local))
	for id := range fin.local {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		for _, k := range keysOf(ev) {
			if got, want := fin.local[id][k], vals[k]; got != want {
				problems = append(problems, fmt.Sprintf("member %d has %s = %s, the final read gave %s", id, k, describeOutput(got), describeOutput(want)))
			}
		}
	}
	if len(problems) > 0 {
		return Check{Name: CheckReplicas, Detail: summarize(problems)}
	}
	return Check{Name: CheckReplicas, OK: true, Detail: fmt.Sprintf("%d members at applied index %d, state hash %016x, %d keys; local values match the final reads",
		len(fin.statuses), first.AppliedIndex, first.StateHash, first.Keys)}
}

// checkProgress fails a run in which no write was acknowledged: the other
// checks would pass vacuously.
func checkProgress(ev []Event) Check {
	n := 0
	for _, e := range ev {
		if e.Client != 0 && e.In.Op != OpGet && !e.Out.Unknown {
			n++
		}
	}
	if n == 0 {
		return Check{Name: CheckProgress, Detail: "no write was acknowledged during the run"}
	}
	return Check{Name: CheckProgress, OK: true, Detail: fmt.Sprintf("%d writes acknowledged", n)}
}

// summarize joins problems, at most ten of them.
func summarize(problems []string) string {
	if len(problems) > 10 {
		return strings.Join(problems[:10], "; ") + fmt.Sprintf("; and %d more", len(problems)-10)
	}
	return strings.Join(problems, "; ")
}
