package main

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/loop-dev/loop/internal/agentwire"
)

// `loop version -o json` has every field a bug report needs, and the text
// form and --version say the same.
func TestVersionCommand(t *testing.T) {
	out, errOut, code := runLoop(t, ".", "version", "-o", "json")
	if code != 0 {
		t.Fatalf("loop version -o json: exit %d: %s", code, errOut)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(out), &fields); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"version", "commit", "date", "goVersion", "os", "arch", "agentProtocol", "agentArches"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("no %q in %s", k, out)
		}
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if v.Version == "" || v.GoVersion != runtime.Version() || v.OS != runtime.GOOS || v.Arch != runtime.GOARCH {
		t.Errorf("version %q go %q os/arch %s/%s, want a version and %s %s/%s", v.Version, v.GoVersion, v.OS, v.Arch, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	if v.AgentProtocol != agentwire.Version {
		t.Errorf("agentProtocol = %d, want %d", v.AgentProtocol, agentwire.Version)
	}
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(v.AgentArches, want) {
		t.Errorf("agentArches = %v, want %v (the committed agents)", v.AgentArches, want)
	}

	text, _, code := runLoop(t, ".", "version")
	if code != 0 || !strings.HasPrefix(text, "loop "+v.Version+"\n") || !strings.Contains(text, "agents:          linux/amd64 linux/arm64") {
		t.Errorf("loop version (exit %d):\n%s", code, text)
	}
	flag, _, code := runLoop(t, ".", "--version")
	if code != 0 || flag != text {
		t.Errorf("loop --version (exit %d) = %q, want what loop version prints, %q", code, flag, text)
	}
	if _, _, code := runLoop(t, ".", "version", "-o", "yaml"); code != exitUsage {
		t.Errorf("loop version -o yaml: exit %d, want %d", code, exitUsage)
	}
}

func TestReadVersion(t *testing.T) {
	setting := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	const rev = "0123456789abcdef0123456789abcdef01234567"
	cases := []struct {
		name                  string
		ldVersion, ldCommit   string
		ldDate                string
		info                  *debug.BuildInfo
		version, commit, date string
	}{
		{name: "no build info", version: "(devel)"},
		{name: "go build outside git", info: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, version: "(devel)"},
		{
			name:    "go install at a tag",
			info:    &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}},
			version: "v1.2.3",
		},
		{
			name:    "go install at a commit",
			info:    &debug.BuildInfo{Main: debug.Module{Version: "v1.2.4-0.20261203150405-0123456789ab"}},
			version: "v1.2.4-0.20261203150405-0123456789ab", commit: "0123456789ab", date: "2026-12-03T15:04:05Z",
		},
		{
			name: "go build in a git checkout",
			info: &debug.BuildInfo{
				Main:     debug.Module{Version: "v0.0.0-20261203150405-0123456789ab+dirty"},
				Settings: setting("vcs", "git", "vcs.revision", rev, "vcs.time", "2026-12-03T15:04:05Z", "vcs.modified", "true"),
			},
			version: "v0.0.0-20261203150405-0123456789ab+dirty", commit: rev, date: "2026-12-03T15:04:05Z",
		},
		{
			name:      "make build (-ldflags -X)",
			ldVersion: "v0.3.0-2-g0123456-dirty", ldCommit: rev, ldDate: "2026-12-01T10:00:00Z",
			info:    &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			version: "v0.3.0-2-g0123456-dirty", commit: rev, date: "2026-12-01T10:00:00Z",
		},
	}
	defer func(v, c, d string) { version, commit, date = v, c, d }(version, commit, date)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			version, commit, date = tc.ldVersion, tc.ldCommit, tc.ldDate
			v := readVersion(tc.info)
			if v.Version != tc.version || v.Commit != tc.commit || v.Date != tc.date {
				t.Errorf("version, commit, date = %q, %q, %q; want %q, %q, %q", v.Version, v.Commit, v.Date, tc.version, tc.commit, tc.date)
			}
		})
	}
}
