package liveupdate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loop-dev/loop/daemon/model"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	p := func(rel string) string { return filepath.Join(dir, rel) }
	if err := os.WriteFile(p("Dockerfile.child"), []byte("# a child image\nARG BASE=example/unused\nFROM --platform=linux/amd64 \\\n  ${BASE} AS app\nCOPY --from=example/assets:v1 /a /a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	at := model.Position{File: p("Tiltfile"), Line: 12, Col: 5}
	lu := func(syncs ...string) *model.LiveUpdate {
		l := &model.LiveUpdate{Pos: model.Position{File: p("Tiltfile"), Line: 10, Col: 1}}
		for _, s := range syncs {
			l.Syncs = append(l.Syncs, model.Sync{LocalPath: p(s), ContainerPath: "/app", Pos: at})
		}
		return l
	}
	base := &model.Image{Ref: "example/base", Context: p("src"), Dockerfile: p("src/Dockerfile")}
	assets := &model.Image{Ref: "example/assets:v1", Context: p("assets")}
	other := &model.Image{Ref: "example/assets:v2", Context: p("v2")}
	gen := &model.Image{Ref: "example/gen", Context: dir, Custom: &model.CustomBuild{Deps: []string{p("gen")}}}
	all := []*model.Image{base, assets, other, gen}
	for _, tc := range []struct {
		name string
		img  *model.Image
		want string // "" for valid
	}{
		{"a sync under the context", &model.Image{Ref: "a", Context: p("src"), LiveUpdate: lu("src/app")}, ""},
		{"a sync outside the context", &model.Image{Ref: "a", Context: p("src"), LiveUpdate: lu("other")},
			p("Tiltfile") + ":12:5: check the live_update of a: sync source " + p("other") + " is not under a path the image or an image it is built from watches (" + p("src") + ")"},
		{"a sync under the context of the image FROM names (dockerfile_contents)",
			&model.Image{Ref: "child", Context: p("ext"), DockerfileContents: "FROM example/base\nRUN true\n", LiveUpdate: lu("src/app")}, ""},
		{"FROM with a build arg; COPY --from with a tag",
			&model.Image{Ref: "child", Context: p("ext"), Dockerfile: p("Dockerfile.child"), BuildArgs: map[string]string{"BASE": "example/base:dev"},
				LiveUpdate: lu("src/app", "assets/x")}, ""},
		{"a tag that is not the one built",
			&model.Image{Ref: "child", Context: p("ext"), DockerfileContents: "FROM example/assets:v3\n", LiveUpdate: lu("assets/x")},
			"sync source " + p("assets/x") + " is not under"},
		{"the ARG default when no build arg is given",
			&model.Image{Ref: "child", Context: p("ext"), Dockerfile: p("Dockerfile.child"), LiveUpdate: lu("src/app")},
			"(" + p("ext") + ", " + p("assets") + ")"},
		{"a custom_build watches its deps, and its image_deps' paths",
			&model.Image{Ref: "c", Context: dir, Custom: &model.CustomBuild{Deps: []string{p("c")}, ImageDeps: []string{"example/gen"}}, LiveUpdate: lu("c/x", "gen/y")}, ""},
		{"a fall_back_on path outside",
			&model.Image{Ref: "a", Context: p("src"), LiveUpdate: &model.LiveUpdate{FallBackOn: []string{p("go.mod")}, Pos: model.Position{File: p("Tiltfile"), Line: 10, Col: 1}}},
			p("Tiltfile") + ":10:1: check the live_update of a: fall_back_on path " + p("go.mod") + " is not under"},
		{"no live_update", &model.Image{Ref: "a", Context: p("src")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.img, append(all, tc.img))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestWatchedPathsFollowBaseImagesOnce(t *testing.T) {
	a := &model.Image{Ref: "a", Context: "/a", DockerfileContents: "FROM b\n"}
	b := &model.Image{Ref: "b", Context: "/b", DockerfileContents: "FROM a\nFROM c\n"}
	c := &model.Image{Ref: "c", Context: "/a"}
	if got := strings.Join(WatchedPaths(a, []*model.Image{a, b, c}), " "); got != "/a /b" {
		t.Errorf("watched = %s, want /a /b (a cycle and a repeat are visited once)", got)
	}
}
