// Package wal is flotilla's write-ahead log: the durable storage behind a
// Raft member. It persists exactly what a raft.Ready asks for (entries, hard
// state, snapshots) and gives it back on restart as a raft.PersistedState.
//
// A directory holds numbered segment files of checksummed records and, in
// snap/, one file per snapshot:
//
//	w, err := wal.Open(dir, wal.Options{ClusterID: cid, NodeID: id})
//	st := w.Recovered() // pass as raft.Config.Restore
//	...
//	if rd.Snapshot != nil {
//		err = w.InstallSnapshot(*rd.Snapshot)
//	}
//	err = w.Save(rd.HardState, rd.Entries, rd.MustSync) // one write, at most one fsync
//	...
//	snap, _ := node.Compact(applied, image)
//	err = w.SaveSnapshot(snap) // compacts; deletes covered segments
//
// Every record carries a CRC32C seeded with its position, so damage and
// misplaced records are detected. On Open a torn tail (the partial last
// record a crash leaves at the end of the newest segment) is cut off; any
// other damage is an error naming the file and offset, never skipped. After
// an I/O failure the WAL refuses further work rather than write after a
// hole. The format, recovery rules and crash points are described in
// docs/wal.md.
package wal
