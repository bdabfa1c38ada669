// Package test holds flotilla's end-to-end tests: they build the flotilla
// binary once, start real member processes on 127.0.0.1 with free ports,
// kill -9 and restart them, drive them with the Go client and the CLI, and
// check what survives. The package has no code of its own; run it with
//
//	go test ./test/ -count=1 -v
package test
