package build

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/testenv"
)

// newBuilder returns a Builder on the real engine whose images carry the
// test label and are removed when the test ends.
func newBuilder(t *testing.T) *Builder {
	t.Helper()
	b := New(testenv.Docker(t))
	b.labels = map[string]string{testenv.TestLabel: "1"}
	return b
}

// build runs b.Build and, when it built an image, removes it (and its tags)
// at cleanup.
func build(t *testing.T, b *Builder, img *model.Image) (Result, string) {
	t.Helper()
	var logs bytes.Buffer
	res, err := b.Build(context.Background(), img, &logs)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, logs.String())
	}
	if res.Cached {
		return res, logs.String() // built, and cleaned up, by whoever built it
	}
	cli := testenv.Docker(t)
	t.Cleanup(func() {
		for _, ref := range append([]string{res.Ref}, img.ExtraTag...) {
			_, _ = cli.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true})
		}
	})
	return res, logs.String()
}

// imageName is a per-run image name, so that images left by an earlier run
// cannot make a first build look cached.
func imageName(t *testing.T) string {
	return fmt.Sprintf("loop-test/build-%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), time.Now().UnixNano())
}

// runOutput runs ref to completion and returns its output.
func runOutput(t *testing.T, ref string, cmd ...string) string {
	t.Helper()
	cli := testenv.Docker(t)
	id := testenv.RunContainer(t, &container.Config{Image: ref, Cmd: cmd}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitC, errC := cli.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case <-waitC:
	case err := <-errC:
		t.Fatalf("wait for %s: %v", id, err)
	}
	rc, err := cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("logs of %s: %v", id, err)
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		t.Fatalf("read logs of %s: %v", id, err)
	}
	return out.String()
}

// sleeper starts ref (busybox-based) idle, for exec.
func sleeper(t *testing.T, ref string) string {
	t.Helper()
	return testenv.RunContainer(t, &container.Config{Image: ref, Cmd: []string{"sleep", "300"}}, nil)
}

func TestBuildScratchStaticBinary(t *testing.T) {
	bin := testenv.StaticBinary(t, "testdata/hello")
	dir := t.TempDir()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, dir, map[string]string{"Dockerfile": "FROM scratch\nENV GREETING=built\nCOPY hello /hello\nENTRYPOINT [\"/hello\"]\n"})
	if err := os.WriteFile(filepath.Join(dir, "hello"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	b := newBuilder(t)
	name := imageName(t)
	img := &model.Image{Ref: name, Context: dir, Dockerfile: filepath.Join(dir, "Dockerfile"), ExtraTag: []string{name + ":extra"}}
	res, logs := build(t, b, img)
	if !strings.HasPrefix(res.Ref, name+":loop-") || res.Cached || res.ImageID == "" {
		t.Fatalf("result %+v", res)
	}
	if res.ContextFiles != 2 || res.ContextBytes < int64(len(data)) {
		t.Errorf("context: %d files, %d bytes", res.ContextFiles, res.ContextBytes)
	}
	if !strings.Contains(logs, "COPY hello /hello") {
		t.Errorf("build log lacks the steps:\n%s", logs)
	}
	if got := runOutput(t, res.Ref); got != "hello from scratch, greeting=built\n" {
		t.Errorf("container printed %q", got)
	}
	insp, err := testenv.Docker(t).ImageInspect(context.Background(), name+":extra")
	if err != nil {
		t.Fatalf("extra tag: %v", err)
	}
	if insp.ID != res.ImageID || insp.Config.Labels[LabelManaged] != "true" || insp.Config.Labels[LabelImage] != res.Ref {
		t.Errorf("image %s labels %v, want id %s and loop labels", insp.ID, insp.Config.Labels, res.ImageID)
	}
}

func TestBuildDockerignore(t *testing.T) {
	busybox := testenv.Busybox(t)
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"Dockerfile":    "FROM " + busybox + "\nCOPY . /app\n",
		".dockerignore": "secret.txt\nlogs\n!logs/keep.log\n",
		"app.txt":       "app",
		"secret.txt":    "secret",
		"logs/a.log":    "a",
		"logs/keep.log": "keep",
		"specific.txt":  "s",
	})
	b := newBuilder(t)
	res, _ := build(t, b, &model.Image{Ref: imageName(t), Context: dir, Dockerfile: filepath.Join(dir, "Dockerfile")})
	id := sleeper(t, res.Ref)
	got := strings.Fields(testenv.Exec(t, id, "ls", "-A", "/app", "/app/logs"))
	want := "/app: Dockerfile app.txt logs specific.txt /app/logs: keep.log"
	if strings.Join(got, " ") != want {
		t.Errorf("ls /app = %q, want %q", strings.Join(got, " "), want)
	}

	// A Dockerfile-specific ignore file wins over .dockerignore.
	writeTree(t, dir, map[string]string{
		"app.Dockerfile":              "FROM " + busybox + "\nCOPY . /app\n",
		"app.Dockerfile.dockerignore": "specific.txt\n*Dockerfile*\n",
	})
	res2, _ := build(t, b, &model.Image{Ref: imageName(t), Context: dir, Dockerfile: filepath.Join(dir, "app.Dockerfile")})
	id2 := sleeper(t, res2.Ref)
	got = strings.Fields(testenv.Exec(t, id2, "ls", "-A", "/app"))
	if want := "app.txt logs secret.txt"; strings.Join(got, " ") != want {
		t.Errorf("with app.Dockerfile.dockerignore: ls /app = %q, want %q", strings.Join(got, " "), want)
	}
}

func TestBuildContentsTargetArgs(t *testing.T) {
	busybox := testenv.Busybox(t)
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"input.txt": "from context"})
	df := "FROM " + busybox + " AS base\n" +
		"ARG GREETING=unset\n" +
		"COPY input.txt /input.txt\n" +
		"RUN echo \"base $GREETING\" > /greeting\n" +
		"FROM base AS final\n" +
		"RUN echo final > /stage\n"
	b := newBuilder(t)
	name := imageName(t)
	img := &model.Image{Ref: name, Context: dir, DockerfileContents: df, Target: "base", BuildArgs: map[string]string{"GREETING": "hi"}}
	res, _ := build(t, b, img)
	if got := runOutput(t, res.Ref, "sh", "-c", "cat /greeting /input.txt; echo; test -e /stage && echo has-stage || true"); got != "base hi\nfrom context\n" {
		t.Errorf("target base: got %q", got)
	}
	final := *img
	final.Target, final.BuildArgs = "final", map[string]string{"GREETING": "yo"}
	res2, _ := build(t, b, &final)
	if res2.Ref == res.Ref {
		t.Fatal("another target and build arg gave the same ref")
	}
	if got := runOutput(t, res2.Ref, "cat", "/greeting", "/stage"); got != "base yo\nfinal\n" {
		t.Errorf("target final: got %q", got)
	}
}

func TestBuildCachedByContent(t *testing.T) {
	busybox := testenv.Busybox(t)
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"Dockerfile": "FROM " + busybox + "\nCOPY msg.txt /msg.txt\n", "msg.txt": "one"})
	b := newBuilder(t)
	img := &model.Image{Ref: imageName(t), Context: dir}
	first, _ := build(t, b, img)
	if first.Cached {
		t.Fatal("first build reported cached")
	}
	again, _ := build(t, b, img)
	if !again.Cached || again.Ref != first.Ref || again.ImageID != first.ImageID {
		t.Fatalf("unchanged context: %+v, first %+v", again, first)
	}
	writeTree(t, dir, map[string]string{"msg.txt": "two"})
	changed, _ := build(t, b, img)
	if changed.Cached || changed.Ref == first.Ref {
		t.Fatalf("changed file: %+v, first %+v", changed, first)
	}
	if got := runOutput(t, changed.Ref, "cat", "/msg.txt"); got != "two" {
		t.Errorf("changed image has %q", got)
	}
	// Going back to the earlier state finds the earlier image.
	writeTree(t, dir, map[string]string{"msg.txt": "one"})
	back, _ := build(t, b, img)
	if !back.Cached || back.Ref != first.Ref || back.ImageID != first.ImageID {
		t.Fatalf("reverted file: %+v, first %+v", back, first)
	}
}

func TestBuildRefusesSymlinkOutside(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"Dockerfile": "FROM scratch\nCOPY . /\n"})
	link := filepath.Join(dir, "passwd")
	if err := os.Symlink("/etc/passwd", link); err != nil {
		t.Fatal(err)
	}
	_, err := newBuilder(t).Build(context.Background(), &model.Image{Ref: imageName(t), Context: dir}, nil)
	if err == nil || !strings.Contains(err.Error(), link) {
		t.Fatalf("got %v, want an error naming %s", err, link)
	}
}

func TestBuildFailingRun(t *testing.T) {
	busybox := testenv.Busybox(t)
	dir := t.TempDir()
	img := &model.Image{Ref: imageName(t), Context: dir,
		DockerfileContents: "FROM " + busybox + "\nRUN echo fine\nRUN echo about to fail && exit 3\n"}
	var logs bytes.Buffer
	res, err := newBuilder(t).Build(context.Background(), img, &logs)
	if err == nil {
		t.Fatalf("build succeeded: %+v", res)
	}
	for _, want := range []string{"echo about to fail && exit 3", "3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !strings.Contains(logs.String(), "about to fail") {
		t.Errorf("logs lack the failing step's output:\n%s", logs.String())
	}
}
