package tiltfile

import (
	"fmt"
	"strings"

	"go.starlark.net/starlark"

	"github.com/loop-dev/loop/daemon/model"
)

// settingsBuiltins are the project-wide settings.
func (l *loader) settingsBuiltins() starlark.StringDict {
	d := builtins(map[string]builtinFn{
		"default_registry":   l.defaultRegistry,
		"update_settings":    l.updateSettings,
		"watch_settings":     l.watchSettings,
		"trigger_mode":       l.triggerMode,
		"version_settings":   l.versionSettings,
		"ci_settings":        l.ciSettings,
		"secret_settings":    l.secretSettings,
		"analytics_settings": l.analyticsSettings,
		"enable_feature":     l.enableFeature,
		"disable_snapshots":  l.noArgsNoop,
		"set_team":           l.setTeam,
	})
	d["TRIGGER_MODE_AUTO"] = triggerModeValue(model.TriggerAuto)
	d["TRIGGER_MODE_MANUAL"] = triggerModeValue(model.TriggerManual)
	return d
}

func (l *loader) defaultRegistry(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var host, fromCluster, singleName string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"host", &host, "host_from_cluster?", &fromCluster, "single_name?", &singleName); err != nil {
		return nil, err
	}
	if host == "" {
		return nil, errorf(b, "host must not be empty")
	}
	if strings.Contains(host, "://") {
		return nil, errorf(b, "host %q must be a registry host (like localhost:5000), not a URL", host)
	}
	if l.cfg.Settings.DefaultRegistry != nil {
		return nil, errorf(b, "default registry already defined")
	}
	l.cfg.Settings.DefaultRegistry = &model.Registry{Host: host, HostFromCluster: fromCluster, SingleName: singleName}
	return starlark.None, nil
}

func (l *loader) updateSettings(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		maxParallel = -1
		timeout     seconds
		suppress    stringList
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"max_parallel_updates?", &maxParallel, "k8s_upsert_timeout_secs?", &timeout,
		"suppress_unused_image_warnings?", &suppress); err != nil {
		return nil, err
	}
	if maxParallel != -1 {
		if maxParallel < 1 {
			return nil, errorf(b, "max_parallel_updates must be >= 1, got %d", maxParallel)
		}
		l.cfg.Settings.MaxParallelUpdates = maxParallel
	}
	if timeout.set {
		if timeout.d <= 0 {
			return nil, errorf(b, "k8s_upsert_timeout_secs must be > 0")
		}
		l.cfg.Settings.K8sUpsertTimeout = timeout.d
	}
	l.cfg.Settings.SuppressUnusedImageWarnings = append(l.cfg.Settings.SuppressUnusedImageWarnings, suppress.vals...)
	return starlark.None, nil
}

func (l *loader) watchSettings(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var ignore stringList
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "ignore", &ignore); err != nil {
		return nil, err
	}
	l.cfg.Settings.WatchIgnore = append(l.cfg.Settings.WatchIgnore, ignore.vals...)
	return starlark.None, nil
}

func (l *loader) triggerMode(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var mode triggerModeArg
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "trigger_mode", &mode); err != nil {
		return nil, err
	}
	if mode.mode == "" {
		return nil, errorf(b, "trigger_mode must be TRIGGER_MODE_AUTO or TRIGGER_MODE_MANUAL")
	}
	l.cfg.Settings.TriggerMode = mode.mode
	return starlark.None, nil
}

func (l *loader) versionSettings(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		check      = true
		constraint string
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "check_updates?", &check, "constraint?", &constraint); err != nil {
		return nil, err
	}
	l.cfg.Settings.VersionCheck = check
	l.cfg.Settings.VersionConstraint = constraint
	return starlark.None, nil
}

func (l *loader) ciSettings(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var grace, timeout duration
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "k8s_grace_period?", &grace, "timeout?", &timeout); err != nil {
		return nil, err
	}
	if grace.set {
		l.cfg.Settings.K8sGracePeriod = grace.d
	}
	if timeout.set {
		l.cfg.Settings.CITimeout = timeout.d
	}
	return starlark.None, nil
}

// secretSettings: loop masks the values of environment variables named
// *_TOKEN, *_PASSWORD and *_SECRET in logs and the UI; names= (a loop
// extension) adds more names. disable_scrub is accepted for compatibility
// and has no effect.
func (l *loader) secretSettings(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var disable bool
	var names stringList
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "disable_scrub?", &disable, "names?", &names); err != nil {
		return nil, err
	}
	l.cfg.Settings.Secrets = append(l.cfg.Settings.Secrets, names.vals...)
	return starlark.None, nil
}

// analyticsSettings is a no-op: loop sends no analytics.
func (l *loader) analyticsSettings(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var enable optBool
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "enable?", &enable); err != nil {
		return nil, err
	}
	return starlark.None, nil
}

func (l *loader) enableFeature(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	kwargs = alias(kwargs, map[string]string{"msg": "feature_name"})
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "feature_name", &name); err != nil {
		return nil, err
	}
	l.warn(pos(thread), fmt.Sprintf("enable_feature(%q): loop has no feature flags; ignored", name))
	return starlark.None, nil
}

func (l *loader) setTeam(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var team string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "team_id", &team); err != nil {
		return nil, err
	}
	return starlark.None, nil
}

func (l *loader) noArgsNoop(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	return starlark.None, nil
}
