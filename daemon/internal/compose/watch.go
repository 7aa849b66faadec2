package compose

import (
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/loop-dev/loop/daemon/model"
)

// LiveUpdateFromWatch converts a service's `develop.watch` rules into loop's
// live update (see the package doc for the mapping). Relative rule paths are
// taken relative to dir. It returns nil when there are no rules, and an error
// naming the rule for a rule loop cannot honour.
func LiveUpdateFromWatch(dev *types.DevelopConfig, dir string) (*model.LiveUpdate, error) {
	if dev == nil || len(dev.Watch) == 0 {
		return nil, nil
	}
	lu := &model.LiveUpdate{}
	for i, rule := range dev.Watch {
		if rule.Path == "" {
			return nil, fmt.Errorf("develop.watch[%d]: path is required", i)
		}
		local := filepath.Clean(absIn(dir, rule.Path))
		sync := func() error {
			if rule.Target == "" {
				return fmt.Errorf("develop.watch[%d] (%s %s): target is required", i, rule.Action, rule.Path)
			}
			if !path.IsAbs(rule.Target) {
				return fmt.Errorf("develop.watch[%d] (%s %s): target %q must be an absolute container path", i, rule.Action, rule.Path, rule.Target)
			}
			lu.Syncs = append(lu.Syncs, model.Sync{LocalPath: local, ContainerPath: path.Clean(rule.Target)})
			return nil
		}
		switch rule.Action {
		case types.WatchActionSync:
			if err := sync(); err != nil {
				return nil, err
			}
		case types.WatchActionSyncRestart:
			if err := sync(); err != nil {
				return nil, err
			}
			lu.RestartOn = appendUnique(lu.RestartOn, local)
		case types.WatchActionSyncExec:
			if len(rule.Exec.Command) == 0 {
				return nil, fmt.Errorf("develop.watch[%d] (sync+exec %s): exec.command is required", i, rule.Path)
			}
			if err := sync(); err != nil {
				return nil, err
			}
			lu.Runs = append(lu.Runs, model.Run{
				Cmd:      model.Cmd{Argv: slices.Clone([]string(rule.Exec.Command))},
				Triggers: []string{local},
			})
		case types.WatchActionRestart:
			lu.RestartOn = appendUnique(lu.RestartOn, local)
		case types.WatchActionRebuild:
			lu.FallBackOn = appendUnique(lu.FallBackOn, local)
		default:
			return nil, fmt.Errorf("develop.watch[%d] (%s): unknown action %q", i, rule.Path, rule.Action)
		}
		if rule.InitialSync {
			lu.InitialSync = true
		}
		for _, pat := range rule.Ignore {
			lu.Ignore = append(lu.Ignore, absPattern(local, pat))
		}
		if len(rule.Include) > 0 {
			// Everything under the rule path is ignored except what an
			// include pattern re-admits (the later "!" pattern wins).
			lu.Ignore = append(lu.Ignore, filepath.Join(local, "**"))
			for _, pat := range rule.Include {
				lu.Ignore = append(lu.Ignore, "!"+absPattern(local, strings.TrimPrefix(pat, "!")))
			}
		}
	}
	return lu, nil
}

// absPattern makes a .dockerignore-style pattern relative to dir absolute,
// keeping a leading "!" exception marker. A leading "/" means dir itself, as
// in a .dockerignore at the root of a context.
func absPattern(dir, pat string) string {
	neg := strings.HasPrefix(pat, "!")
	pat = filepath.Join(dir, strings.TrimPrefix(pat, "!"))
	if neg {
		return "!" + pat
	}
	return pat
}

func appendUnique(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
