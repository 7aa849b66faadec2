package daemon_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/metrics"
	"github.com/loop-dev/loop/internal/testenv"
)

// The benchmark suite of BENCHMARKS.md, run by `make bench` (see
// internal/benchreport): (a) BenchmarkSaveToServed in bench_test.go with
// its references in daemon/internal/liveupdate, (b) BenchmarkBranchSwitch,
// (d) BenchmarkIdle, (f) BenchmarkGoSave; (c) and (e) live with the watcher
// and the Tiltfile loader.

// BenchmarkBranchSwitch is a branch switch under `loop up`: of 10,000
// synced files, 9,000 change, 500 are deleted and 500 appear at once. It
// reports how many updates loop made, the time from the first write to the
// last update being ready (and how long the writes themselves took), and whether the container's tree then equals
// the host's (1) or not (0).
func BenchmarkBranchSwitch(b *testing.B) {
	b.Setenv("LOOP_STATE_DIR", b.TempDir())
	testenv.Busybox(b)
	const dirs, perDir = 100, 100
	var updates, converge, equal, write float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		files := map[string]string{
			"Dockerfile":   "FROM loop-test/busybox:latest\nCOPY src /src\nCMD [\"sleep\", \"1000000\"]\n",
			"compose.yaml": "services:\n  app:\n    image: loopbench/branch\n    init: true\n",
			"Tiltfile": "docker_build('loopbench/branch', '.', live_update=[sync('src', '/src')])\n" +
				fmt.Sprintf("docker_compose('compose.yaml', project_name=%q)\n", uniqueName("loopbench-branch")),
		}
		for d := range dirs {
			for f := range perDir {
				files[fmt.Sprintf("src/d%03d/f%03d.txt", d, f)] = fmt.Sprintf("main %d %d\n", d, f)
			}
		}
		writeFiles(b, dir, files)
		p := startUp(b, dir, "up")
		st := p.waitReady(3*time.Minute, "app")["app"]
		// The switch: 90 directories rewritten, 5 deleted, 5 added.
		t0 := time.Now()
		for d := range dirs {
			for f := range perDir {
				path := filepath.Join(dir, "src", fmt.Sprintf("d%03d/f%03d.txt", d, f))
				var err error
				switch {
				case d < 90:
					err = os.WriteFile(path, []byte(fmt.Sprintf("branch %d %d\n", d, f)), 0o644)
				case d < 95:
					err = os.Remove(path)
				default:
					err = os.MkdirAll(filepath.Join(dir, "src", fmt.Sprintf("n%03d", d)), 0o755)
					if err == nil {
						err = os.WriteFile(filepath.Join(dir, "src", fmt.Sprintf("n%03d/f%03d.txt", d, f)), []byte("new\n"), 0o644)
					}
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		write += float64(time.Since(t0).Microseconds()) / 1000
		want := hostTreeSums(b, filepath.Join(dir, "src"))
		// Converged: the container's tree equals the host's and loop is idle.
		deadline := time.Now().Add(2 * time.Minute)
		var got string
		for {
			p.waitReady(2*time.Minute, "app")
			got = containerTreeSums(b, st.ContainerID, "/src")
			if got == want || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		ups := p.updatesSince("app", t0)
		if len(ups) == 0 {
			b.Fatal("no update after the branch switch")
		}
		updates += float64(len(ups))
		converge += float64(ups[len(ups)-1].Ready.Sub(t0).Microseconds()) / 1000
		if got == want {
			equal++
		} else {
			b.Errorf("container tree differs from the host tree after %d updates", len(ups))
		}
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(updates/n, "updates")
	b.ReportMetric(converge/n, "converge-ms")
	b.ReportMetric(equal/n, "trees-equal")
	b.ReportMetric(write/n, "write-ms")
	b.ReportMetric(0, "ns/op")
}

// hostTreeSums lists "sha256  relative/path" for every file below root,
// sorted, the way containerTreeSums does inside a container.
func hostTreeSums(tb testing.TB, root string) string {
	tb.Helper()
	var lines []string
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		rel, _ := filepath.Rel(root, p)
		lines = append(lines, hex.EncodeToString(sum[:])+"  "+rel)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func containerTreeSums(tb testing.TB, id, root string) string {
	tb.Helper()
	out := testenv.Exec(tb, id, "sh", "-c", "cd "+root+" && find . -type f | sed 's#^\\./##' | xargs sha256sum")
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// idleFor is how long BenchmarkIdle watches the idle daemon; LOOP_BENCH_IDLE
// (a Go duration) shortens it for a quick run.
func idleFor() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("LOOP_BENCH_IDLE")); err == nil && d > 0 {
		return d
	}
	return 60 * time.Second
}

// BenchmarkIdle brings up 20 resources (10 containers with live updates
// and 10 local resources watching their directories), waits until all are
// ready, then measures the CPU time the whole process (loop's daemon runs
// in it) uses while nothing changes, as a percentage of one core.
func BenchmarkIdle(b *testing.B) {
	b.Setenv("LOOP_STATE_DIR", b.TempDir())
	testenv.Busybox(b)
	dir := b.TempDir()
	var tf, svcs strings.Builder
	files := map[string]string{
		"Dockerfile": "FROM loop-test/busybox:latest\nCOPY site /www\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
	}
	svcs.WriteString("services:\n")
	var names []string
	for i := range 10 {
		files[fmt.Sprintf("site/s%d/index.html", i)] = "idle\n"
		files[fmt.Sprintf("local%d/input.txt", i)] = "idle\n"
		fmt.Fprintf(&svcs, "  web%d:\n    image: loopbench/idle\n", i)
		fmt.Fprintf(&tf, "local_resource('gen%d', cmd='true', deps=['local%d'])\n", i, i)
		names = append(names, fmt.Sprintf("web%d", i), fmt.Sprintf("gen%d", i))
	}
	files["compose.yaml"] = svcs.String()
	files["Tiltfile"] = "docker_build('loopbench/idle', '.', live_update=[sync('site', '/www')])\n" +
		fmt.Sprintf("docker_compose('compose.yaml', project_name=%q)\n", uniqueName("loopbench-idle")) + tf.String()
	writeFiles(b, dir, files)
	p := startUp(b, dir, "up")
	p.waitReady(5*time.Minute, names...)
	time.Sleep(2 * time.Second) // let start-up work (log streams, agents) settle
	var pct float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cpu0, t0 := cpuTime(b), time.Now()
		time.Sleep(idleFor())
		pct += 100 * float64(cpuTime(b)-cpu0) / float64(time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(pct/float64(b.N), "cpu-%")
	b.ReportMetric(float64(len(names)), "resources")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the user+system CPU time of this process.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// helloProject copies examples/hello for a benchmark or test: its own
// compose project name and no published host port (it is reached on its
// container address), so it runs beside a developer's `make up`.
func helloProject(tb testing.TB) string {
	tb.Helper()
	src := filepath.Join("..", "examples", "hello")
	dst := tb.TempDir()
	for _, name := range []string{"Tiltfile", "Dockerfile", "compose.yaml", "go.mod", "main.go"} {
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			tb.Fatal(err)
		}
		s := string(data)
		switch name {
		case "Tiltfile":
			s = strings.Replace(s, "project_name='loop-hello'", fmt.Sprintf("project_name=%q", uniqueName("loopbench-hello")), 1)
		case "compose.yaml":
			s = regexp.MustCompile(`(?s)\n    ports:\n(      - .*?\n)+`).ReplaceAllString(s, "\n")
		}
		if err := os.WriteFile(filepath.Join(dst, name), []byte(s), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dst
}

var messageRE = regexp.MustCompile(`const message = ".*"`)

// setMessage rewrites the message constant of a copy of examples/hello.
func setMessage(tb testing.TB, dir, msg string) {
	tb.Helper()
	p := filepath.Join(dir, "main.go")
	src, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	out := messageRE.ReplaceAll(src, []byte("const message = "+strconv.Quote(msg)))
	if bytes.Equal(out, src) {
		tb.Fatalf("no message constant in %s", p)
	}
	if err := os.WriteFile(p, out, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkGoSave is (f): saving examples/hello's main.go until the
// service answers with the new message, measured from outside (write, then
// poll HTTP). In the same run, each edit is preceded by the compile alone:
// the same `go build` on a copy of the source outside the watched tree
// (same build cache), with a different message so it really compiles.
//
// The service is polled every 2 ms, or every $LOOP_BENCH_POLL (a duration):
// 500 requests a second take CPU from the compile on a small machine (the
// polled compile shows how much), a coarser poll counts at most its interval
// against loop.
func BenchmarkGoSave(b *testing.B) {
	poll := 2 * time.Millisecond
	if v := os.Getenv("LOOP_BENCH_POLL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("LOOP_BENCH_POLL: %v", err)
		}
		poll = d
	}
	h, dir, get := startHello(b)
	goSaves(b, h, dir, newCompileAside(b, dir), poll, get)
}

// startHello runs loop up on a copy of examples/hello until both resources
// are ready and the start's chain has ended; get asks the service.
func startHello(tb testing.TB) (h *harness, dir string, get func() string) {
	tb.Setenv("LOOP_STATE_DIR", tb.TempDir())
	dir = helloProject(tb)
	h = startUp(tb, dir, "up")
	st := h.waitReady(5*time.Minute, "hello-compile", "hello")["hello"]
	h.waitChain(time.Minute, "hello", time.Time{})
	return h, dir, helloGetter(tb, st.ContainerID)
}

// helloGetter returns a function that asks examples/hello's container for its
// answer ("" when it does not answer).
func helloGetter(tb testing.TB, containerID string) func() string {
	url := "http://" + addrOf(tb, containerID) + ":8000/"
	client := &http.Client{Timeout: time.Second}
	return func() string {
		resp, err := client.Get(url)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
}

// cmdPhase is the compile's share of a Go save's chain (its cmd phase).
func cmdPhase(c api.Chain) time.Duration {
	for _, ph := range c.Phases {
		if ph.Name == api.SpanCmd {
			return ph.Duration
		}
	}
	return 0
}

// goSaves is the edit loop of (f) and P2-pod, b.N times: the compile alone on the side
// copy (quiet, then while get is polled as the edit polls it: the same contention as
// loop's compile sees), then a save of the project's message, timed until get answers with it (then
// the update is left to settle, so that edits do not overlap); it reports both, loop's
// own number for the save (its chain, save → hello ready), the compile inside loop
// (the chain's cmd phase) and where loop's time went.
func goSaves(b *testing.B, h *harness, dir string, side compileAside, poll time.Duration, get func() string) {
	var loop, compile, polled, chain, cmd []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		compile = append(compile, side.run(b, 2*i))
		polled = append(polled, side.runPolled(b, 2*i+1, poll, get))
		msg := fmt.Sprintf("edit %d %d", i, time.Now().UnixNano())
		t0 := time.Now()
		setMessage(b, dir, msg)
		for get() != msg+"\n" {
			if time.Since(t0) > time.Minute {
				b.Fatalf("edit %d not served within a minute", i)
			}
			time.Sleep(poll)
		}
		loop = append(loop, time.Since(t0))
		c := h.waitChain(time.Minute, "hello", t0)
		chain = append(chain, c.Total())
		cmd = append(cmd, cmdPhase(c))
		h.waitReady(time.Minute, "hello-compile", "hello")
	}
	b.StopTimer()
	reportVsCompile(b, loop, compile)
	reportSpread(b, "compile-polled-", polled)
	slices.Sort(polled)
	b.ReportMetric(float64((metrics.Percentile(loop, 50)-metrics.Percentile(polled, 50)).Microseconds())/1000, "over-polled-compile-ms")
	reportSpread(b, "chain-", chain)
	reportSpread(b, "cmd-", cmd)
	h.logPhases(b)
}

// compileAside is the reference of (f) and P2-pod: a copy of examples/hello's source
// outside the watched tree, compiled as loop's local_resource compiles it (same build
// cache), with a new message each time so that it really compiles.
type compileAside string

func newCompileAside(b *testing.B, project string) compileAside {
	b.Helper()
	side := b.TempDir()
	for _, name := range []string{"go.mod", "main.go"} {
		data, err := os.ReadFile(filepath.Join(project, name))
		if err != nil {
			b.Fatal(err)
		}
		writeFiles(b, side, map[string]string{name: string(data)})
	}
	return compileAside(side)
}

// run changes the copy's message and times its compile.
func (c compileAside) run(b *testing.B, i int) time.Duration {
	b.Helper()
	side := string(c)
	setMessage(b, side, fmt.Sprintf("side %d %d", i, time.Now().UnixNano()))
	c0 := time.Now()
	cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(side, "hello"), ".")
	cmd.Dir = side
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("compile alone: %v\n%s", err, out)
	}
	return time.Since(c0)
}

// reportVsCompile reports the spread of save → new code and of the compile alone, and
// their ratio at p50.
func reportVsCompile(b *testing.B, loop, compile []time.Duration) {
	reportSpread(b, "", loop)
	reportSpread(b, "compile-", compile)
	sort.Slice(loop, func(i, j int) bool { return loop[i] < loop[j] })
	sort.Slice(compile, func(i, j int) bool { return compile[i] < compile[j] })
	b.ReportMetric(float64(loop[len(loop)/2])/float64(compile[len(compile)/2]), "x-compile")
	b.ReportMetric(float64((metrics.Percentile(loop, 50)-metrics.Percentile(compile, 50)).Microseconds())/1000, "over-compile-ms")
	b.ReportMetric(0, "ns/op")
}
