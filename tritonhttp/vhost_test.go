package tritonhttp

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadVirtualHosts(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"docroot_dirs/website1", "docroot_dirs/website2"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "notdir"), "x")
	good := "virtual_hosts:\n  - hostName: website1\n    docRoot: docroot_dirs/website1\n  - hostName: Website2\n    docRoot: docroot_dirs/website2\ndefault_host: website1\n"
	path := filepath.Join(dir, "virtual_hosts.yaml")
	writeFile(t, path, good)
	vh, err := LoadVirtualHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(vh.Hosts) != 2 || vh.Hosts[0].Root != filepath.Join(dir, "docroot_dirs/website1") || vh.Default != "website1" {
		t.Errorf("loaded %+v", vh)
	}

	bad := map[string]string{
		"bad YAML":          "virtual_hosts: [\n",
		"unknown field":     "virtual_hosts:\n  - hostName: a\n    docroot: docroot_dirs/website1\n",
		"no hosts":          "virtual_hosts: []\n",
		"no name":           "virtual_hosts:\n  - docRoot: docroot_dirs/website1\n",
		"no docRoot":        "virtual_hosts:\n  - hostName: a\n",
		"missing docRoot":   "virtual_hosts:\n  - hostName: a\n    docRoot: nowhere\n",
		"docRoot not a dir": "virtual_hosts:\n  - hostName: a\n    docRoot: notdir\n",
		"duplicate host":    "virtual_hosts:\n  - hostName: a\n    docRoot: docroot_dirs/website1\n  - hostName: A\n    docRoot: docroot_dirs/website2\n",
		"unknown default":   "virtual_hosts:\n  - hostName: a\n    docRoot: docroot_dirs/website1\ndefault_host: b\n",
	}
	for name, content := range bad {
		writeFile(t, path, content)
		_, err := LoadVirtualHosts(path)
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%s: error %v, want ErrConfig", name, err)
		} else if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
	if _, err := LoadVirtualHosts(filepath.Join(dir, "absent.yaml")); !errors.Is(err, ErrConfig) {
		t.Errorf("absent file: %v", err)
	}
}

func TestBuildVirtualHosts(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "site")
	os.Mkdir(site, 0o755)
	path := filepath.Join(dir, "v.yaml")
	writeFile(t, path, "virtual_hosts:\n  - hostName: a\n    docRoot: site\n")
	if vh, err := BuildVirtualHosts("", site, ""); err != nil || len(vh.Hosts) != 1 || vh.Hosts[0].Name != CatchAll {
		t.Errorf("docroot alone: %+v, %v", vh, err)
	}
	if vh, err := BuildVirtualHosts(path, site, ""); err != nil || len(vh.Hosts) != 2 {
		t.Errorf("file and docroot: %+v, %v", vh, err)
	}
	if vh, err := BuildVirtualHosts(path, "", "a"); err != nil || vh.Default != "a" {
		t.Errorf("file and default: %+v, %v", vh, err)
	}
	for name, args := range map[string][3]string{
		"docroot and default": {path, site, "a"},
		"missing docroot":     {"", filepath.Join(dir, "nope"), ""},
		"nothing":             {"", "", ""},
		"unknown default":     {path, "", "zzz"},
	} {
		if _, err := BuildVirtualHosts(args[0], args[1], args[2]); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}

func TestRouterChoosesByHost(t *testing.T) {
	r1, r2 := testRoot(t, map[string]string{"w.txt": "one"}), testRoot(t, map[string]string{"w.txt": "two"})
	for _, tt := range []struct {
		vh    VirtualHosts
		hosts map[string]string // Host → body ("" for 404)
	}{
		{VirtualHosts{Hosts: []Host{{Name: "website1", Root: r1}, {Name: "WebSite2.", Root: r2}}},
			map[string]string{"website1": "one", "WEBSITE1:8080": "one", "website2": "two", "website2.:80": "two", "other": ""}},
		{VirtualHosts{Hosts: []Host{{Name: "website1", Root: r1}, {Name: "website2", Root: r2}}, Default: "website2"},
			map[string]string{"website1": "one", "other": "two", "": "two"}},
	} {
		s, err := NewServer(Config{Hosts: tt.vh})
		if err != nil {
			t.Fatal(err)
		}
		for host, want := range tt.hosts {
			cli, _ := pipeConn(t, s)
			send(cli, "GET /w.txt HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n")
			resp, body := readResponse(t, newReader(cli), "GET")
			if want == "" && resp.StatusCode != 404 || want != "" && body != want {
				t.Errorf("Host %q: %d %q, want %q", host, resp.StatusCode, body, want)
			}
		}
	}
}
