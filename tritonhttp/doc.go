// Package tritonhttp is an HTTP/1.1 static file server written on raw TCP.
//
// It parses requests itself (a delimiter-framed header read through a
// bufio.Reader into a reused per-connection arena), runs its own connection
// loop with persistent connections and pipelining, routes by the Host header
// to virtual hosts, and answers GET and HEAD for files under each host's
// document root. It does not use net/http.
//
// A Server is configured with a Config and run with Serve, which returns when
// its context ends after a graceful shutdown:
//
//	hosts, err := tritonhttp.LoadVirtualHosts("virtual_hosts.yaml")
//	srv, err := tritonhttp.NewServer(tritonhttp.Config{Hosts: hosts})
//	ln, err := net.Listen("tcp", "127.0.0.1:8080")
//	err = srv.Serve(ctx, ln)
//
// The protocol choices, each with its RFC 9110/9112 section, and the limits
// with their defaults are described in docs/tritonhttp.md.
package tritonhttp
