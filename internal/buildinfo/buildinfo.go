// Package buildinfo reports the version of the running flotilla binary.
package buildinfo

import "runtime/debug"

// Version is set at link time with -ldflags "-X .../buildinfo.Version=v1.2.3";
// otherwise it is taken from the module's build information.
var Version = ""

// String returns the version, the VCS revision when known, and the Go version.
func String() string {
	v := Version
	info, ok := debug.ReadBuildInfo()
	if v == "" && ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	if v == "" {
		v = "dev"
	}
	goVersion := "unknown"
	if ok {
		goVersion = info.GoVersion
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return v + " " + goVersion
}
