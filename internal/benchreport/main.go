// Command benchreport runs loop's benchmark suite (issue 5's (a)–(f)) with
// `go test -bench`, one invocation per benchmark group, and writes the
// results table, with the machine and the date, into BENCHMARKS.md between
// the markers <!-- bench:begin --> and <!-- bench:end -->. Text outside
// the markers (the analysis of what bounds each number) is kept.
//
//	go run ./internal/benchreport [-o BENCHMARKS.md] [-only a,f]
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// group is one `go test` invocation.
type group struct {
	id, title string
	bench     string // -bench regexp
	benchtime string
	pkgs      []string
	rows      func(r results) []row
}

// results maps a benchmark name (without the -N suffix) to its metrics by unit.
type results map[string]map[string]float64

func (r results) get(bench, unit string) (float64, bool) {
	m, ok := r[bench]
	if !ok {
		return 0, false
	}
	v, ok := m[unit]
	return v, ok
}

type row struct {
	id, what, result, target string
	met                      string // ✓, ✗ or — (not judged)
}

func judge(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

func ms(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f s", v/1000)
	}
	if v < 10 {
		return fmt.Sprintf("%.2f ms", v)
	}
	return fmt.Sprintf("%.1f ms", v)
}

var groups = []group{
	{
		id: "a", title: "save → served (loop, floor, CopyToContainer)",
		bench: "^(BenchmarkSaveToServed|BenchmarkAgentWrite|BenchmarkCopyToContainer)$", benchtime: "200x",
		pkgs: []string{"./daemon/", "./daemon/internal/liveupdate/"},
		rows: func(r results) []row {
			var out []row
			lp50, ok1 := r.get("BenchmarkSaveToServed", "p50-ms")
			lp95, _ := r.get("BenchmarkSaveToServed", "p95-ms")
			fp50, ok2 := r.get("BenchmarkAgentWrite", "p50-ms")
			fp95, _ := r.get("BenchmarkAgentWrite", "p95-ms")
			cp50, ok3 := r.get("BenchmarkCopyToContainer", "p50-ms")
			cp95, _ := r.get("BenchmarkCopyToContainer", "p95-ms")
			if ok1 {
				out = append(out, row{"a", "loop up: one-file save → new content served (200 edits)",
					fmt.Sprintf("p50 %s, p95 %s", ms(lp50), ms(lp95)), "p50 ≤ 20 ms, p95 ≤ 50 ms", judge(lp50 <= 20 && lp95 <= 50)})
			}
			if ok2 {
				out = append(out, row{"a", "floor: write into a held exec stream to the agent", fmt.Sprintf("p50 %s, p95 %s", ms(fp50), ms(fp95)), "reference", "—"})
			}
			if ok3 {
				out = append(out, row{"a", "one CopyToContainer per edit", fmt.Sprintf("p50 %s, p95 %s", ms(cp50), ms(cp95)), "reference", "—"})
			}
			if ok1 && ok2 && fp50 > 0 {
				ratio := lp50 / fp50
				out = append(out, row{"a", "loop / floor (p50)", fmt.Sprintf("%.2f×", ratio), "≤ 1.5×", judge(ratio <= 1.5)})
			}
			return out
		},
	},
	{
		id: "b", title: "branch switch of 10,000 files",
		bench: "^BenchmarkBranchSwitch$", benchtime: "1x", pkgs: []string{"./daemon/"},
		rows: func(r results) []row {
			u, ok := r.get("BenchmarkBranchSwitch", "updates")
			if !ok {
				return nil
			}
			c, _ := r.get("BenchmarkBranchSwitch", "converge-ms")
			eq, _ := r.get("BenchmarkBranchSwitch", "trees-equal")
			w, _ := r.get("BenchmarkBranchSwitch", "write-ms")
			equal := "trees differ"
			if eq == 1 {
				equal = "trees equal"
			}
			return []row{{"b", "branch switch: 10,000 files (9,000 changed, 500 deleted, 500 new) under loop up",
				fmt.Sprintf("%.0f update(s), converged in %s (the writes took %s), %s", u, ms(c), ms(w), equal), "1–2 updates, ≤ 3 s, trees equal",
				judge(u <= 2 && c <= 3000 && eq == 1)}}
		},
	},
	{
		id: "c", title: "watch start-up on 100,000 files",
		bench: "^BenchmarkStartup100k$", benchtime: "3x", pkgs: []string{"./daemon/internal/watch/"},
		rows: func(r results) []row {
			ready, ok := r.get("BenchmarkStartup100k", "ready-ms")
			if !ok {
				return nil
			}
			change, _ := r.get("BenchmarkStartup100k", "change-ms")
			heap, _ := r.get("BenchmarkStartup100k", "heap-MB")
			watches, _ := r.get("BenchmarkStartup100k", "watches")
			// The tree keeps 1,052 directories (root, src, 50 packages × 20
			// subdirectories); node_modules holds 4,800 more.
			return []row{{"c", "watch start-up, 100,000 files, node_modules ignored",
				fmt.Sprintf("ready %s + change seen %s; heap +%.1f MB; %.0f watches", ms(ready), ms(change), heap, watches),
				"≤ 1 s, ≤ 150 MB, watches only on kept dirs (1,052)", judge(ready+change <= 1000 && heap <= 150 && watches <= 1052)}}
		},
	},
	{
		id: "d", title: "idle daemon, 20 resources",
		bench: "^BenchmarkIdle$", benchtime: "1x", pkgs: []string{"./daemon/"},
		rows: func(r results) []row {
			cpu, ok := r.get("BenchmarkIdle", "cpu-%")
			if !ok {
				return nil
			}
			return []row{{"d", "idle daemon, 20 resources (10 containers, 10 local), " + idleLabel(),
				fmt.Sprintf("%.3f %% of a core", cpu), "≤ 0.5 %", judge(cpu <= 0.5)}}
		},
	},
	{
		id: "e", title: "Tiltfile load, 700 lines",
		bench: "^BenchmarkLoad700Lines$", benchtime: "20x", pkgs: []string{"./starlark/tiltfile/"},
		rows: func(r results) []row {
			ns, ok := r.get("BenchmarkLoad700Lines", "ns/op")
			if !ok {
				return nil
			}
			return []row{{"e", "Tiltfile load, generated 700 lines, local() stubbed", ms(ns / 1e6), "≤ 100 ms", judge(ns/1e6 <= 100)}}
		},
	},
	{
		id: "f", title: "Go save → examples/hello answers",
		bench: "^BenchmarkGoSave$", benchtime: "10x", pkgs: []string{"./daemon/"},
		rows: func(r results) []row {
			p50, ok := r.get("BenchmarkGoSave", "p50-ms")
			if !ok {
				return nil
			}
			p95, _ := r.get("BenchmarkGoSave", "p95-ms")
			c50, _ := r.get("BenchmarkGoSave", "compile-p50-ms")
			x, _ := r.get("BenchmarkGoSave", "x-compile")
			over, _ := r.get("BenchmarkGoSave", "over-compile-ms")
			chain, _ := r.get("BenchmarkGoSave", "chain-p50-ms")
			cmd, _ := r.get("BenchmarkGoSave", "cmd-p50-ms")
			cp50, _ := r.get("BenchmarkGoSave", "compile-polled-p50-ms")
			overPolled, _ := r.get("BenchmarkGoSave", "over-polled-compile-ms")
			return []row{
				{"f", "save main.go → examples/hello answers (compile, sync, restart; 10 edits)", fmt.Sprintf("p50 %s, p95 %s", ms(p50), ms(p95)), "see the ratio", "—"},
				{"f", "the compile alone (same go build, same cache)", "p50 " + ms(c50), "reference", "—"},
				{"f", "loop's own number: the save's chain (save → hello ready)", "p50 " + ms(chain), "reference", "—"},
				{"f", "the compile inside loop (the chain's cmd phase)", "p50 " + ms(cmd), "reference", "—"},
				{"f", "loop / compile (p50)", fmt.Sprintf("%.2f×", x), "≤ 1.5×", judge(x <= 1.5)},
				{"f", "the compile alone while the service is polled as the edit polls it", "p50 " + ms(cp50), "reference", "—"},
				{"f", "loop − compile (p50)", ms(over), "reference", "—"},
				{"f", "loop − compile under the same polling (p50)", ms(overPolled), "≤ 100 ms", judge(overPolled <= 100)},
			}
		},
	},
}

func idleLabel() string {
	if d := os.Getenv("LOOP_BENCH_IDLE"); d != "" {
		return d
	}
	return "60 s"
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.+)$`)

// parse collects the metrics of every benchmark line in go test output.
func parse(out []byte, into results) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		f := strings.Fields(m[3])
		vals := map[string]float64{}
		for i := 0; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				vals[f[i+1]] = v
			}
		}
		into[m[1]] = vals
	}
}

func machine() string {
	var b strings.Builder
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.SplitSeq(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(strings.SplitN(string(data), "\n", 2)[0]); len(f) >= 2 {
			if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
				mem = fmt.Sprintf(", %.1f GB RAM", kb/(1<<20))
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Fprintf(&b, "%s, %d cores%s; Linux %s; %s", cpu, runtime.NumCPU(), mem, strings.TrimSpace(string(kernel)), goVersion())
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").Output(); err == nil {
		fmt.Fprintf(&b, "; Docker engine %s", strings.TrimSpace(string(out)))
	}
	return b.String()
}

func goVersion() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(out))
}

func command(g group) []string {
	args := []string{"test", "-p", "1", "-count", "1", "-run", "^$", "-bench", g.bench, "-benchtime", g.benchtime, "-timeout", "30m"}
	return append(args, g.pkgs...)
}

const (
	beginMark = "<!-- bench:begin -->"
	endMark   = "<!-- bench:end -->"
)

func main() {
	outPath := flag.String("o", "BENCHMARKS.md", "file to write the table into")
	only := flag.String("only", "", "comma-separated benchmark ids to run (a–f); default all")
	flag.Parse()
	want := map[string]bool{}
	for id := range strings.SplitSeq(*only, ",") {
		if id = strings.TrimSpace(id); id != "" {
			want[id] = true
		}
	}
	res := results{}
	// Groups not run this time keep their previous results (from the raw
	// lines of the existing file), so `-only a` refreshes one row group.
	prev := results{}
	if old, err := os.ReadFile(*outPath); err == nil {
		parse(old, prev)
	}
	var kept []string
	var rows []row
	var cmds, failed []string
	var raw bytes.Buffer
	start := time.Now()
	for _, g := range groups {
		if len(want) > 0 && !want[g.id] {
			if got := g.rows(prev); len(got) > 0 {
				rows = append(rows, got...)
				kept = append(kept, g.id)
				for name, vals := range prev {
					if g.rows(results{name: vals}) != nil && len(g.rows(results{name: vals})) > 0 {
						raw.WriteString(rawLine(name, vals))
					}
				}
			}
			continue
		}
		args := command(g)
		cmds = append(cmds, "go "+strings.Join(args, " "))
		fmt.Fprintf(os.Stderr, "benchreport: (%s) %s: go %s\n", g.id, g.title, strings.Join(args, " "))
		cmd := exec.Command("go", args...)
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = &out
		err := cmd.Run()
		os.Stderr.Write(out.Bytes())
		parse(out.Bytes(), res)
		for _, l := range strings.Split(out.String(), "\n") {
			if benchLine.MatchString(l) {
				raw.WriteString(l + "\n")
			}
		}
		got := g.rows(res)
		if err != nil || len(got) == 0 {
			failed = append(failed, g.id)
			rows = append(rows, row{g.id, g.title, fmt.Sprintf("did not run to the end (%v)", err), "", "✗"})
			continue
		}
		rows = append(rows, got...)
	}
	var t strings.Builder
	fmt.Fprintf(&t, "%s\n\n", beginMark)
	fmt.Fprintf(&t, "- **Date**: %s (suite took %s)\n", start.UTC().Format("2006-01-02 15:04 MST"), time.Since(start).Round(time.Second))
	fmt.Fprintf(&t, "- **Machine**: %s\n", machine())
	fmt.Fprintf(&t, "- **Command**: `make bench` (`go run ./internal/benchreport`), which runs:\n")
	for _, c := range cmds {
		fmt.Fprintf(&t, "  - `%s`\n", c)
	}
	if len(kept) > 0 {
		fmt.Fprintf(&t, "- Rows %s are kept from the previous run (this one ran with -only %s).\n", strings.Join(kept, ", "), *only)
	}
	fmt.Fprintf(&t, "\n| | benchmark | result | target | met |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&t, "| %s | %s | %s | %s | %s |\n", r.id, r.what, r.result, r.target, r.met)
	}
	fmt.Fprintf(&t, "\n<details><summary>raw go test lines</summary>\n\n```\n%s```\n</details>\n\n%s", raw.String(), endMark)
	if err := writeInto(*outPath, t.String()); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "benchreport: wrote %s\n", *outPath)
	if len(failed) > 0 {
		fmt.Fprintf(os.Stderr, "benchreport: benchmarks %s did not run to the end\n", strings.Join(failed, ", "))
		os.Exit(1)
	}
}

// rawLine renders parsed metrics back as a go test line (units sorted).
func rawLine(name string, vals map[string]float64) string {
	units := make([]string, 0, len(vals))
	for u := range vals {
		units = append(units, u)
	}
	sort.Strings(units)
	var b strings.Builder
	fmt.Fprintf(&b, "%s\t1", name)
	for _, u := range units {
		fmt.Fprintf(&b, "\t%g %s", vals[u], u)
	}
	return b.String() + "\n"
}

// writeInto replaces the marked section of path with section, or writes a
// new file around it.
func writeInto(path, section string) error {
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		old = []byte("# Benchmarks\n\nWritten by `make bench`; edit outside the markers only.\n\n" + beginMark + "\n" + endMark + "\n")
	} else if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	s := string(old)
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	if i < 0 || j < i {
		s = strings.TrimRight(s, "\n") + "\n\n" + section + "\n"
	} else {
		s = s[:i] + section + s[j+len(endMark):]
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
