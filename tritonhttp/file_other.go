//go:build !unix

package tritonhttp

const openNonblock = 0
