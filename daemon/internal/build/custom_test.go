package build

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/image"

	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/testenv"
)

// buildWith runs b.BuildWith and removes every image tagged with the name
// of img or of one it is built from at cleanup.
func buildWith(t *testing.T, b *Builder, img *model.Image, all []*model.Image, opts Options) (Result, string) {
	t.Helper()
	cli := testenv.Docker(t)
	t.Cleanup(func() {
		ctx := context.Background()
		for _, i := range all {
			list, _ := cli.ImageList(ctx, image.ListOptions{})
			for _, s := range list {
				for _, tag := range s.RepoTags {
					if strings.HasPrefix(tag, repository(i.Ref)+":") {
						_, _ = cli.ImageRemove(ctx, tag, image.RemoveOptions{Force: true})
					}
				}
			}
		}
	})
	var logs bytes.Buffer
	res, err := b.BuildWith(context.Background(), img, all, opts, &logs)
	if err != nil {
		t.Fatalf("build %s: %v\n%s", img.Ref, err, logs.String())
	}
	return res, logs.String()
}

// TestCustomBuildRunsAsTilt runs a custom_build whose command builds with the
// docker CLI: it must see $EXPECTED_REF, its env= and the load's variables,
// run in dir, and get the image it is built from (image_deps, a docker_build
// whose Dockerfile is FROM another docker_build) in $TILT_IMAGE_0. The
// result is tagged by content: the same image keeps its ref.
func TestCustomBuildRunsAsTilt(t *testing.T) {
	bb := testenv.Busybox(t)
	dir := t.TempDir()
	name := imageName(t)
	writeTree(t, dir, map[string]string{
		"base/Dockerfile": "FROM " + bb + "\nCOPY greeting /greeting\n",
		"base/greeting":   "hello from base\n",
		"mid/Dockerfile":  "FROM " + name + "-base\nRUN cat /greeting > /mid\n",
		"gen/Dockerfile":  "ARG FROM\nFROM $FROM\nARG WHO\nRUN echo \"built by $WHO\" > /who\n",
		"gen/build.sh": "set -e\n[ \"$(basename \"$PWD\")\" = gen ] || { echo \"wrong dir $PWD\"; exit 1; }\n" +
			"echo \"ref=$EXPECTED_REF image=$EXPECTED_IMAGE tag=$EXPECTED_TAG dep=$TILT_IMAGE_MAP_0\"\n" +
			"docker build -q --label " + testenv.TestLabel + "=1 --build-arg FROM=\"$TILT_IMAGE_0\" --build-arg WHO=\"$WHO\" -t \"$EXPECTED_REF\" .\n",
	})
	base := &model.Image{Ref: name + "-base", Context: dir + "/base", Dockerfile: dir + "/base/Dockerfile"}
	mid := &model.Image{Ref: name + "-mid", Context: dir + "/mid", Dockerfile: dir + "/mid/Dockerfile"}
	gen := &model.Image{Ref: name, Custom: &model.CustomBuild{
		Command: model.Cmd{Argv: []string{"sh", "build.sh"}}, Dir: dir + "/gen", Deps: []string{dir + "/gen"},
		Env: map[string]string{"WHO": "custom_build"}, ImageDeps: []string{name + "-mid"},
	}}
	all := []*model.Image{gen, mid, base}
	b := newBuilder(t)
	res, logs := buildWith(t, b, gen, all, Options{})
	if !strings.HasPrefix(res.Ref, name+":"+TagPrefix) || strings.HasPrefix(res.Ref, name+":"+TagPrefix+"build-") {
		t.Errorf("ref %s, want %s:%s<image ID>", res.Ref, name, TagPrefix)
	}
	for _, want := range []string{"ref=" + name + ":" + TagPrefix + "build-", "image=" + name, "tag=" + TagPrefix + "build-", "dep=" + name + "-mid"} {
		if !strings.Contains(logs, want) {
			t.Errorf("command output lacks %q:\n%s", want, logs)
		}
	}
	if got := runOutput(t, res.Ref, "cat", "/mid", "/who"); got != "hello from base\nbuilt by custom_build\n" {
		t.Errorf("image holds %q, want the base's file through the mid image and the env= value", got)
	}

	// Unchanged inputs: the command runs again (as in Tilt) and makes the same image.
	again, _ := buildWith(t, b, gen, all, Options{})
	if again.Ref != res.Ref {
		t.Errorf("rebuilt unchanged: %s, want %s", again.Ref, res.Ref)
	}
	// A change to the base reaches the custom image.
	writeTree(t, dir, map[string]string{"base/greeting": "hello again\n"})
	changed, _ := buildWith(t, b, gen, all, Options{})
	if changed.Ref == res.Ref {
		t.Errorf("base changed, custom image kept its ref %s", res.Ref)
	}
	if got := runOutput(t, changed.Ref, "cat", "/mid"); got != "hello again\n" {
		t.Errorf("after the base changed the image holds %q", got)
	}
}

func TestCustomBuildModes(t *testing.T) {
	bb := testenv.Busybox(t)
	dir := t.TempDir()
	name := imageName(t)
	writeTree(t, dir, map[string]string{"Dockerfile": "FROM " + bb + "\n"})
	build := "docker build -q --label " + testenv.TestLabel + "=1 -t "
	b := newBuilder(t)
	custom := func(cmd string, cb model.CustomBuild) *model.Image {
		cb.Command, cb.Dir = model.Cmd{Argv: []string{"sh", "-c", cmd}, Shell: true}, dir
		return &model.Image{Ref: name, Custom: &cb}
	}

	t.Run("tag", func(t *testing.T) {
		img := custom(build+name+":mine .", model.CustomBuild{Tag: "mine"})
		res, _ := buildWith(t, b, img, []*model.Image{img}, Options{Registry: func(string) (string, error) { return "", os.ErrInvalid }})
		if !strings.HasPrefix(res.Ref, name+":"+TagPrefix) || res.ForRegistry {
			t.Errorf("ref %s (for registry %v), want a content tag, not named for the registry (tag= knows none)", res.Ref, res.ForRegistry)
		}
	})
	t.Run("outputs_image_ref_to", func(t *testing.T) {
		out := filepath.Join(dir, "ref.txt")
		writeTree(t, dir, map[string]string{"ref.txt": "stale"})
		img := custom(build+name+":written . >/dev/null && echo "+name+":written > ref.txt", model.CustomBuild{OutputsImageRefTo: out})
		res, _ := buildWith(t, b, img, []*model.Image{img}, Options{})
		if res.Ref != name+":written" {
			t.Errorf("ref %s, want the one the command wrote", res.Ref)
		}
	})
	t.Run("registry", func(t *testing.T) {
		img := custom(`case "$EXPECTED_REF" in localhost:5999/*) ;; *) exit 3;; esac; [ "$EXPECTED_REGISTRY" = localhost:5999 ] && `+build+`"$EXPECTED_REF" .`, model.CustomBuild{DisablePush: true})
		res, _ := buildWith(t, b, img, []*model.Image{img}, Options{RegistryHost: "localhost:5999",
			Registry: func(ref string) (string, error) { return "localhost:5999/" + strings.ReplaceAll(ref, "/", "_"), nil }})
		if !res.ForRegistry || !res.NoPush || !strings.HasPrefix(res.Ref, "localhost:5999/") {
			t.Errorf("result %+v, want the registry's name, not to be pushed (disable_push)", res)
		}
	})
	t.Run("no image made", func(t *testing.T) {
		img := custom("true", model.CustomBuild{})
		_, err := b.BuildWith(context.Background(), img, []*model.Image{img}, Options{}, nil)
		if err == nil || !strings.Contains(err.Error(), "skips_local_docker") {
			t.Errorf("error %v, want one saying the command made no image and naming skips_local_docker", err)
		}
	})
	t.Run("command fails", func(t *testing.T) {
		img := custom("echo broken; exit 4", model.CustomBuild{})
		var logs bytes.Buffer
		_, err := b.BuildWith(context.Background(), img, []*model.Image{img}, Options{}, &logs)
		if err == nil || !strings.Contains(err.Error(), "exit status 4") || !strings.Contains(logs.String(), "broken") {
			t.Errorf("error %v (logs %q), want the exit status and the output in the logs", err, logs.String())
		}
	})
	t.Run("skips_local_docker", func(t *testing.T) {
		img := custom(`[ -n "$EXPECTED_REF" ]`, model.CustomBuild{SkipsLocalDocker: true})
		res, _ := buildWith(t, b, img, []*model.Image{img}, Options{})
		if !res.NotLocal || !res.NoPush || !strings.Contains(res.Ref, TagPrefix+"build-") {
			t.Errorf("result %+v, want the expected ref, not local, not pushed", res)
		}
	})
}
