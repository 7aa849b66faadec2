package liveupdate

import (
	"reflect"
	"testing"

	"github.com/loop-dev/loop/daemon/model"
)

func testLU() *model.LiveUpdate {
	return &model.LiveUpdate{
		FallBackOn: []string{"/p/package.json", "/p/src/gen/**/*.proto"},
		Syncs: []model.Sync{
			{LocalPath: "/p/src", ContainerPath: "/app/src"},
			{LocalPath: "/p/src/static", ContainerPath: "/srv/static"},
			{LocalPath: "/p/conf.yaml", ContainerPath: "/etc/app/conf.yaml"},
		},
		Runs: []model.Run{
			{Cmd: model.Cmd{Argv: []string{"always"}}},
			{Cmd: model.Cmd{Argv: []string{"npm", "install"}}, Triggers: []string{"/p/src/package-lock.json"}},
			{Cmd: model.Cmd{Argv: []string{"make", "css"}}, Triggers: []string{"/p/src/**/*.scss"}},
		},
		RestartOn: []string{"/p/src/config", "/p/restart.txt"},
		Ignore:    []string{"/p/src/**/*.swp", "/p/src/node_modules"},
	}
}

func argvs(runs []model.Run) [][]string {
	var out [][]string
	for _, r := range runs {
		out = append(out, r.Cmd.Argv)
	}
	return out
}

func TestPlanSyncsMapsPathsAndPicksMostSpecificSync(t *testing.T) {
	d, err := Plan(testLU(), []Change{
		{Path: "/p/src/main.go"},
		{Path: "/p/src/static/css/site.css"},
		{Path: "/p/conf.yaml"},
		{Path: "/p/src/old.go", Deleted: true},
		{Path: "/p/src/main.go"}, // reported twice
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.FallBack != nil || d.Update == nil {
		t.Fatalf("decision = %+v, want an update", d)
	}
	got := map[string]FileSync{}
	for _, f := range d.Update.Files {
		got[f.LocalPath] = f
	}
	want := map[string]string{
		"/p/src/main.go":             "/app/src/main.go",
		"/p/src/static/css/site.css": "/srv/static/css/site.css",
		"/p/conf.yaml":               "/etc/app/conf.yaml",
		"/p/src/old.go":              "/app/src/old.go",
	}
	if len(got) != len(want) || len(d.Update.Files) != len(want) {
		t.Fatalf("files = %+v, want %v", d.Update.Files, want)
	}
	for lp, cp := range want {
		if got[lp].ContainerPath != cp {
			t.Errorf("%s -> %q, want %q", lp, got[lp].ContainerPath, cp)
		}
	}
	if !got["/p/src/old.go"].Deleted || got["/p/src/main.go"].Deleted {
		t.Errorf("deleted flags wrong: %+v", d.Update.Files)
	}
	for i := 1; i < len(d.Update.Files); i++ {
		if d.Update.Files[i-1].ContainerPath > d.Update.Files[i].ContainerPath {
			t.Errorf("files not sorted by container path: %+v", d.Update.Files)
		}
	}
	if wantRuns := [][]string{{"always"}}; !reflect.DeepEqual(argvs(d.Update.Runs), wantRuns) {
		t.Errorf("runs = %v, want %v", argvs(d.Update.Runs), wantRuns)
	}
	if d.Update.Restart {
		t.Error("restart set without restart_container or restart_on match")
	}
}

func TestPlanFallBack(t *testing.T) {
	cases := []struct {
		name    string
		changes []Change
		path    string
		reason  string
	}{
		{"fall_back_on file", []Change{{Path: "/p/src/a.go"}, {Path: "/p/package.json"}}, "/p/package.json", "matches fall_back_on"},
		{"fall_back_on glob", []Change{{Path: "/p/src/gen/v1/api.proto"}}, "/p/src/gen/v1/api.proto", "matches fall_back_on"},
		{"outside every sync", []Change{{Path: "/p/src/a.go"}, {Path: "/p/Dockerfile"}}, "/p/Dockerfile", "not under any sync"},
		{"sibling with a common prefix", []Change{{Path: "/p/srcx/a.go"}}, "/p/srcx/a.go", "not under any sync"},
		{"fall_back_on wins over an earlier unsynced change", []Change{{Path: "/p/Dockerfile"}, {Path: "/p/package.json"}}, "/p/package.json", "matches fall_back_on"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := Plan(testLU(), c.changes)
			if err != nil {
				t.Fatal(err)
			}
			if d.Update != nil || d.FallBack == nil {
				t.Fatalf("decision = %+v, want fall back", d)
			}
			if d.FallBack.Path != c.path || d.FallBack.Reason != c.reason {
				t.Errorf("fall back = %+v, want %s (%s)", d.FallBack, c.path, c.reason)
			}
		})
	}
}

func TestPlanIgnore(t *testing.T) {
	d, err := Plan(testLU(), []Change{{Path: "/p/src/.main.go.swp"}, {Path: "/p/src/node_modules/x/index.js"}})
	if err != nil {
		t.Fatal(err)
	}
	if d.FallBack != nil || d.Update != nil {
		t.Fatalf("only ignored changes gave %+v, want nothing to do", d)
	}
	d, err = Plan(testLU(), []Change{{Path: "/p/src/deep/x.swp"}, {Path: "/p/src/a.go"}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Update == nil || len(d.Update.Files) != 1 || d.Update.Files[0].LocalPath != "/p/src/a.go" {
		t.Fatalf("update = %+v, want only a.go", d.Update)
	}
}

func TestPlanTriggers(t *testing.T) {
	d, err := Plan(testLU(), []Change{{Path: "/p/src/package-lock.json"}, {Path: "/p/src/static/x/site.scss"}})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"always"}, {"npm", "install"}, {"make", "css"}}
	if got := argvs(d.Update.Runs); !reflect.DeepEqual(got, want) {
		t.Errorf("runs = %v, want %v (declaration order)", got, want)
	}
}

func TestPlanRestart(t *testing.T) {
	lu := testLU()
	d, err := Plan(lu, []Change{{Path: "/p/src/config/app.ini"}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Update == nil || !d.Update.Restart || len(d.Update.Files) != 1 {
		t.Fatalf("restart_on under a sync = %+v, want sync and restart", d)
	}
	// restart_on outside every sync restarts without syncing (Compose's
	// action: restart) instead of falling back.
	d, err = Plan(lu, []Change{{Path: "/p/restart.txt"}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Update == nil || !d.Update.Restart || len(d.Update.Files) != 0 {
		t.Fatalf("restart_on outside syncs = %+v, want restart only", d)
	}
	lu.Restart = true
	d, err = Plan(lu, []Change{{Path: "/p/src/a.go"}})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Update.Restart {
		t.Error("restart_container did not set Restart")
	}
}

func TestPlanErrors(t *testing.T) {
	if _, err := Plan(nil, nil); err == nil {
		t.Error("nil live update accepted")
	}
	if _, err := Plan(testLU(), []Change{{Path: "relative.go"}}); err == nil {
		t.Error("relative change path accepted")
	}
	lu := testLU()
	lu.Syncs = append(lu.Syncs, model.Sync{LocalPath: "/p/x", ContainerPath: "app/x"})
	if _, err := Plan(lu, []Change{{Path: "/p/x/a"}}); err == nil {
		t.Error("relative container path accepted")
	}
	lu = testLU()
	lu.Ignore = []string{"/p/[x"}
	if _, err := Plan(lu, []Change{{Path: "/p/src/a"}}); err == nil {
		t.Error("bad pattern accepted")
	}
}
