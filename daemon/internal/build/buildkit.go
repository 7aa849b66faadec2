package build

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Builds use the engine's classic builder unless the Dockerfile needs
// BuildKit (RUN --mount, COPY --chmod/--link, heredocs, a # syntax=
// directive), as Tilt and Compose would build it with BuildKit; the classic
// builder refuses those. $DOCKER_BUILDKIT=1 asks for BuildKit always and
// DOCKER_BUILDKIT=0 never, as for the docker CLI. The context goes to the
// engine as a tar either way: no BuildKit session is opened, so
// docker_build(ssh=, secret=) stay unsupported.

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

// status decodes a StatusResponse: vertexes = 1, logs = 3, warnings = 4.
func (t *traceWriter) status(b []byte) error {
	return eachField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 1:
			return t.vertex(v)
		case 3:
			return t.log(v)
		case 4:
			return t.warning(v)
		}
		return nil
	})
}

// vertex: digest = 1, name = 3, cached = 4, started = 5, completed = 6, error = 7.
func (t *traceWriter) vertex(b []byte) error {
	var digest, name, errMsg string
	var cached bool
	var started, completed time.Time
	err := eachField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 1:
			digest = string(v)
		case 3:
			name = string(v)
		case 4:
			cached = len(v) > 0 && v[0] != 0
		case 5:
			started = timestamp(v)
		case 6:
			completed = timestamp(v)
		case 7:
			errMsg = string(v)
		}
		return nil
	})
	if err != nil || digest == "" {
		return err
	}
	n := t.id(digest)
	if name != "" {
		t.names[digest] = name
	}
	if !t.started[digest] && (!started.IsZero() || cached) {
		t.started[digest] = true
		fmt.Fprintf(t.w, "#%d %s\n", n, t.names[digest])
	}
	if t.done[digest] {
		return nil
	}
	switch {
	case errMsg != "":
		t.done[digest] = true
		t.failed = t.names[digest]
		fmt.Fprintf(t.w, "#%d ERROR: %s\n", n, errMsg)
	case cached:
		t.done[digest] = true
		fmt.Fprintf(t.w, "#%d CACHED\n", n)
	case !completed.IsZero():
		t.done[digest] = true
		fmt.Fprintf(t.w, "#%d DONE %.1fs\n", n, completed.Sub(started).Seconds())
	}
	return nil
}

// log: vertex = 1, msg = 4. Output comes in pieces; lines are kept whole.
func (t *traceWriter) log(b []byte) error {
	var digest string
	var msg []byte
	err := eachField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 1:
			digest = string(v)
		case 4:
			msg = v
		}
		return nil
	})
	if err != nil {
		return err
	}
	text := t.partials[digest] + string(msg)
	lines := strings.Split(text, "\n")
	t.partials[digest] = lines[len(lines)-1]
	for _, l := range lines[:len(lines)-1] {
		fmt.Fprintf(t.w, "#%d %s\n", t.id(digest), strings.TrimRight(l, "\r"))
	}
	return nil
}

// warning: vertex = 1, short = 3.
func (t *traceWriter) warning(b []byte) error {
	var digest, short string
	err := eachField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 1:
			digest = string(v)
		case 3:
			short = string(v)
		}
		return nil
	})
	if err == nil && short != "" {
		fmt.Fprintf(t.w, "#%d WARNING: %s\n", t.id(digest), short)
	}
	return err
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

// eachField calls fn with each field of message b; varints come as one
// byte (enough for the bools read here), length-delimited fields as their bytes.
func eachField(b []byte, fn func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("buildkit trace: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			var x uint64
			x, n = protowire.ConsumeVarint(b)
			if x != 0 {
				v = []byte{1}
			} else {
				v = []byte{0}
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("buildkit trace: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if v != nil {
			if err := fn(num, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// timestamp decodes a google.protobuf.Timestamp (seconds = 1, nanos = 2).
func timestamp(b []byte) time.Time {
	var sec, nsec int64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return time.Time{}
		}
		b = b[n:]
		if typ != protowire.VarintType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return time.Time{}
			}
			b = b[n:]
			continue
		}
		x, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return time.Time{}
		}
		b = b[n:]
		switch num {
		case 1:
			sec = int64(x)
		case 2:
			nsec = int64(x)
		}
	}
	if sec == 0 && nsec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, nsec)
}
