// Package kvpb holds the generated protobuf and gRPC code of the flotilla KV
// API (kv.proto). Edit kv.proto and run `go generate ./proto/...`; never
// edit the generated files.
package kvpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative kv.proto
