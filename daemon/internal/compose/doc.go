// Package compose runs Docker Compose projects through the Docker Engine API,
// without the compose CLI.
//
// It owns three things:
//
//   - Loading: Load reads a docker_compose() declaration with compose-go
//     (profiles, env files, interpolation, project-name rules exactly as
//     `docker compose` applies them) into a Project whose Services carry what
//     the rest of loop needs: the image, a build (as a *model.Image for loop's
//     own builder), the live update derived from `develop.watch`, and the
//     depends_on conditions.
//   - Converging: Controller.Up ensures the project's networks and named
//     volumes, waits for the service's depends_on conditions, and creates (or
//     keeps) and starts the service container. Down, Containers, Logs and
//     WaitReady complete the lifecycle.
//   - Compatibility: everything is labelled as Docker Compose labels it
//     (com.docker.compose.project, .service, .container-number, .oneoff,
//     .config-hash, .project.working_dir, .project.config_files, .version,
//     .network, .volume, ...), containers are named <project>-<service>-1 and
//     networks <project>_<name>, so `docker compose -p NAME ps|logs|down`
//     treat loop's containers as their own.
//
// # Config hash
//
// The com.docker.compose.config-hash label is loop's own hash over the
// effective container configuration (container, host and network config plus
// the image ID), not Compose's hash over the service model. Up recreates a
// container only when that hash changed. A later `docker compose up` sees a
// different hash and recreates the container once; ps, logs and down are not
// affected. Networks and volumes carry no config-hash label: Compose accepts a
// missing one as "matches" instead of recreating the resource.
//
// # develop.watch
//
// LiveUpdateFromWatch maps each watch rule onto model.LiveUpdate:
//
//	sync          Sync{path, target}
//	sync+restart  Sync{path, target} and RestartOn path
//	sync+exec     Sync{path, target} and Run{exec.command, Triggers: [path]}
//	restart       RestartOn path
//	rebuild       FallBackOn path
//	ignore        LiveUpdate.Ignore, each pattern made absolute under the rule path
//	initial_sync  InitialSync (true when any rule asks for it)
//
// `include` cannot be expressed exactly: model.LiveUpdate has no "only these"
// list, and its Ignore is shared by all rules. A rule with include patterns is
// therefore narrowed by adding "<path>/**" followed by "!<path>/<pattern>"
// exceptions to Ignore (patternmatcher semantics: a later "!" pattern re-admits
// what an earlier one excluded). This is exact for changes under that rule's
// path, but because Ignore is global it also hides those paths from other
// rules that overlap the same directory.
//
// # Not supported (yet)
//
// Scale > 1 (one container per service), secrets and configs, anonymous
// volume inheritance across recreation, pre_start/post_start hooks, jobs,
// external links, network_mode "service:x", devices and most resource
// limits other than the ones listed in the container spec.
package compose
