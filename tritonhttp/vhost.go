package tritonhttp

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("tritonhttp: bad configuration")

// CatchAll is the host name of a virtual host that serves every Host no
// other virtual host names.
const CatchAll = "*"

// Host is one virtual host.
type Host struct {
	// Name is the host name matched against the request's Host (case
	// insensitive, without the port), or CatchAll.
	Name string `yaml:"hostName"`
	// Root is the document root; relative paths in a YAML file are
	// relative to the file's directory.
	Root string `yaml:"docRoot"`
}

// VirtualHosts is the set of sites a server answers for, in the format of
// the TritonHTTP virtual_hosts.yaml file plus an optional default_host.
type VirtualHosts struct {
	Hosts []Host `yaml:"virtual_hosts"`
	// Default names the host (one of Hosts) that serves a Host no entry
	// names; empty means such requests get 404 (unless a CatchAll host is
	// listed).
	Default string `yaml:"default_host"`
}

// LoadVirtualHosts reads a virtual hosts YAML file strictly (unknown fields
// are errors), makes relative document roots relative to the file's
// directory and validates the result.
func LoadVirtualHosts(path string) (VirtualHosts, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return VirtualHosts{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	var vh VirtualHosts
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&vh); err != nil {
		return VirtualHosts{}, fmt.Errorf("%w: %s: %w", ErrConfig, path, err)
	}
	dir := filepath.Dir(path)
	for i, h := range vh.Hosts {
		if h.Root != "" && !filepath.IsAbs(h.Root) {
			vh.Hosts[i].Root = filepath.Join(dir, h.Root)
		}
	}
	if err := vh.Validate(); err != nil {
		return VirtualHosts{}, fmt.Errorf("%s: %w", path, err)
	}
	return vh, nil
}

// Validate checks that every host has a name and a document root that is an
// existing directory, that no name appears twice, and that Default names a
// listed host.
func (vh VirtualHosts) Validate() error {
	if len(vh.Hosts) == 0 {
		return fmt.Errorf("%w: no virtual hosts (list them under virtual_hosts, or give a document root)", ErrConfig)
	}
	seen := make(map[string]bool)
	for i, h := range vh.Hosts {
		name := normalizeHost(h.Name)
		if name == "" {
			return fmt.Errorf("%w: virtual host %d has no hostName", ErrConfig, i+1)
		}
		if seen[name] {
			return fmt.Errorf("%w: host %q is listed twice", ErrConfig, h.Name)
		}
		seen[name] = true
		if h.Root == "" {
			return fmt.Errorf("%w: host %q has no docRoot", ErrConfig, h.Name)
		}
		fi, err := os.Stat(h.Root)
		if err != nil {
			return fmt.Errorf("%w: host %q: docRoot: %w", ErrConfig, h.Name, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%w: host %q: docRoot %s is not a directory", ErrConfig, h.Name, h.Root)
		}
	}
	if vh.Default != "" {
		if !seen[normalizeHost(vh.Default)] {
			return fmt.Errorf("%w: default_host %q is not one of the virtual hosts", ErrConfig, vh.Default)
		}
		if seen[CatchAll] {
			return fmt.Errorf("%w: both default_host %q and a %q host serve unknown hosts; keep one", ErrConfig, vh.Default, CatchAll)
		}
	}
	return nil
}

// normalizeHost lower-cases a configured host name and drops a trailing dot.
func normalizeHost(name string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
}

// site is a virtual host ready to serve: its root resolved and absolute.
type site struct {
	id   byte   // index in the router, the first byte of cache keys
	name string // normalized
	root string // absolute, symlinks resolved, no trailing separator unless "/"
}

// router chooses the site for a request's host (RFC 9110 §7.2).
type router struct {
	byName map[string]*site
	def    *site // serves unknown hosts; nil means 404
}

func newRouter(vh VirtualHosts) (*router, error) {
	if err := vh.Validate(); err != nil {
		return nil, err
	}
	if len(vh.Hosts) > 255 {
		return nil, fmt.Errorf("%w: %d virtual hosts, at most 255", ErrConfig, len(vh.Hosts))
	}
	rt := &router{byName: make(map[string]*site)}
	for i, h := range vh.Hosts {
		abs, err := filepath.Abs(h.Root)
		if err == nil {
			abs, err = filepath.EvalSymlinks(abs)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: host %q: docRoot: %w", ErrConfig, h.Name, err)
		}
		s := &site{id: byte(i), name: normalizeHost(h.Name), root: abs}
		if s.name == CatchAll {
			rt.def = s
			continue
		}
		rt.byName[s.name] = s
	}
	if vh.Default != "" {
		rt.def = rt.byName[normalizeHost(vh.Default)]
	}
	return rt, nil
}

// lookup returns the site for a normalized host, or nil.
func (rt *router) lookup(host []byte) *site {
	if s, ok := rt.byName[string(host)]; ok {
		return s
	}
	return rt.def
}

// BuildVirtualHosts assembles the hosts of a command line: those of the
// YAML file (if file is not empty), defaultHost (if not empty) replacing
// the file's default_host, and docroot (if not empty) as the CatchAll host.
// A docroot together with a default host is refused as ambiguous.
func BuildVirtualHosts(file, docroot, defaultHost string) (VirtualHosts, error) {
	var vh VirtualHosts
	if file != "" {
		var err error
		if vh, err = LoadVirtualHosts(file); err != nil {
			return VirtualHosts{}, err
		}
	}
	if defaultHost != "" {
		vh.Default = defaultHost
	}
	if docroot != "" {
		if vh.Default != "" {
			return VirtualHosts{}, fmt.Errorf("%w: the document root and default host %q would both serve unknown hosts; keep one", ErrConfig, vh.Default)
		}
		if fi, err := os.Stat(docroot); err != nil || !fi.IsDir() {
			if err == nil {
				err = errors.New("not a directory")
			}
			return VirtualHosts{}, fmt.Errorf("%w: document root %s: %w", ErrConfig, docroot, err)
		}
		vh.Hosts = append(vh.Hosts, Host{Name: CatchAll, Root: docroot})
	}
	if err := vh.Validate(); err != nil {
		return VirtualHosts{}, err
	}
	return vh, nil
}
