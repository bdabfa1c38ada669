// Package mrpb holds the generated protobuf and gRPC code of flotilla's
// MapReduce protocol (mr.proto): the Coordinator service that workers call,
// and the Worker service that reducers call to fetch intermediate files.
// Edit mr.proto and run `go generate ./proto/...`; never edit the generated
// files.
package mrpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative mr.proto
