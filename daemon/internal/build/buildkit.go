package build

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	controlapi "github.com/moby/buildkit/api/services/control"
)

// Builds use the engine's classic builder unless the Dockerfile needs
// BuildKit (RUN --mount, COPY --chmod/--link, heredocs, a # syntax=
// directive), as Tilt and Compose would build it with BuildKit; the classic
// builder refuses those. $DOCKER_BUILDKIT=1 asks for BuildKit always and
// DOCKER_BUILDKIT=0 never, as for the docker CLI; docker_build(ssh=,
// secret=) need it (session.go). The context goes to the engine as a tar
// either way.

var buildKitSyntax = []*regexp.Regexp{
	regexp.MustCompile(`(?im)^\s*#\s*syntax\s*=`),
	regexp.MustCompile(`(?im)^\s*RUN\s+(--[a-z-]+(=\S+)?\s+)*--(mount|network|security)[=\s]`),
	regexp.MustCompile(`(?im)^\s*(COPY|ADD)\s+(--[a-z-]+(=\S+)?\s+)*--(chmod|link|exclude|parents|checksum|keep-git-dir)[=\s]`),
	regexp.MustCompile(`(?im)^\s*(RUN|COPY)\s.*<<-?["']?[A-Za-z_]\w*["']?\s*$`),
}

// useBuildKit says whether df is built with BuildKit.
func useBuildKit(df []byte) bool {
	switch os.Getenv("DOCKER_BUILDKIT") {
	case "1", "true":
		return true
	case "0", "false":
		return false
	}
	for _, re := range buildKitSyntax {
		if re.Match(df) {
			return true
		}
	}
	return false
}

var syntaxLine = regexp.MustCompile(`(?im)^[ \t]*#[ \t]*syntax[ \t]*=[ \t]*(\S+)[ \t]*\r?\n?`)

// syntaxDirective is df's `# syntax=` frontend image and df without that
// line. Only the parser directives at the top count.
func syntaxDirective(df []byte) (ref string, without string, ok bool) {
	s := string(df)
	for _, line := range strings.SplitAfter(s, "\n") {
		t := strings.TrimSpace(line)
		if t == "" {
			continue
		}
		if !strings.HasPrefix(t, "#") {
			return "", s, false // directives end at the first instruction
		}
		if m := syntaxLine.FindStringSubmatch(line); m != nil {
			return m[1], strings.Replace(s, line, "", 1), true
		}
	}
	return "", s, false
}

// traceWriter renders BuildKit's progress (the engine's moby.buildkit.trace
// messages: a control.StatusResponse each) as plain lines, as
// `docker build --progress=plain` does: "#N name", its output "#N line",
// "#N DONE 0.3s" / "#N CACHED" / "#N ERROR: ...".
type traceWriter struct {
	w        io.Writer
	ids      map[string]int
	started  map[string]bool
	done     map[string]bool
	names    map[string]string
	failed   string // the name of the step that failed
	partials map[string]string
}

func newTraceWriter(w io.Writer) *traceWriter {
	return &traceWriter{w: w, ids: map[string]int{}, started: map[string]bool{}, done: map[string]bool{},
		names: map[string]string{}, partials: map[string]string{}}
}

// aux handles one trace message's aux value (a JSON string of base64).
func (t *traceWriter) aux(raw json.RawMessage) error {
	var b []byte
	if err := json.Unmarshal(raw, &b); err != nil {
		return fmt.Errorf("buildkit trace: %w", err)
	}
	return t.status(b)
}

func (t *traceWriter) id(digest string) int {
	n, ok := t.ids[digest]
	if !ok {
		n = len(t.ids) + 1
		t.ids[digest] = n
	}
	return n
}

// status renders one StatusResponse.
func (t *traceWriter) status(b []byte) error {
	var resp controlapi.StatusResponse
	if err := resp.UnmarshalVT(b); err != nil {
		return fmt.Errorf("buildkit trace: %w", err)
	}
	for _, v := range resp.Vertexes {
		t.vertex(v)
	}
	for _, l := range resp.Logs {
		t.log(l.Vertex, l.Msg)
	}
	for _, w := range resp.Warnings {
		if len(w.Short) > 0 {
			fmt.Fprintf(t.w, "#%d WARNING: %s\n", t.id(w.Vertex), w.Short)
		}
	}
	return nil
}

func (t *traceWriter) vertex(v *controlapi.Vertex) {
	digest := v.Digest
	if digest == "" {
		return
	}
	n := t.id(digest)
	if v.Name != "" {
		t.names[digest] = v.Name
	}
	if !t.started[digest] && (v.Started != nil || v.Cached) {
		t.started[digest] = true
		fmt.Fprintf(t.w, "#%d %s\n", n, t.names[digest])
	}
	if t.done[digest] {
		return
	}
	switch {
	case v.Error != "":
		t.done[digest] = true
		t.failed = t.names[digest]
		fmt.Fprintf(t.w, "#%d ERROR: %s\n", n, v.Error)
	case v.Cached:
		t.done[digest] = true
		fmt.Fprintf(t.w, "#%d CACHED\n", n)
	case v.Completed != nil:
		t.done[digest] = true
		fmt.Fprintf(t.w, "#%d DONE %.1fs\n", n, v.Completed.AsTime().Sub(v.Started.AsTime()).Seconds())
	}
}

// log writes a step's output; it comes in pieces, and lines are kept whole.
func (t *traceWriter) log(digest string, msg []byte) {
	text := t.partials[digest] + string(msg)
	lines := strings.Split(text, "\n")
	t.partials[digest] = lines[len(lines)-1]
	for _, l := range lines[:len(lines)-1] {
		fmt.Fprintf(t.w, "#%d %s\n", t.id(digest), strings.TrimRight(l, "\r"))
	}
}

// flush writes output lines left without their newline.
func (t *traceWriter) flush() {
	for digest, p := range t.partials {
		if p != "" {
			fmt.Fprintf(t.w, "#%d %s\n", t.id(digest), p)
		}
	}
	clear(t.partials)
}
