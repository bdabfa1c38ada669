// Package nemesis tests a local flotilla KV cluster of real processes
// under faults, in the manner of Jepsen: it starts N `flotilla kv serve`
// processes on 127.0.0.1, runs concurrent clients that record a history of
// their operations, and meanwhile injects faults from a seeded schedule:
// kill -9 and restart, SIGSTOP/SIGCONT, and network partitions (symmetric
// and one-way) cut by each member's transport fault filter
// (transport.Faults, driven over the admin endpoint's /debug/faults; the
// members run with --fault-injection).
//
// At the end it heals every fault, restarts every member, waits for them
// to converge and checks that
//
//   - the history, closed by a final read of every key, is linearizable
//     (porcupine, with a KV model partitioned by key);
//   - no acknowledged write is lost: every acknowledged append is in its
//     key's final value exactly once, and nothing else is;
//   - every member reaches the same applied index and state hash, and
//     serves the same final value of every key.
//
// Run writes a report directory (summary.txt and timeline.html, the
// porcupine visualization annotated with the faults) and returns a Result
// whose Err is non-nil on any violation. The CLI is `flotilla nemesis`;
// docs/nemesis.md describes the faults, the checks and a measured run.
package nemesis
