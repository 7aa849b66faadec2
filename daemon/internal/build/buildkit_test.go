package build

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/testenv"
)

func TestUseBuildKit(t *testing.T) {
	t.Setenv("DOCKER_BUILDKIT", "")
	for _, c := range []struct {
		df   string
		want bool
	}{
		{"FROM a\nRUN go build ./...\nCOPY . /src\n", false},
		{"# syntax=docker/dockerfile:1.7\nFROM a\n", true},
		{"FROM a\nRUN --mount=type=cache,target=/root/.cache go build\n", true},
		{"FROM a\nRUN --network=none --mount=type=secret,id=x cat /run/secrets/x\n", true},
		{"FROM a\nCOPY --chmod=755 run.sh /run.sh\n", true},
		{"FROM a\nCOPY --from=b --link /out /out\n", true},
		{"FROM a\nCOPY --chown=1:1 a /a\n", false},
		{"FROM a\nRUN <<EOF\necho hi\nEOF\n", true},
		{"FROM a\n# RUN --mount=type=cache is only a comment here\nRUN echo\n", false},
	} {
		if got := useBuildKit([]byte(c.df)); got != c.want {
			t.Errorf("useBuildKit(%q) = %v, want %v", c.df, got, c.want)
		}
	}
	t.Setenv("DOCKER_BUILDKIT", "0")
	if useBuildKit([]byte("FROM a\nRUN --mount=type=cache,target=/c true\n")) {
		t.Error("DOCKER_BUILDKIT=0: BuildKit used")
	}
	t.Setenv("DOCKER_BUILDKIT", "1")
	if !useBuildKit([]byte("FROM a\n")) {
		t.Error("DOCKER_BUILDKIT=1: BuildKit not used")
	}
}

func TestSyntaxDirective(t *testing.T) {
	ref, without, ok := syntaxDirective([]byte("# syntax = docker/dockerfile:1\n# escape=\\\nFROM a\n"))
	if !ok || ref != "docker/dockerfile:1" || without != "# escape=\\\nFROM a\n" {
		t.Errorf("got %q %q %v", ref, without, ok)
	}
	if _, _, ok := syntaxDirective([]byte("FROM a\n# syntax=docker/dockerfile:1\n")); ok {
		t.Error("a syntax comment after the first instruction is not a directive")
	}
}

// A Dockerfile Tilt and Compose build with BuildKit (a # syntax= line
// naming a frontend this machine lacks, a cache mount, COPY --chmod) builds
// on the real engine with BuildKit: the output is shown step by step, the
// cache mount persists between builds, the mode is set, and a failing step
// is named in the error with its output in the log.
func TestBuildKitDockerfile(t *testing.T) {
	t.Setenv("DOCKER_BUILDKIT", "")
	busybox := testenv.Busybox(t)
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"run.sh": "echo run\n",
		"Dockerfile": "# syntax=loop-test/no-such-frontend:1\nFROM " + busybox + "\n" +
			"RUN --mount=type=cache,target=/cache sh -c 'echo built >> /cache/count; wc -l < /cache/count > /count'\n" +
			"COPY --chmod=751 run.sh /run.sh\n",
	})
	b := newBuilder(t)
	res, logs := build(t, b, &model.Image{Ref: imageName(t), Context: dir})
	if !strings.Contains(logs, "loop-test/no-such-frontend:1, which is not on this machine") {
		t.Errorf("logs do not say the frontend was left out:\n%s", logs)
	}
	for _, want := range []string{"RUN --mount=type=cache,target=/cache", "COPY --chmod=751 run.sh /run.sh", "DONE"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if got := strings.TrimSpace(runOutput(t, res.Ref, "stat", "-c", "%a", "/run.sh")); got != "751" {
		t.Errorf("mode of /run.sh = %q, want 751", got)
	}
	// A second image from the same steps with another file: its RUN sees the
	// same cache mount, which the first build wrote to.
	writeTree(t, dir, map[string]string{"run.sh": "echo run again\n",
		"Dockerfile": "FROM " + busybox + "\nCOPY --chmod=751 run.sh /run.sh\n" +
			"RUN --mount=type=cache,target=/cache sh -c 'echo built >> /cache/count; wc -l < /cache/count > /count'\n"})
	res2, _ := build(t, b, &model.Image{Ref: imageName(t), Context: dir})
	if got := strings.TrimSpace(runOutput(t, res2.Ref, "cat", "/count")); got == "1" || got == "" {
		t.Errorf("the second build's cache mount held %q lines, want the first build's line too", got)
	}

	img := &model.Image{Ref: imageName(t), Context: dir,
		DockerfileContents: "FROM " + busybox + "\nRUN --mount=type=tmpfs,target=/t sh -c 'echo about to fail; exit 3'\n"}
	var flog bytes.Buffer
	_, err := b.Build(context.Background(), img, &flog)
	if err == nil || !strings.Contains(err.Error(), "RUN --mount=type=tmpfs,target=/t") {
		t.Errorf("err = %v, want one naming the failing step", err)
	}
	if !strings.Contains(flog.String(), "about to fail") {
		t.Errorf("logs lack the failing step's output:\n%s", flog.String())
	}
}

// docker_build(secret=, ssh=) on the real engine: a BuildKit session gives
// a RUN step the secrets (from a file and from the environment) and an SSH
// agent's socket; none of it is in the context.
func TestBuildSecretsAndSSH(t *testing.T) {
	busybox := testenv.Busybox(t)
	dir := t.TempDir()
	secretFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secretFile, []byte("from-file"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOOP_TEST_BUILD_SECRET", "from-env")
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatalf("start ssh-agent: %v", err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	secrets, err := model.ParseSecretSpecs([]string{"id=file,src=" + secretFile, "id=envtok,env=LOOP_TEST_BUILD_SECRET"}, func(p string) string { return p })
	if err != nil {
		t.Fatal(err)
	}
	img := &model.Image{Ref: imageName(t), Context: dir, BuildSecrets: secrets, SSH: []string{"default=" + sock},
		DockerfileContents: "FROM " + busybox + "\n" +
			"RUN --mount=type=secret,id=file --mount=type=secret,id=envtok sh -c 'cat /run/secrets/file /run/secrets/envtok > /seen'\n" +
			"RUN --mount=type=ssh sh -c 'test -S \"$SSH_AUTH_SOCK\" && echo agent > /ssh'\n"}
	res, logs := build(t, newBuilder(t), img)
	if got := runOutput(t, res.Ref, "cat", "/seen", "/ssh"); got != "from-filefrom-envagent\n" {
		t.Errorf("secrets and agent seen by the build: %q, want %q\n%s", got, "from-filefrom-envagent\n", logs)
	}

	// A secret file that is not there: the error names it, before any build.
	img2 := &model.Image{Ref: imageName(t), Context: dir, BuildSecrets: []string{"id=gone,src=" + filepath.Join(dir, "gone")},
		DockerfileContents: "FROM " + busybox + "\n"}
	if _, err := newBuilder(t).Build(context.Background(), img2, io.Discard); err == nil || !strings.Contains(err.Error(), "build secret gone") {
		t.Errorf("missing secret file: err = %v", err)
	}
}
