package build

import (
	"strings"
	"testing"

	"github.com/loop-dev/loop/daemon/model"
)

func TestRewriteBases(t *testing.T) {
	df := "# syntax comment stays\nARG BASE=example/base\nFROM --platform=linux/amd64 \\\n  ${BASE} AS app\nRUN echo a \\\n  && echo b\nCOPY --from=example/assets:v1 /a /a\nCOPY --from=app /b /b\nFROM example/other\n"
	got := rewriteBases(df, nil, map[string]string{
		"example/base":      "example/base:loop-1",
		"example/assets:v1": "example/assets:loop-2",
	})
	want := "# syntax comment stays\nARG BASE=example/base\nFROM --platform=linux/amd64 example/base:loop-1 AS app\nRUN echo a \\\n  && echo b\nCOPY --from=example/assets:loop-2 /a /a\nCOPY --from=app /b /b\nFROM example/other\n"
	if got != want {
		t.Errorf("rewritten:\n%s\nwant:\n%s", got, want)
	}
	// A build arg naming another image: that one is not built here.
	if got := rewriteBases(df, map[string]string{"BASE": "example/elsewhere"}, map[string]string{"example/base": "x:1"}); got != df {
		t.Errorf("with BASE=example/elsewhere the Dockerfile changed:\n%s", got)
	}
}

func TestChain(t *testing.T) {
	base := &model.Image{Ref: "example/base", Context: "/b", DockerfileContents: "FROM scratch\n"}
	mid := &model.Image{Ref: "example/mid", Context: "/m", DockerfileContents: "FROM example/base\n"}
	gen := &model.Image{Ref: "example/gen", Custom: &model.CustomBuild{ImageDeps: []string{"example/mid", "example/base"}}}
	top := &model.Image{Ref: "example/top", Context: "/t", DockerfileContents: "FROM example/gen\nCOPY --from=example/base / /\n"}
	all := []*model.Image{top, gen, mid, base}
	chain, err := Chain(top, all)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, i := range chain {
		refs = append(refs, i.Ref)
	}
	if got, want := strings.Join(refs, " "), "example/base example/mid example/gen example/top"; got != want {
		t.Errorf("chain = %s, want %s (bases first, each once)", got, want)
	}

	a := &model.Image{Ref: "a", Context: "/a", DockerfileContents: "FROM b\n"}
	b := &model.Image{Ref: "b", Context: "/b", DockerfileContents: "FROM a\n"}
	if _, err := Chain(a, []*model.Image{a, b}); err == nil || !strings.Contains(err.Error(), "a -> b -> a") {
		t.Errorf("cycle: error %v, want one naming a -> b -> a", err)
	}
}

func TestSourcesIncludeBaseImages(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"base/Dockerfile": "FROM scratch\n", "app/Dockerfile": "FROM example/base\n", "gen/.dockerignore": "tmp\n", "gen.txt": "x"})
	base := &model.Image{Ref: "example/base", Context: dir + "/base", Dockerfile: dir + "/base/Dockerfile"}
	app := &model.Image{Ref: "example/app", Context: dir + "/app", Dockerfile: dir + "/app/Dockerfile"}
	gen := &model.Image{Ref: "example/gen", Ignore: []string{"*.log"}, Custom: &model.CustomBuild{Deps: []string{dir + "/gen", dir + "/gen.txt"}, ImageDeps: []string{"example/app"}}}
	srcs, err := Sources(gen, []*model.Image{base, app, gen})
	if err != nil {
		t.Fatal(err)
	}
	var ctxs []string
	for _, s := range srcs {
		ctxs = append(ctxs, strings.TrimPrefix(s.Context, dir))
	}
	if got, want := strings.Join(ctxs, " "), "/gen /gen.txt /app /base"; got != want {
		t.Fatalf("sources = %s, want %s (own deps first, then the images it is built from)", got, want)
	}
	if m := srcs[0].Ignore; !m.Ignored(dir+"/gen/tmp", false) || !m.Ignored(dir+"/gen/x.log", false) || m.Ignored(dir+"/gen/main.go", false) {
		t.Errorf("a dep's rules: .dockerignore and ignore= relative to the dep, as in Tilt")
	}
	if srcs[1].Ignore != nil {
		t.Errorf("a file dep has no ignore rules")
	}
	if m := LiveIgnore(gen, srcs); !m.Ignored(dir+"/gen/tmp", false) || m.Ignored(dir+"/app/x", false) {
		t.Errorf("live-update rules: the custom_build's own deps' rules only")
	}
}
