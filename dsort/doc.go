// Package dsort sorts 100-byte records (the sort-benchmark format: a 10-byte
// key compared as an unsigned big-endian integer, then 90 bytes of payload)
// on one machine or across many, peer to peer over raw TCP.
//
// Every node of a distributed sort is both a server and a client: it reads
// its own input, sends each record to the node whose key range holds it,
// receives the records of its own range from every peer, and writes them
// sorted. Concatenating the outputs in server order gives one sorted file
// holding exactly the records of all the inputs. Ranges come from the top
// bits of the key (uniform keys) or from a sample of the keys that every
// node sends to all the others (skewed keys). The wire protocol lives in
// package wire and is described in docs/dsort.md.
//
// The same sorter serves the single-process case (SortFile): an in-memory
// radix sort of (key, index) pairs when the data fits in Options.Mem, and
// sorted runs spilled to disk then merged when it does not.
package dsort
