package compose

import (
	"reflect"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/patternmatcher"

	"github.com/loop-dev/loop/daemon/model"
)

func TestLiveUpdateFromWatch(t *testing.T) {
	dev := &types.DevelopConfig{Watch: []types.Trigger{
		{Path: "src", Action: types.WatchActionSync, Target: "/app/src", Ignore: []string{"node_modules/", "*.tmp", "!keep.tmp"}},
		{Path: "/abs/conf", Action: types.WatchActionSyncRestart, Target: "/etc/app/"},
		{Path: "web", Action: types.WatchActionSyncExec, Target: "/srv", Exec: types.ServiceHook{Command: types.ShellCommand{"kill", "-HUP", "1"}}, InitialSync: true},
		{Path: "run.sh", Action: types.WatchActionRestart},
		{Path: "package.json", Action: types.WatchActionRebuild},
	}}
	got, err := LiveUpdateFromWatch(dev, "/proj")
	if err != nil {
		t.Fatal(err)
	}
	want := &model.LiveUpdate{
		FallBackOn:  []string{"/proj/package.json"},
		InitialSync: true,
		Syncs: []model.Sync{
			{LocalPath: "/proj/src", ContainerPath: "/app/src"},
			{LocalPath: "/abs/conf", ContainerPath: "/etc/app"},
			{LocalPath: "/proj/web", ContainerPath: "/srv"},
		},
		Runs:      []model.Run{{Cmd: model.Cmd{Argv: []string{"kill", "-HUP", "1"}}, Triggers: []string{"/proj/web"}}},
		RestartOn: []string{"/abs/conf", "/proj/run.sh"},
		Ignore:    []string{"/proj/src/node_modules", "/proj/src/*.tmp", "!/proj/src/keep.tmp"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestLiveUpdateFromWatchNone(t *testing.T) {
	for _, dev := range []*types.DevelopConfig{nil, {}} {
		got, err := LiveUpdateFromWatch(dev, "/proj")
		if err != nil || got != nil {
			t.Errorf("LiveUpdateFromWatch(%v) = %v, %v; want nil, nil", dev, got, err)
		}
	}
}

func TestLiveUpdateFromWatchInitialSyncOff(t *testing.T) {
	got, err := LiveUpdateFromWatch(&types.DevelopConfig{Watch: []types.Trigger{
		{Path: "a", Action: types.WatchActionSync, Target: "/a"},
	}}, "/p")
	if err != nil {
		t.Fatal(err)
	}
	if got.InitialSync {
		t.Error("InitialSync set without initial_sync: true")
	}
}

// include is folded into Ignore; check the resulting patterns admit exactly
// the included files under the rule path, with patternmatcher as the watcher
// uses it.
func TestLiveUpdateFromWatchInclude(t *testing.T) {
	got, err := LiveUpdateFromWatch(&types.DevelopConfig{Watch: []types.Trigger{
		{Path: "src", Action: types.WatchActionSync, Target: "/app", Include: []string{"*.go", "cmd/**"}},
	}}, "/proj")
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(got.Ignore)
	if err != nil {
		t.Fatalf("patterns %q: %v", got.Ignore, err)
	}
	for file, ignored := range map[string]bool{
		"/proj/src/main.go":       false,
		"/proj/src/README.md":     true,
		"/proj/src/cmd/x/y.txt":   false,
		"/proj/src/lib/other.txt": true,
		"/proj/other/file.md":     false, // outside the rule path: untouched
	} {
		m, err := pm.MatchesOrParentMatches(file)
		if err != nil {
			t.Fatal(err)
		}
		if m != ignored {
			t.Errorf("%s ignored = %v, want %v (patterns %q)", file, m, ignored, got.Ignore)
		}
	}
}

func TestLiveUpdateFromWatchErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		rule types.Trigger
		want string
	}{
		"sync without target":  {types.Trigger{Path: "a", Action: types.WatchActionSync}, "target is required"},
		"relative target":      {types.Trigger{Path: "a", Action: types.WatchActionSync, Target: "app"}, "absolute"},
		"exec without command": {types.Trigger{Path: "a", Action: types.WatchActionSyncExec, Target: "/a"}, "exec.command"},
		"unknown action":       {types.Trigger{Path: "a", Action: "teleport"}, "unknown action"},
		"no path":              {types.Trigger{Action: types.WatchActionRebuild}, "path is required"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LiveUpdateFromWatch(&types.DevelopConfig{Watch: []types.Trigger{tc.rule}}, "/p")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
