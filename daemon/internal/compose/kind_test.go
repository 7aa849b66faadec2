package compose

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/loop-dev/loop/daemon/model"
)

// dc_resource(image=) names the image a service runs: the docker_build of
// that ref builds it, not the one named by the compose file.
func TestKindLoadDCResourceImage(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"compose.yaml":      "services:\n  web:\n    image: example/compose-web\n  db:\n    image: example/db\n",
		"web/Dockerfile":    "FROM scratch\n",
		"other/Dockerfile":  "FROM scratch\n",
		"db-ctx/Dockerfile": "FROM scratch\n",
	})
	img := func(ref, ctx string) *model.Image {
		return &model.Image{Ref: ref, Context: filepath.Join(dir, ctx), Dockerfile: filepath.Join(dir, ctx, "Dockerfile")}
	}
	cfg := &model.Config{
		Tiltfile:    filepath.Join(dir, "Tiltfile"),
		Compose:     []*model.ComposeProject{{Paths: []string{filepath.Join(dir, "compose.yaml")}}},
		Images:      []*model.Image{img("example/compose-web", "web"), img("example/other", "other"), img("example/db", "db-ctx")},
		DCResources: []*model.DCResource{{Name: "web", Image: "example/other"}},
	}
	out, err := (&Kind{}).Load(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range out.Resources {
		if len(r.Inputs.Images) != 1 {
			t.Fatalf("resource %s builds %d images, want 1", r.Name, len(r.Inputs.Images))
		}
		got[r.Name] = r.Inputs.Images[0].Context
	}
	want := map[string]string{"web": filepath.Join(dir, "other"), "db": filepath.Join(dir, "db-ctx")}
	if len(got) != len(want) || got["web"] != want["web"] || got["db"] != want["db"] {
		t.Errorf("built contexts %v, want %v", got, want)
	}
}
