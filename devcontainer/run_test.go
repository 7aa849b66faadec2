package devcontainer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/devcontainer"
	"github.com/loop-dev/loop/internal/testenv"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// setup loads the workspace's config and returns a Runner whose containers
// are labelled as test containers and removed when the test ends.
func setup(t *testing.T, ws string) (*devcontainer.Runner, *devcontainer.Config, *bytes.Buffer) {
	t.Helper()
	cli := testenv.Docker(t)
	testenv.Busybox(t)
	c, err := devcontainer.Load(devcontainer.LoadOptions{WorkspaceFolder: ws})
	if err != nil {
		t.Fatal(err)
	}
	r := devcontainer.NewRunner(cli, daemon.DevcontainerBuilder(cli))
	var out bytes.Buffer
	r.Out = &out
	r.Labels = map[string]string{testenv.TestLabel: "1"}
	t.Cleanup(func() {
		if _, err := r.Down(context.Background(), c); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	return r, c, &out
}

func execOut(t *testing.T, r *devcontainer.Runner, c *devcontainer.Config, argv ...string) string {
	t.Helper()
	var out bytes.Buffer
	code, err := r.Exec(context.Background(), c, argv, nil, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("exec %v: code %d, err %v: %s", argv, code, err, out.String())
	}
	return out.String()
}

func TestUpImageLifecycleReuseExecDown(t *testing.T) {
	ctx := context.Background()
	ws := t.TempDir()
	writeFiles(t, ws, map[string]string{
		"extra/file.txt": "extra\n",
		".devcontainer/devcontainer.json": `{
	// image-based, with everything the runner sets on the container
	"image": "loop-test/busybox:latest",
	"workspaceFolder": "/work/${localWorkspaceFolderBasename}",
	"containerEnv": {"CENV": "c"},
	"remoteEnv": {"RENV": "r-${containerEnv:CENV}"},
	"remoteUser": "nobody",
	"mounts": ["type=bind,source=${localWorkspaceFolder}/extra,target=/extra,readonly",
		{"type": "tmpfs", "target": "/scratch"}],
	"initializeCommand": "echo init >> init.log",
	"onCreateCommand": "echo onCreate >> /tmp/order",
	"updateContentCommand": ["sh", "-c", "echo updateContent >> /tmp/order"],
	"postCreateCommand": {"a": "echo a > /tmp/post-a; echo postCreate >> /tmp/order", "b": ["sh", "-c", "pwd > /tmp/post-b"]},
	"postStartCommand": "echo postStart >> /tmp/order",
	"postAttachCommand": "echo postAttach >> /tmp/order",
}`})
	r, c, out := setup(t, ws)
	cli := testenv.Docker(t)

	res, err := r.Up(ctx, c)
	if err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	if !res.Created || res.RemoteUser != "nobody" {
		t.Errorf("first up: got %+v, want created with remote user nobody", res)
	}
	insp, err := cli.ContainerInspect(ctx, res.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	folder := "/work/" + filepath.Base(ws)
	cfgPath := filepath.Join(ws, ".devcontainer", "devcontainer.json")
	if got := insp.Config.Labels[devcontainer.LabelLocalFolder]; got != ws {
		t.Errorf("label %s: got %q, want %q", devcontainer.LabelLocalFolder, got, ws)
	}
	if got := insp.Config.Labels[devcontainer.LabelConfigFile]; got != cfgPath {
		t.Errorf("label %s: got %q, want %q", devcontainer.LabelConfigFile, got, cfgPath)
	}
	var meta []map[string]any
	if err := json.Unmarshal([]byte(insp.Config.Labels[devcontainer.LabelMetadata]), &meta); err != nil || len(meta) == 0 || meta[len(meta)-1]["remoteUser"] != "nobody" {
		t.Errorf("label %s: got %q (%v), want remoteUser nobody", devcontainer.LabelMetadata, insp.Config.Labels[devcontainer.LabelMetadata], err)
	}
	if !contains(insp.Config.Env, "CENV=c") {
		t.Errorf("container env %v lacks CENV=c", insp.Config.Env)
	}
	mounts := map[string]container.MountPoint{}
	for _, m := range insp.Mounts {
		mounts[m.Destination] = m
	}
	if m, ok := mounts[folder]; !ok || m.Source != ws || !m.RW {
		t.Errorf("workspace mount at %s: got %+v", folder, m)
	}
	if m, ok := mounts["/extra"]; !ok || m.Source != filepath.Join(ws, "extra") || m.RW {
		t.Errorf("read-only /extra mount: got %+v", m)
	}
	if m, ok := mounts["/scratch"]; !ok || m.Type != "tmpfs" {
		t.Errorf("tmpfs /scratch: got %+v", m)
	}

	order := "onCreate\nupdateContent\npostCreate\npostStart\npostAttach\n"
	if got := execOut(t, r, c, "cat", "/tmp/order"); got != order {
		t.Errorf("lifecycle order: got %q, want %q", got, order)
	}
	if got := execOut(t, r, c, "cat", "/tmp/post-a", "/tmp/post-b"); got != "a\n"+folder+"\n" {
		t.Errorf("parallel postCreateCommand: got %q", got)
	}
	if got := execOut(t, r, c, "sh", "-c", `pwd; id -u; echo "$RENV"; cat extra/file.txt`); got != folder+"\n65534\nr-c\nextra\n" {
		t.Errorf("exec (workspace folder, remote user, remoteEnv, workspace files): got %q", got)
	}

	// A second up reuses the container and runs only postAttachCommand.
	res2, err := r.Up(ctx, c)
	if err != nil {
		t.Fatalf("second up: %v\n%s", err, out)
	}
	if res2.Created || res2.ContainerID != res.ContainerID {
		t.Errorf("second up: got %+v, want the container %s reused", res2, res.ContainerID)
	}
	order += "postAttach\n"
	if got := execOut(t, r, c, "cat", "/tmp/order"); got != order {
		t.Errorf("after second up: got %q, want %q", got, order)
	}

	// A stopped container is started again: postStartCommand runs again,
	// the create-time commands do not.
	if err := cli.ContainerStop(ctx, res.ContainerID, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Up(ctx, c); err != nil {
		t.Fatalf("up after stop: %v\n%s", err, out)
	}
	order += "postStart\npostAttach\n"
	if got := execOut(t, r, c, "cat", "/tmp/order"); got != order {
		t.Errorf("after restart: got %q, want %q", got, order)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "init.log")); err != nil || string(b) != "init\ninit\ninit\n" {
		t.Errorf("initializeCommand on the host once per up: got %q, %v", b, err)
	}

	if n, err := r.Down(ctx, c); err != nil || n != 1 {
		t.Fatalf("down: %d, %v", n, err)
	}
	if _, ok, err := r.Find(ctx, c); err != nil || ok {
		t.Errorf("after down: found=%v err=%v", ok, err)
	}
	if _, err := r.Exec(ctx, c, []string{"true"}, nil, nil, nil); err == nil {
		t.Error("exec after down: want an error")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestUpBuildWithLocalFeature(t *testing.T) {
	ctx := context.Background()
	ws := t.TempDir()
	writeFiles(t, ws, map[string]string{
		".devcontainer/Dockerfile": "FROM loop-test/busybox:latest AS base\nARG GREETING\nRUN echo \"$GREETING\" > /greeting\nFROM base AS dev\nRUN echo dev > /stage\n",
		".devcontainer/devcontainer.json": `{
	"build": {"dockerfile": "Dockerfile", "context": "..", "args": {"GREETING": "hi ${localEnv:NO_SUCH_VAR_X:there}"}, "target": "base"},
	"overrideCommand": true,
	"features": {"./hello": {"message": "from feature"}},
	"remoteEnv": {"FROM_FEATURE": "${containerEnv:HELLO_FEATURE}"},
}`,
		".devcontainer/hello/devcontainer-feature.json": `{"id": "hello", "version": "1.0.0",
	"options": {"message": {"type": "string", "default": "default"}, "loud": {"type": "boolean", "default": false}},
	"containerEnv": {"HELLO_FEATURE": "installed"}}`,
		".devcontainer/hello/install.sh": "#!/bin/sh\nset -e\necho \"$MESSAGE $LOUD $_REMOTE_USER\" > /feature-message\n",
	})
	r, c, out := setup(t, ws)
	cli := testenv.Docker(t)
	res, err := r.Up(ctx, c)
	if err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		// The derived Features image and the built base image, once the
		// container using them is gone.
		_, _ = r.Down(context.Background(), c)
		base := "loop-devcontainer/" + devcontainer.ID(c.LocalWorkspaceFolder, c.Path)
		for _, ref := range []string{base + "-features", base} { // children first
			imgs, _ := cli.ImageList(context.Background(), image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", ref))})
			for _, img := range imgs {
				for _, tag := range img.RepoTags {
					_, _ = cli.ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true})
				}
			}
		}
	})
	if !strings.HasPrefix(res.Image, "loop-devcontainer/") || !strings.HasSuffix(strings.Split(res.Image, ":")[0], "-features") {
		t.Errorf("image %q: want the derived Features image", res.Image)
	}
	got := execOut(t, r, c, "sh", "-c", `cat /greeting /feature-message; echo "$FROM_FEATURE"; test -e /stage && echo wrong-target || echo base-target`)
	if want := "hi there\nfrom feature false root\ninstalled\nbase-target\n"; got != want {
		t.Errorf("build args, Feature options and env, target: got %q, want %q", got, want)
	}
}

func TestUpFailingCommandStops(t *testing.T) {
	ctx := context.Background()
	ws := t.TempDir()
	writeFiles(t, ws, map[string]string{".devcontainer/devcontainer.json": `{
	"image": "loop-test/busybox:latest",
	"onCreateCommand": "echo onCreate >> /tmp/order",
	"postCreateCommand": ["sh", "-c", "echo boom-output; echo boom-err >&2; exit 3"],
	"postStartCommand": "echo postStart >> /tmp/order",
}`})
	r, c, out := setup(t, ws)
	_, err := r.Up(ctx, c)
	if err == nil {
		t.Fatalf("up: want postCreateCommand's failure\n%s", out)
	}
	for _, want := range []string{"postCreateCommand", "exit code 3", "boom-output", "boom-err"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if got := execOut(t, r, c, "cat", "/tmp/order"); got != "onCreate\n" {
		t.Errorf("commands after the failure must not run: got %q", got)
	}
	// The next up retries the failed command (it was not marked done) and
	// does not repeat the one that succeeded.
	if _, err := r.Up(ctx, c); err == nil || !strings.Contains(err.Error(), "boom-output") {
		t.Errorf("second up: got %v, want the same failure", err)
	}
	if got := execOut(t, r, c, "cat", "/tmp/order"); got != "onCreate\n" {
		t.Errorf("after second up: got %q", got)
	}
}

// TestHostPathMappingInsideDevContainer runs `loop ci` inside a dev
// container started by loop, with the engine's socket mounted and the
// workspace mounted at another path than on the host: the Compose service's
// bind mount must reach the host's workspace files. With mapping turned off
// the same run fails, so the mapping is what makes it pass.
func TestHostPathMappingInsideDevContainer(t *testing.T) {
	ctx := context.Background()
	cli := testenv.Docker(t)
	bin := testenv.StaticBinary(t, "../cmd/loop")
	ws := t.TempDir()
	// The container-side folder does not exist on the host: without mapping
	// the engine would create it there, empty (inside a temp dir).
	inside := filepath.Join(t.TempDir(), "ws")
	project := "loop-hostpath-" + devcontainer.ID(ws, "")[:8]
	writeFiles(t, ws, map[string]string{
		".devcontainer/devcontainer.json": `{
	"image": "loop-test/busybox:latest",
	"workspaceFolder": "` + inside + `",
	"workspaceMount": "type=bind,source=${localWorkspaceFolder},target=` + inside + `",
	"mounts": ["type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock",
		"type=bind,source=` + filepath.Dir(bin) + `,target=/opt/loop,readonly"],
}`,
		"app/Tiltfile": "docker_compose('compose.yaml', project_name='" + project + "')\n",
		"app/compose.yaml": `services:
  reader:
    image: loop-test/busybox:latest
    command: ["sh", "-c", "cat /site/hello.txt || exit 1; exec sleep 3600"]
    volumes: ["./site:/site"]
    healthcheck:
      test: ["CMD", "test", "-f", "/site/hello.txt"]
      interval: 1s
      timeout: 2s
      retries: 5
`,
		"app/site/hello.txt": "hello from the host workspace\n",
	})
	r, c, out := setup(t, ws)
	removeProject := func() {
		list, _ := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+project))})
		for _, ctr := range list {
			_ = cli.ContainerRemove(ctx, ctr.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		}
		nets, _ := cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+project))})
		for _, n := range nets {
			_ = cli.NetworkRemove(ctx, n.ID)
		}
	}
	t.Cleanup(removeProject)
	if _, err := r.Up(ctx, c); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	loopCI := func(env string) (string, int) {
		var b bytes.Buffer
		code, err := r.Exec(ctx, c, []string{"sh", "-c", "cd app && " + env + " /opt/loop/loop ci --timeout 60s 2>&1"}, nil, &b, &b)
		if err != nil {
			t.Fatalf("exec loop ci: %v", err)
		}
		return b.String(), code
	}

	got, code := loopCI("")
	if code != 0 {
		t.Fatalf("loop ci in the dev container: exit %d\n%s", code, got)
	}
	if !strings.Contains(got, "host-path mapping active") {
		t.Errorf("loop ci output does not say mapping is active:\n%s", got)
	}
	list, err := cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+project))})
	if err != nil || len(list) != 1 {
		t.Fatalf("compose containers of %s: %v, %v", project, list, err)
	}
	insp, err := cli.ContainerInspect(ctx, list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	var src string
	for _, m := range insp.Mounts {
		if m.Destination == "/site" {
			src = m.Source
		}
	}
	if want := filepath.Join(ws, "app", "site"); src != want {
		t.Errorf("bind source of /site: got %q, want the host path %q", src, want)
	}
	if got := testenv.Exec(t, list[0].ID, "cat", "/site/hello.txt"); got != "hello from the host workspace\n" {
		t.Errorf("the bind mount shows %q, want the workspace file", got)
	}

	removeProject()
	got, code = loopCI(hostpathOff)
	if code == 0 {
		t.Errorf("loop ci with %s succeeded; without mapping the bind mount cannot show the workspace:\n%s", hostpathOff, got)
	}
}

const hostpathOff = "LOOP_HOST_PATH_MAPPING=off"

// An image without /etc/passwd (scratch plus a static busybox) has no user
// names: loop's own bookkeeping in the container (lifecycle markers, the
// Features build) runs as uid 0, which works there, not as the name root.
func TestUpImageWithoutPasswd(t *testing.T) {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("no static busybox to build the image from (install busybox-static): %v", err)
	}
	ref := testenv.BuildImage(t, "loop-test/nopasswd:latest", map[string][]byte{
		"Dockerfile": []byte("FROM scratch\nCOPY busybox /bin/busybox\n" +
			"RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nENV PATH=/bin\nCMD [\"/bin/sh\"]\n"),
		"busybox": bb,
	})
	feature := map[string]string{
		".devcontainer/hello/devcontainer-feature.json": `{"id": "hello", "version": "1.0.0"}`,
		".devcontainer/hello/install.sh":                "#!/bin/sh\nset -e\necho feature > /feature\n",
	}
	for _, tc := range []struct {
		name, features, want string
	}{
		{"image", "", "onCreate\npostStart\n"},
		{"features", `"features": {"./hello": {}},`, "feature\nonCreate\npostStart\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ws := t.TempDir()
			writeFiles(t, ws, map[string]string{".devcontainer/devcontainer.json": `{
	"image": "` + ref + `",` + tc.features + `
	"onCreateCommand": "echo onCreate >> /order",
	"postStartCommand": "echo postStart >> /order",
}`})
			if tc.features != "" {
				writeFiles(t, ws, feature)
			}
			r, c, out := setup(t, ws)
			cli := testenv.Docker(t)
			t.Cleanup(func() {
				_, _ = r.Down(context.Background(), c)
				ref := "loop-devcontainer/" + devcontainer.ID(c.LocalWorkspaceFolder, c.Path) + "-features"
				imgs, _ := cli.ImageList(context.Background(), image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", ref))})
				for _, img := range imgs {
					for _, tag := range img.RepoTags {
						_, _ = cli.ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true})
					}
				}
			})
			if _, err := r.Up(ctx, c); err != nil {
				t.Fatalf("up: %v\n%s", err, out)
			}
			// Reused: the markers are read, and onCreate does not run again.
			if res, err := r.Up(ctx, c); err != nil || res.Created {
				t.Fatalf("second up: %+v, %v\n%s", res, err, out)
			}
			got := execOut(t, r, c, "sh", "-c", `test -e /etc/passwd && echo has-passwd; cat /feature /order 2>/dev/null; true`)
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
