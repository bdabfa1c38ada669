// Package mapreduce runs MapReduce jobs (Dean and Ghemawat, OSDI 2004) on a
// coordinator and a pool of workers that talk gRPC (proto/mrpb) and may
// crash or straggle.
//
// A Coordinator splits the input files by size at line boundaries into map
// tasks, hands tasks to workers, and writes the R reduce partitions to the
// output directory atomically. A worker (RunWorker) runs one task at a
// time: a map task reads its split from the coordinator, partitions the
// pairs it emits by a hash of the key, sorts and optionally combines each
// partition and keeps the R files on its local disk, served to reducers
// over its own gRPC server; a reduce task fetches its partition from every
// map task's worker, merges them by key and streams the reduce output to
// the coordinator.
//
// Fault tolerance follows the paper's §3.3: a worker that stops sending
// heartbeats is declared dead after Config.WorkerTimeout, its in-progress
// tasks are made idle and re-run elsewhere, and so are its completed map
// tasks while reduces still need their output; a reducer that cannot fetch
// a map output reports it and the coordinator re-runs that map task. Near
// the end of a phase (§3.6), an attempt running much longer than its peers
// gets a backup attempt on another worker and the first to finish wins.
// Every attempt has an ID, so reports of attempts that lost or were given
// up on are ignored, and every request carries the job ID, so workers of
// another job are refused.
//
// Apps are built in (wc, grep, index; see Builtin) or external commands
// (exec), which read records on stdin and write tab-separated key/value
// lines on stdout in the manner of Hadoop Streaming. See docs/mapreduce.md.
package mapreduce
