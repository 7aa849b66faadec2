package main

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/internal/agentwire"
)

// Set at build time by the Makefile with -ldflags "-X main.version=...
// -X main.commit=... -X main.date=..." (from git describe, the commit and
// its time). When empty, the Go toolchain's build info is used: the module
// version for `go install …@VERSION`, vcs.revision and vcs.time for a build
// in a git checkout.
var (
	version string
	commit  string
	date    string
)

// versionInfo is what `loop version -o json` prints. Every field is always
// present; a value that is not known is "".
type versionInfo struct {
	// Version is loop's version: a tag, `git describe` output or a Go
	// module (pseudo-)version; "(devel)" when nothing says.
	Version string `json:"version"`
	// Commit is the full commit hash loop was built from.
	Commit string `json:"commit"`
	// Date is that commit's time (RFC 3339, UTC): builds of one commit
	// carry the same date, so they stay reproducible.
	Date      string `json:"date"`
	GoVersion string `json:"goVersion"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	// AgentProtocol is the version of the protocol between loop and its
	// in-container sync agent (internal/agentwire).
	AgentProtocol int `json:"agentProtocol"`
	// AgentArches are the architectures of the embedded sync agents, as
	// OS/ARCH.
	AgentArches []string `json:"agentArches"`
}

// pseudoVersion matches a Go pseudo-version's timestamp and revision
// (v0.0.0-20261203150405-abcdef123456, v1.2.4-0.20261203150405-abcdef123456).
var pseudoVersion = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+-(?:.*\.)?([0-9]{14})-([0-9a-f]{12})(?:\+.*)?$`)

// readVersion fills a versionInfo from the link-time variables and the
// build info (nil when the binary has none).
func readVersion(info *debug.BuildInfo) versionInfo {
	v := versionInfo{
		Version:       version,
		Commit:        commit,
		Date:          date,
		GoVersion:     runtime.Version(),
		OS:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		AgentProtocol: agentwire.Version,
		AgentArches:   []string{},
	}
	for _, a := range daemon.AgentArches() {
		v.AgentArches = append(v.AgentArches, "linux/"+a)
	}
	if info != nil {
		if v.Version == "" && info.Main.Version != "(devel)" {
			v.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && v.Commit == "":
				v.Commit = s.Value
			case s.Key == "vcs.time" && v.Date == "":
				v.Date = s.Value
			}
		}
	}
	if m := pseudoVersion.FindStringSubmatch(v.Version); m != nil {
		if v.Commit == "" {
			v.Commit = m[2]
		}
		if t, err := time.Parse("20060102150405", m[1]); err == nil && v.Date == "" {
			v.Date = t.UTC().Format(time.RFC3339)
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	return v
}

func currentVersion() versionInfo {
	info, _ := debug.ReadBuildInfo()
	return readVersion(info)
}

// text is the human form: the first line alone is what a bug report needs.
func (v versionInfo) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "loop %s\n", v.Version)
	if v.Commit != "" {
		fmt.Fprintf(&b, "  commit:          %s\n", v.Commit)
	}
	if v.Date != "" {
		fmt.Fprintf(&b, "  date:            %s\n", v.Date)
	}
	fmt.Fprintf(&b, "  go:              %s %s/%s\n", v.GoVersion, v.OS, v.Arch)
	fmt.Fprintf(&b, "  agent protocol:  %d\n", v.AgentProtocol)
	arches := strings.Join(v.AgentArches, " ")
	if arches == "" {
		arches = "none embedded"
	}
	fmt.Fprintf(&b, "  agents:          %s\n", arches)
	return b.String()
}

func writeVersion(w io.Writer, v versionInfo, output string) error {
	if output == "json" {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("encode version: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err := io.WriteString(w, v.text())
	return err
}

func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version [--output text|json]",
		Short: "Print loop's version, commit, Go version, platform and sync agent protocol",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usageError{fmt.Errorf("--output must be text or json, got %q", output)}
			}
			return writeVersion(cmd.OutOrStdout(), currentVersion(), output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// setVersionFlag gives root a --version flag printing what `loop version` does.
func setVersionFlag(root *cobra.Command) {
	v := currentVersion()
	root.Version = v.Version
	root.SetVersionTemplate(strings.ReplaceAll(v.text(), "{{", "{{`{{`}}"))
}
