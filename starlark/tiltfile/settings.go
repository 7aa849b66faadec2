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
		"enable_feature":     l.feature,
		"disable_feature":    l.feature,
		"disable_snapshots":  l.noArgsNoop,
		"set_team":           l.setTeam,

		"docker_prune_settings":         l.dockerPruneSettings,
		"experimental_telemetry_cmd":    l.telemetryCmd,
		"experimental_metrics_settings": l.metricsSettings,
		"experimental_analytics_report": l.analyticsReport,
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
		ssa         starlark.Value = starlark.None
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"max_parallel_updates?", &maxParallel, "k8s_upsert_timeout_secs?", &timeout,
		"suppress_unused_image_warnings?", &suppress, "k8s_server_side_apply?", &ssa); err != nil {
		return nil, err
	}
	// Tilt takes "true", "false" or "auto" (a bool is accepted too). loop
	// always applies server-side: "false" cannot be honoured.
	switch x := ssa.(type) {
	case starlark.NoneType:
	case starlark.String, starlark.Bool:
		v := strings.ToLower(strings.Trim(x.String(), `"`))
		switch v {
		case "true", "auto", "":
		case "false":
			l.warn(pos(thread), "update_settings(k8s_server_side_apply='false') is ignored: loop always applies objects server-side")
		default:
			return nil, errorf(b, "k8s_server_side_apply must be \"true\", \"false\", or \"auto\"; got %q", v)
		}
	default:
		return nil, fmt.Errorf("%s: for parameter \"k8s_server_side_apply\": got %s, want string", b.Name(), ssa.Type())
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
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "ignore?", &ignore); err != nil {
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

// ciSettings records ci_settings(k8s_grace_period, timeout,
// readiness_timeout) for `loop ci`: timeout bounds the run in place of
// --timeout, as in Tilt, and readiness_timeout how long a resource may take
// to be ready after its update, and k8s_grace_period how long a pod in an
// error state is tolerated after a deploy (0, the default: not at all).
func (l *loader) ciSettings(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var grace, timeout, readiness duration
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "k8s_grace_period?", &grace, "timeout?", &timeout,
		"readiness_timeout?", &readiness); err != nil {
		return nil, err
	}
	if grace.set {
		l.cfg.Settings.K8sGracePeriod = grace.d
	}
	if timeout.set {
		l.cfg.Settings.CITimeout = timeout.d
	}
	if readiness.set {
		l.cfg.Settings.CIReadinessTimeout = readiness.d
	}
	return starlark.None, nil
}

// dockerPruneSettings is docker_prune_settings(disable, max_age_mins,
// num_builds, interval_hrs, keep_recent), validated as in Tilt. loop does not
// prune Docker images, so anything but disable=True warns.
func (l *loader) dockerPruneSettings(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		disable                           bool
		maxAgeMins, numBuilds, intervalHr int
		keepRecent                        starlark.Value = starlark.None
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "disable?", &disable, "max_age_mins?", &maxAgeMins,
		"num_builds?", &numBuilds, "interval_hrs?", &intervalHr, "keep_recent?", &keepRecent); err != nil {
		return nil, err
	}
	if numBuilds != 0 && intervalHr != 0 {
		return nil, errorf(b, "can't specify both 'prune every X builds' and 'prune every Y hours'; please pass only one of `num_builds` and `interval_hrs`")
	}
	if keepRecent != starlark.None {
		if _, err := starlark.AsInt32(keepRecent); err != nil {
			return nil, fmt.Errorf("%s: for parameter \"keep_recent\": %w", b.Name(), err)
		}
	}
	if !disable {
		l.warn(pos(thread), "docker_prune_settings() is ignored: loop does not prune Docker images (images it built are kept)")
	}
	return starlark.None, nil
}

// telemetryCmd is experimental_telemetry_cmd(cmd, cmd_bat, period, dir):
// Tilt runs it to collect traces for its web UI; loop does not.
func (l *loader) telemetryCmd(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		cmd, cmdBat cmdArg
		period      duration
		dir         string
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "cmd", &cmd, "cmd_bat?", &cmdBat, "period?", &period, "dir?", &dir); err != nil {
		return nil, err
	}
	if cmd.cmd.Empty() && cmdBat.cmd.Empty() {
		return nil, errorf(b, "cmd cannot be empty")
	}
	l.warn(pos(thread), "experimental_telemetry_cmd() is ignored: loop collects no telemetry spans for Tilt's web UI")
	return starlark.None, nil
}

// metricsSettings is experimental_metrics_settings(...), deprecated in Tilt,
// which accepts anything and warns.
func (l *loader) metricsSettings(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	l.warn(pos(thread), "experimental_metrics_settings() is deprecated (in Tilt too) and ignored")
	return starlark.None, nil
}

// analyticsReport is experimental_analytics_report(tags): loop sends no
// analytics.
func (l *loader) analyticsReport(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var tags strDict
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "tags", &tags); err != nil {
		return nil, err
	}
	l.warn(pos(thread), "experimental_analytics_report() is ignored: loop sends no analytics")
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

// analyticsSettings: loop sends no analytics, so enable=False is what it
// does anyway; enable=True warns.
func (l *loader) analyticsSettings(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var enable optBool
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "enable?", &enable); err != nil {
		return nil, err
	}
	if enable.v {
		l.warn(pos(thread), "analytics_settings(True) is ignored: loop sends no analytics")
	}
	return starlark.None, nil
}

// feature is enable_feature and disable_feature: Tilt's feature flags.
func (l *loader) feature(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	kwargs = alias(kwargs, map[string]string{"msg": "feature_name"})
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "feature_name", &name); err != nil {
		return nil, err
	}
	l.warn(pos(thread), fmt.Sprintf("%s(%q): loop has no feature flags; ignored", b.Name(), name))
	return starlark.None, nil
}

// setTeam is set_team(team_id): a Tilt Cloud setting.
func (l *loader) setTeam(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var team string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "team_id", &team); err != nil {
		return nil, err
	}
	l.warn(pos(thread), "set_team() is ignored: it is a Tilt Cloud setting and loop has no cloud")
	return starlark.None, nil
}

func (l *loader) noArgsNoop(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	return starlark.None, nil
}
