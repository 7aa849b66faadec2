package daemon_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/internal/agent"
	"github.com/loop-dev/loop/internal/testenv"
)

// The no-loss check: a seeded generator of file operations runs against a
// live-updated container started by daemon.Up; whenever things settle the
// container's tree under the sync path must equal the host's, ignored files
// excluded.
//
// Environment (read by TestNoLostChanges; `make soak` sets them):
//
//	LOOP_NOLOSS_SEED=N       replay one seed (the failure message prints it)
//	LOOP_NOLOSS_SEEDS=N      how many seeds (default 3), starting at LOOP_NOLOSS_FIRST (default 1)
//	LOOP_NOLOSS_OPS=N        operations per seed (default 250)
//	LOOP_NOLOSS_CHECK=N      compare every N operations too (default 100)
const (
	nolossSyncPath = "/app"
	nolossIgnore   = ".ign" // files with this suffix are ignored by docker_build(ignore=)
	nolossSkipDir  = "skip" // and so is src/skip
)

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil {
			return n
		}
	}
	return def
}

func TestNoLostChanges(t *testing.T) {
	seeds := []int64{}
	if v := os.Getenv("LOOP_NOLOSS_SEED"); v != "" {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("LOOP_NOLOSS_SEED=%q: %v", v, err)
		}
		seeds = append(seeds, s)
	} else {
		first := envInt("LOOP_NOLOSS_FIRST", 1)
		for i := 0; i < envInt("LOOP_NOLOSS_SEEDS", 3); i++ {
			seeds = append(seeds, int64(first+i))
		}
	}
	ops := envInt("LOOP_NOLOSS_OPS", 250)
	every := envInt("LOOP_NOLOSS_CHECK", 100)
	total := nolossTotals{}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			st := runNoLoss(t, seed, ops, every)
			total.add(st)
		})
	}
	t.Logf("no-loss: %d seeds, %d operations, %d checks, %d divergences, %d live updates, %d rebuilds",
		len(seeds), total.ops, total.checks, total.divergences, total.live, total.rebuilds)
}

type nolossTotals struct{ ops, checks, divergences, live, rebuilds int }

func (a *nolossTotals) add(b nolossTotals) {
	a.ops += b.ops
	a.checks += b.checks
	a.divergences += b.divergences
	a.live += b.live
	a.rebuilds += b.rebuilds
}

// nolossProject writes a project whose src/ is live-updated into /app.
func nolossProject(t *testing.T) string {
	t.Helper()
	testenv.Busybox(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile":   "FROM loop-test/busybox:latest\nCOPY src " + nolossSyncPath + "\nCMD [\"sleep\", \"100000\"]\n",
		"src/seed.txt": "seed\n",
		"compose.yaml": "services:\n  app:\n    image: looptest/noloss\n    init: true\n",
		"Tiltfile": fmt.Sprintf(`
docker_build('looptest/noloss', '.', ignore=['**/*%s', 'src/%s'], live_update=[sync('src', '%s')])
docker_compose('compose.yaml', project_name='%s')
`, nolossIgnore, nolossSkipDir, nolossSyncPath, projectName(t)),
	})
	return dir
}

func runNoLoss(t *testing.T, seed int64, ops, every int) nolossTotals {
	dir := nolossProject(t)
	h := startUp(t, dir, "up")
	h.waitUpdates("app", 1, 2*time.Minute)
	g := newTreeGen(seed, filepath.Join(dir, "src"))
	var st nolossTotals
	check := func(after int) {
		st.checks++
		if diff := h.settleAndCompare(t, g.root); diff != "" {
			st.divergences++
			t.Errorf("seed %d: container tree differs from the host after %d operations (replay: LOOP_NOLOSS_SEED=%d LOOP_NOLOSS_OPS=%d go test ./daemon -run 'TestNoLostChanges')\n%s\nlast operations:\n  %s",
				seed, after, seed, ops, diff, strings.Join(g.tail(envInt("LOOP_NOLOSS_TAIL", 40)), "\n  "))
		}
	}
	for i := 1; i <= ops; i++ {
		g.step()
		if every > 0 && i%every == 0 && i != ops {
			check(i)
			if t.Failed() {
				break
			}
		}
	}
	if !t.Failed() {
		check(ops)
	}
	st.ops = g.n
	h.mu.Lock()
	for _, u := range h.updates("app")[1:] {
		switch u.Kind {
		case api.UpdateLive:
			st.live++
		default:
			st.rebuilds++
		}
	}
	h.mu.Unlock()
	if st.rebuilds > 0 {
		t.Logf("seed %d: %d updates were rebuilds (a live update failed?)", seed, st.rebuilds)
		h.mu.Lock()
		for _, ev := range h.events {
			if ev.Kind == api.EventLog && (strings.HasPrefix(ev.Text, "ERROR") || strings.HasPrefix(ev.Text, "rebuild")) {
				t.Logf("  %s", ev.Text)
			}
		}
		h.mu.Unlock()
	}
	return st
}

// settleAndCompare waits until the engine has handled every change made so
// far (syncBarrier) and compares the container's tree with the host's. A
// difference that outlives 10 s is returned, described.
func (h *harness) settleAndCompare(t *testing.T, root string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var diff string
		st := h.syncBarrier(t, root)
		if st.Phase == api.PhaseError {
			diff = "app is in error: " + st.Error
		} else {
			diff = compareTrees(t, st.ContainerID, root)
		}
		if diff == "" || time.Now().After(deadline) {
			return diff
		}
	}
}

// nolossMarker is a file at the top of the synced tree that treeGen never
// lists, so never touches: syncBarrier's marker.
const nolossMarker = ".barrier"

// syncBarrier writes a new content to nolossMarker below root (the tree
// synced into the app's /app) and waits until the container has it and the
// app is idle, or the app is in error. The watcher reports events in order
// and the engine handles them in order, so once the marker is synced every
// earlier change has been handled too. It returns the app's status.
func (h *harness) syncBarrier(t *testing.T, root string) api.ResourceStatus {
	t.Helper()
	want := strconv.FormatInt(time.Now().UnixNano(), 10) + "\n"
	writeFiles(t, root, map[string]string{nolossMarker: want})
	var st api.ResourceStatus
	eventually(t, time.Minute, func() error {
		st = h.statusOf("app")
		if st.Phase == api.PhaseError {
			return nil
		}
		if st.Phase != api.PhaseReady || st.PendingFiles > 0 {
			return fmt.Errorf("app not idle after the marker: %s, %d files pending", st.Phase, st.PendingFiles)
		}
		if got, _ := containerFile(t, st.ContainerID, nolossSyncPath+"/"+nolossMarker); got != want {
			return fmt.Errorf("marker %s not synced: %q, want %q", nolossMarker, got, want)
		}
		return nil
	})
	return st
}

// treeEntry is what the check compares for one path.
type treeEntry struct {
	kind byte // f, d, l
	perm fs.FileMode
	sum  [32]byte
	link string
}

func (e treeEntry) String() string {
	switch e.kind {
	case 'f':
		return fmt.Sprintf("file %v %x", e.perm, e.sum[:6])
	case 'd':
		return fmt.Sprintf("dir %v", e.perm)
	}
	return "link -> " + e.link
}

func entryOf(mode fs.FileMode, sum [32]byte, link string) treeEntry {
	switch {
	case mode.IsDir():
		return treeEntry{kind: 'd', perm: mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
	case mode&fs.ModeSymlink != 0:
		return treeEntry{kind: 'l', link: link}
	}
	return treeEntry{kind: 'f', perm: mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky), sum: sum}
}

// nolossIgnored mirrors the project's ignore rules for the comparison.
func nolossIgnored(rel string) bool {
	return strings.HasSuffix(rel, nolossIgnore) || rel == nolossSkipDir || strings.HasPrefix(rel, nolossSkipDir+"/")
}

func hostTree(root string) (map[string]treeEntry, error) {
	out := map[string]treeEntry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if nolossIgnored(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var sum [32]byte
		var link string
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum = sha256.Sum256(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		out[rel] = entryOf(fi.Mode(), sum, link)
		return nil
	})
	return out, err
}

// containerTree lists the sync path through a second agent process (the
// one loop holds keeps serving).
func containerTree(ctx context.Context, cli *client.Client, id string) (map[string]treeEntry, error) {
	sess, err := agent.Start(ctx, cli, id)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	entries, err := sess.List(ctx, nolossSyncPath)
	if err != nil {
		return nil, err
	}
	out := map[string]treeEntry{}
	for _, e := range entries {
		rel := strings.TrimPrefix(strings.TrimPrefix(e.Path, nolossSyncPath), "/")
		if rel == "" {
			continue
		}
		out[rel] = entryOf(e.Mode, e.SHA256, e.LinkTarget)
	}
	return out, nil
}

// compareTrees returns "" when the trees match, else the differences.
func compareTrees(t *testing.T, id, root string) string {
	return compareTreesOn(testenv.Docker(t), id, root)
}

// compareTreesOn is compareTrees on the engine cli talks to.
func compareTreesOn(cli *client.Client, id, root string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host, err := hostTree(root)
	if err != nil {
		return "list host tree: " + err.Error()
	}
	ctr, err := containerTree(ctx, cli, id)
	if err != nil {
		return "list container tree: " + err.Error()
	}
	var diffs []string
	for p, he := range host {
		ce, ok := ctr[p]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("missing in container: %s (%s)", p, he))
		case ce != he:
			diffs = append(diffs, fmt.Sprintf("differs: %s: host %s, container %s", p, he, ce))
		}
	}
	for p, ce := range ctr {
		if _, ok := host[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("extra in container: %s (%s)", p, ce))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 30 {
		diffs = append(diffs[:30], fmt.Sprintf("... and %d more", len(diffs)-30))
	}
	return strings.Join(diffs, "\n")
}

// treeGen applies seeded random file operations below root. Every choice
// comes from its rand.Rand and from the tree as listed (sorted), so one
// seed replays the same operations.
type treeGen struct {
	rnd   *rand.Rand
	root  string
	n     int
	burst int
	log   []string
}

func newTreeGen(seed int64, root string) *treeGen {
	return &treeGen{rnd: rand.New(rand.NewSource(seed)), root: root}
}

func (g *treeGen) tail(n int) []string {
	if len(g.log) > n {
		return g.log[len(g.log)-n:]
	}
	return g.log
}

func (g *treeGen) record(format string, args ...any) {
	g.log = append(g.log, fmt.Sprintf("%d: ", g.n)+fmt.Sprintf(format, args...))
	if len(g.log) > 200 {
		g.log = g.log[100:]
	}
}

// listing returns the tree's directories (root as ""), regular files and
// symlinks, each sorted.
func (g *treeGen) listing() (dirs, files, links []string) {
	dirs = []string{""}
	_ = filepath.WalkDir(g.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == g.root {
			return nil
		}
		rel, _ := filepath.Rel(g.root, p)
		switch {
		case rel == nolossMarker:
		case d.Type()&fs.ModeSymlink != 0:
			links = append(links, rel)
		case d.IsDir():
			dirs = append(dirs, rel)
		default:
			files = append(files, rel)
		}
		return nil
	})
	return dirs, files, links
}

func (g *treeGen) pick(list []string) string { return list[g.rnd.Intn(len(list))] }

func (g *treeGen) abs(rel string) string { return filepath.Join(g.root, rel) }

// name returns a short file or directory name; names collide on purpose.
func (g *treeGen) name(prefix string) string {
	n := fmt.Sprintf("%s%d", prefix, g.rnd.Intn(8))
	if g.rnd.Intn(12) == 0 {
		n += nolossIgnore
	}
	return n
}

func (g *treeGen) content() []byte {
	size := g.rnd.Intn(512)
	switch g.rnd.Intn(20) {
	case 0:
		size = 0
	case 1:
		size = 64<<10 + g.rnd.Intn(64<<10)
	}
	b := make([]byte, size)
	g.rnd.Read(b)
	return b
}

func (g *treeGen) mode() fs.FileMode {
	if g.rnd.Intn(5) == 0 {
		return 0o755
	}
	return 0o644
}

// newPath returns a path for a new entry in a random directory, not deeper
// than three levels.
func (g *treeGen) newPath(dirs []string, prefix string) string {
	for {
		d := g.pick(dirs)
		if strings.Count(d, "/") < 2 {
			return filepath.Join(d, g.name(prefix))
		}
	}
}

// step applies one operation (or starts a burst) and then waits a random
// short time, except inside a burst.
func (g *treeGen) step() {
	g.n++
	dirs, files, links := g.listing()
	all := append(append([]string(nil), files...), links...)
	r := g.rnd.Intn(100)
	// Keep the tree from growing without bound.
	if len(files) > 120 && r < 60 {
		r = 10
	}
	switch {
	case r < 8 && len(all) > 0: // delete a file or link
		p := g.pick(all)
		g.record("rm %s", p)
		_ = os.Remove(g.abs(p))
	case r < 12 && len(dirs) > 1: // rm -rf a directory
		p := g.pick(dirs[1:])
		g.record("rm -rf %s", p)
		_ = os.RemoveAll(g.abs(p))
	case r < 22 && len(files) > 0: // edit in place
		p := g.pick(files)
		b := g.content()
		if g.rnd.Intn(3) == 0 {
			g.record("append %d bytes to %s", len(b), p)
			if f, err := os.OpenFile(g.abs(p), os.O_WRONLY|os.O_APPEND, 0); err == nil {
				_, _ = f.Write(b)
				_ = f.Close()
			}
		} else {
			g.record("write %d bytes to %s", len(b), p)
			_ = os.WriteFile(g.abs(p), b, 0o644)
		}
	case r < 32 && len(files) > 0: // editor-style atomic save
		p := g.pick(files)
		b := g.content()
		switch g.rnd.Intn(3) {
		case 0: // write a temp file, rename it over the target
			tmp := g.abs(p) + ".tmp." + strconv.Itoa(g.rnd.Intn(100000))
			g.record("atomic save %s via %s", p, filepath.Base(tmp))
			if os.WriteFile(tmp, b, g.mode()) == nil {
				_ = os.Rename(tmp, g.abs(p))
			}
		case 1: // vim: move to a backup, write anew, drop the backup
			g.record("vim save %s", p)
			_ = os.Rename(g.abs(p), g.abs(p)+"~")
			_ = os.WriteFile(g.abs(p), b, 0o644)
			_ = os.Remove(g.abs(p) + "~")
		default: // JetBrains: keep the old one aside while writing
			g.record("jetbrains save %s", p)
			old := g.abs(p) + "___jb_old___"
			tmp := g.abs(p) + "___jb_tmp___"
			_ = os.WriteFile(tmp, b, 0o644)
			_ = os.Rename(g.abs(p), old)
			_ = os.Rename(tmp, g.abs(p))
			_ = os.Remove(old)
		}
	case r < 35 && len(files) > 0: // chmod
		p := g.pick(files)
		m := g.mode()
		g.record("chmod %o %s", m, p)
		_ = os.Chmod(g.abs(p), m)
	case r < 45 && len(all) > 0: // rename a file or link, maybe over another
		p := g.pick(all)
		to := g.newPath(dirs, "f")
		if g.rnd.Intn(3) == 0 && len(files) > 0 {
			to = g.pick(files)
		}
		g.record("mv %s %s", p, to)
		_ = os.Rename(g.abs(p), g.abs(to))
	case r < 50 && len(dirs) > 1: // rename a directory (not into itself)
		p := g.pick(dirs[1:])
		to := g.newPath(dirs, "d")
		if to != p && !strings.HasPrefix(to, p+"/") {
			g.record("mv %s/ %s", p, to)
			_ = os.Rename(g.abs(p), g.abs(to))
		}
	case r < 56: // mkdir, sometimes with files written at once (mkdir -p a/b && echo > a/b/f)
		p := g.newPath(dirs, "d")
		g.record("mkdir %s", p)
		_ = os.MkdirAll(g.abs(p), 0o755)
		if g.rnd.Intn(2) == 0 {
			sub := filepath.Join(p, g.name("d"))
			g.record("mkdir -p %s with files", sub)
			_ = os.MkdirAll(g.abs(sub), 0o755)
			for i := g.rnd.Intn(4); i >= 0; i-- {
				_ = os.WriteFile(g.abs(filepath.Join(sub, g.name("f"))), g.content(), g.mode())
			}
		}
	case r < 58: // the ignored directory
		p := filepath.Join(nolossSkipDir, g.name("f"))
		g.record("write ignored %s", p)
		_ = os.MkdirAll(g.abs(nolossSkipDir), 0o755)
		_ = os.WriteFile(g.abs(p), g.content(), 0o644)
	case r < 62: // symlink to a sibling name (existing or not): never points out
		p := g.newPath(dirs, "l")
		target := g.name("f")
		g.record("ln -s %s %s", target, p)
		_ = os.Symlink(target, g.abs(p))
	case r < 64 && len(files) > 0: // a file becomes a directory
		p := g.pick(files)
		g.record("replace file %s with a directory", p)
		_ = os.Remove(g.abs(p))
		_ = os.MkdirAll(g.abs(p), 0o755)
		_ = os.WriteFile(g.abs(filepath.Join(p, "inner")), g.content(), 0o644)
	case r < 66 && len(dirs) > 1: // a directory becomes a file
		p := g.pick(dirs[1:])
		g.record("replace directory %s with a file", p)
		_ = os.RemoveAll(g.abs(p))
		_ = os.WriteFile(g.abs(p), g.content(), 0o644)
	case r < 70 && g.burst == 0: // a burst: the next operations without pauses
		g.burst = 5 + g.rnd.Intn(40)
		g.record("burst of %d", g.burst)
	default: // create a file
		p := g.newPath(dirs, "f")
		b := g.content()
		g.record("create %s (%d bytes)", p, len(b))
		_ = os.WriteFile(g.abs(p), b, g.mode())
	}
	if g.burst > 0 {
		g.burst--
		return
	}
	time.Sleep(time.Duration(g.rnd.Intn(15)) * time.Millisecond)
}
