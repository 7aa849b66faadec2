// Package model holds what a loop project declares: the result of loading a
// Tiltfile. It is plain data (standard library only) so that the loader, the
// engine, the controllers and the API can all share it without importing each
// other. A Config is immutable once the loader returns it; controllers read it,
// nothing writes it.
package model

import "time"

// Position is where a declaration was made, for errors found after loading.
type Position struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

// Config is everything one load of a Tiltfile declared.
type Config struct {
	// Tiltfile is the absolute path of the main Tiltfile.
	Tiltfile string `json:"tiltfile"`
	// Images are the docker_build and custom_build targets, in declaration order.
	Images []*Image `json:"images,omitempty"`
	// Compose are the docker_compose calls, in order.
	Compose []*ComposeProject `json:"compose,omitempty"`
	// DCResources are dc_resource calls that adjust Compose services.
	DCResources []*DCResource `json:"dc_resources,omitempty"`
	// K8sSources are the k8s_yaml inputs, rendered by a later stage, plus the
	// helm()/kustomize() renders whose output was not passed to k8s_yaml (kept
	// so their inputs stay watched).
	K8sSources []*K8sSource `json:"k8s_sources,omitempty"`
	// K8sResources are k8s_resource calls.
	K8sResources []*K8sResource `json:"k8s_resources,omitempty"`
	// CustomDeploys are k8s_custom_deploy calls (helm_resource's among them).
	CustomDeploys []*CustomDeploy `json:"custom_deploys,omitempty"`
	// K8sKinds are k8s_kind and k8s_image_json_path calls.
	K8sKinds []*K8sKind `json:"k8s_kinds,omitempty"`
	// WorkloadToResource is set by workload_to_resource_function(): it names
	// the resource of each workload in place of the default names.
	WorkloadToResource *WorkloadToResource `json:"workload_to_resource,omitempty"`
	// LocalResources are local_resource calls, in order.
	LocalResources []*LocalResource `json:"local_resources,omitempty"`
	// ArgoApps are the Argo CD Applications argocd_app read, in declaration
	// order; a later stage renders each one's source from the working tree.
	ArgoApps []*ArgoApp `json:"argo_apps,omitempty"`
	// ArgoAppSets are the ApplicationSets argocd_appset read; a later stage
	// expands their generators over the working tree into more apps.
	ArgoAppSets []*ArgoAppSet `json:"argo_app_sets,omitempty"`
	// Settings collects the project-wide settings builtins.
	Settings Settings `json:"settings"`
	// Files is every file the load read (Tiltfile, loaded files, read_file,
	// watch_file, ...), absolute and sorted, so it can be watched.
	Files []string `json:"files,omitempty"`
	// Args are the arguments after `--` that config.parse saw.
	Args []string `json:"args,omitempty"`
	// Warnings are warn() calls and non-fatal problems found while loading.
	Warnings []string `json:"warnings,omitempty"`
}

// TriggerMode says whether file changes update a resource on their own.
type TriggerMode string

// Trigger modes, as Tilt names them.
const (
	TriggerAuto         TriggerMode = "auto"
	TriggerAutoNoInit   TriggerMode = "auto_no_init"
	TriggerManual       TriggerMode = "manual"
	TriggerManualNoInit TriggerMode = "manual_no_init"
)

// Image is a docker_build (or custom_build) target.
type Image struct {
	// Ref is the image name as written, e.g. "example/hello".
	Ref string `json:"ref"`
	// Context is the absolute build context directory.
	Context string `json:"context"`
	// Dockerfile is the absolute Dockerfile path; empty when DockerfileContents is set.
	Dockerfile         string            `json:"dockerfile,omitempty"`
	DockerfileContents string            `json:"dockerfile_contents,omitempty"`
	BuildArgs          map[string]string `json:"build_args,omitempty"`
	Target             string            `json:"target,omitempty"`
	// Only restricts the context to these paths (relative to Context).
	Only []string `json:"only,omitempty"`
	// Ignore adds .dockerignore-style patterns (relative to Context).
	Ignore []string `json:"ignore,omitempty"`
	// Entrypoint overrides the image's entrypoint in the running container.
	Entrypoint    []string `json:"entrypoint,omitempty"`
	ContainerArgs []string `json:"container_args,omitempty"`
	Network       string   `json:"network,omitempty"`
	// ExtraHosts are "host:ip" entries added to the build's /etc/hosts.
	ExtraHosts []string `json:"extra_hosts,omitempty"`
	// SSH are `docker build --ssh` specs ("default", "ID=PATH[,PATH]"):
	// SSH agents or keys a RUN --mount=type=ssh step may use.
	SSH []string `json:"ssh,omitempty"`
	// BuildSecrets are `docker build --secret` specs ("id=ID,src=PATH",
	// "id=ID,env=VAR"), with src absolute: what RUN --mount=type=secret reads.
	BuildSecrets []string    `json:"secret,omitempty"`
	Platform     string      `json:"platform,omitempty"`
	ExtraTag     []string    `json:"extra_tag,omitempty"`
	CacheFrom    []string    `json:"cache_from,omitempty"`
	PullParent   bool        `json:"pull,omitempty"`
	MatchInEnv   bool        `json:"match_in_env_vars,omitempty"`
	LiveUpdate   *LiveUpdate `json:"live_update,omitempty"`
	// Custom is set for custom_build targets instead of a Docker build.
	Custom *CustomBuild `json:"custom,omitempty"`
	Pos    Position     `json:"pos"`
}

// CustomBuild is a custom_build: a user command that produces the image.
type CustomBuild struct {
	Command           Cmd               `json:"command"`
	Deps              []string          `json:"deps,omitempty"`
	Tag               string            `json:"tag,omitempty"`
	DisablePush       bool              `json:"disable_push,omitempty"`
	SkipsLocalDocker  bool              `json:"skips_local_docker,omitempty"`
	OutputsImageRefTo string            `json:"outputs_image_ref_to,omitempty"`
	Dir               string            `json:"dir,omitempty"`
	Env               map[string]string `json:"env,omitempty"`
	// ImageDeps are the images the command builds on (image_deps=): their
	// watched paths count as the image's for live_update.
	ImageDeps []string `json:"image_deps,omitempty"`
}

// LiveUpdate is the ordered list of live_update steps of an image. Tilt
// requires fall_back_on and initial_sync first, then syncs, then runs, then
// restart_container last, so the structured form loses no order.
type LiveUpdate struct {
	// FallBackOn paths (absolute) force a full rebuild when they change.
	FallBackOn []string `json:"fall_back_on,omitempty"`
	// InitialSync copies every synced file once when the container starts.
	InitialSync bool   `json:"initial_sync,omitempty"`
	Syncs       []Sync `json:"syncs,omitempty"`
	Runs        []Run  `json:"runs,omitempty"`
	// Restart restarts the container after syncs and runs.
	Restart bool `json:"restart,omitempty"`
	// RestartOn restarts the container only when a changed file matches one
	// of these absolute paths (Compose develop.watch sync+restart/restart).
	RestartOn []string `json:"restart_on,omitempty"`
	// KeepOnExit keeps the container running when its supervised process
	// exits on its own; the next restart starts it again (restart_process'
	// exit_policy='continue').
	KeepOnExit bool `json:"keep_on_exit,omitempty"`
	// Ignore are absolute .dockerignore-style patterns of changes that do not
	// concern this live update at all (Compose develop.watch ignore).
	Ignore []string `json:"ignore,omitempty"`
	Pos    Position `json:"pos"`
}

// Sync copies files under LocalPath (absolute on the host) to ContainerPath
// (absolute in the container).
type Sync struct {
	LocalPath     string `json:"local_path"`
	ContainerPath string `json:"container_path"`
	// Pos is where sync() was called, for the check at assembly (a sync must
	// be under a path the deployed image watches). It is not part of what the
	// sync does: not encoded, so moving the line changes no resource's hash.
	Pos Position `json:"-"`
}

// Run executes a command in the container after syncs. When Triggers is
// non-empty it only runs if a changed file matches one of them (absolute paths
// or patterns).
type Run struct {
	Cmd      Cmd      `json:"cmd"`
	Triggers []string `json:"triggers,omitempty"`
	Echo     bool     `json:"echo,omitempty"`
}

// Cmd is a command line. A string in the Tiltfile becomes ["sh", "-c", s]
// (Shell true); a list is executed as is.
type Cmd struct {
	Argv  []string `json:"argv,omitempty"`
	Shell bool     `json:"shell,omitempty"`
}

// Empty reports whether no command was given.
func (c Cmd) Empty() bool { return len(c.Argv) == 0 }

// ComposeProject is one docker_compose call.
type ComposeProject struct {
	// Paths are the absolute compose files, in order.
	Paths []string `json:"paths,omitempty"`
	// Inline holds compose YAML given as a blob.
	Inline      string   `json:"inline,omitempty"`
	ProjectName string   `json:"project_name,omitempty"`
	Profiles    []string `json:"profiles,omitempty"`
	EnvFile     string   `json:"env_file,omitempty"`
	Wait        bool     `json:"wait,omitempty"`
	// Env are the variables the Tiltfile set (os.putenv, os.environ): as in
	// Tilt, where they change Tilt's own environment, the compose files are
	// interpolated with them.
	Env map[string]string `json:"env,omitempty"`
	Pos Position          `json:"pos"`
}

// DCResource is a dc_resource call.
type DCResource struct {
	Name         string      `json:"name"`
	NewName      string      `json:"new_name,omitempty"`
	ResourceDeps []string    `json:"resource_deps,omitempty"`
	TriggerMode  TriggerMode `json:"trigger_mode,omitempty"`
	Labels       []string    `json:"labels,omitempty"`
	AutoInit     *bool       `json:"auto_init,omitempty"`
	Links        []Link      `json:"links,omitempty"`
	InferLinks   *bool       `json:"infer_links,omitempty"`
	// Image (dc_resource image=) names the image the service runs, in place
	// of the compose file's: the docker_build of that ref builds it.
	Image string `json:"image,omitempty"`
	// ReadyLog is a regular expression (loop extension): after a start,
	// rebuild or restart the service is ready when a log line matches it.
	ReadyLog string   `json:"ready_log,omitempty"`
	Pos      Position `json:"pos"`
}

// K8sSourceKind says how a K8sSource is rendered.
type K8sSourceKind string

// Kinds of Kubernetes sources.
const (
	K8sYAML      K8sSourceKind = "yaml"
	K8sKustomize K8sSourceKind = "kustomize"
	K8sHelm      K8sSourceKind = "helm"
)

// K8sSource is one input of Kubernetes manifests.
type K8sSource struct {
	Kind K8sSourceKind `json:"kind"`
	// Paths are YAML files or directories (Kind yaml).
	Paths []string `json:"paths,omitempty"`
	// YAML is inline manifest text (a blob passed to k8s_yaml).
	YAML            string `json:"yaml,omitempty"`
	AllowDuplicates bool   `json:"allow_duplicates,omitempty"`
	// Kustomize and Helm are the inputs of a kustomization or chart. With Kind
	// kustomize or helm a later stage renders them. With Kind yaml they say
	// where YAML came from: the Tiltfile's kustomize()/helm() render at load
	// time, as Tilt's do, and their inputs are kept here so that they stay
	// watched (an edit re-runs the Tiltfile). A yaml source with neither YAML
	// nor Paths only keeps a render's inputs watched (the Tiltfile used the
	// output some other way than k8s_yaml).
	Kustomize *KustomizeArgs `json:"kustomize,omitempty"`
	Helm      *HelmArgs      `json:"helm,omitempty"`
	// Resource, when set, makes every object of the source one resource of
	// that name, whatever workloads it holds (the built-in helm_resource).
	Resource string `json:"resource,omitempty"`
	// Release, set by the built-in helm_resource, makes the resource a Helm
	// release: recorded where the helm CLI reads releases, re-applied when one
	// of its deps changes (as helm upgrade), uninstalled by loop down.
	Release *HelmRelease `json:"release,omitempty"`
	Pos     Position     `json:"pos"`
}

// HelmRelease is a release helm_resource installs. loop applies the objects;
// the release record (the Secret `helm list` reads) says what was installed.
type HelmRelease struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	// Chart is the chart's directory or archive.
	Chart string `json:"chart"`
	// Deps are helm_resource's deps: a change re-applies the release.
	Deps []string `json:"deps,omitempty"`
	// KeepHistory is uninstall_flags' --keep-history: loop down marks the
	// release uninstalled instead of deleting its records.
	KeepHistory bool `json:"keep_history,omitempty"`
	// LiveUpdate updates the containers ImageSelector (any tag) or
	// ContainerSelector (by name) picks, for an image loop does not build
	// (helm_resource's live_update, as k8s_custom_deploy's).
	LiveUpdate        *LiveUpdate `json:"live_update,omitempty"`
	ImageSelector     string      `json:"image_selector,omitempty"`
	ContainerSelector string      `json:"container_selector,omitempty"`
}

// CustomDeploy is a k8s_custom_deploy call: ApplyCmd deploys and prints the
// deployed objects as YAML; DeleteCmd removes them.
type CustomDeploy struct {
	Name      string            `json:"name"`
	ApplyCmd  Cmd               `json:"apply_cmd"`
	ApplyDir  string            `json:"apply_dir,omitempty"`
	ApplyEnv  map[string]string `json:"apply_env,omitempty"`
	DeleteCmd Cmd               `json:"delete_cmd"`
	DeleteDir string            `json:"delete_dir,omitempty"`
	DeleteEnv map[string]string `json:"delete_env,omitempty"`
	// Deps are watched: a change re-runs ApplyCmd.
	Deps []string `json:"deps,omitempty"`
	// ImageDeps are built first; the command gets TILT_IMAGE_i (the ref as
	// the cluster pulls it) and TILT_IMAGE_MAP_i (the image's name), as in Tilt.
	ImageDeps []string `json:"image_deps,omitempty"`
	// ImageSelector and ContainerSelector pick the containers LiveUpdate
	// updates when no image dep is live-updated.
	ImageSelector     string      `json:"image_selector,omitempty"`
	ContainerSelector string      `json:"container_selector,omitempty"`
	LiveUpdate        *LiveUpdate `json:"live_update,omitempty"`
	Pos               Position    `json:"pos"`
}

// KustomizeArgs are the arguments of kustomize().
type KustomizeArgs struct {
	Dir   string   `json:"dir"`
	Flags []string `json:"flags,omitempty"`
}

// HelmArgs are the arguments of helm().
type HelmArgs struct {
	Chart       string   `json:"chart"`
	Name        string   `json:"name,omitempty"`
	Namespace   string   `json:"namespace,omitempty"`
	Values      []string `json:"values,omitempty"`
	Set         []string `json:"set,omitempty"`
	KubeVersion string   `json:"kube_version,omitempty"`
	SkipCRDs    bool     `json:"skip_crds,omitempty"`
}

// K8sResource is a k8s_resource call.
type K8sResource struct {
	Workload     string        `json:"workload,omitempty"`
	NewName      string        `json:"new_name,omitempty"`
	Objects      []string      `json:"objects,omitempty"`
	PortForwards []PortForward `json:"port_forwards,omitempty"`
	ResourceDeps []string      `json:"resource_deps,omitempty"`
	Labels       []string      `json:"labels,omitempty"`
	TriggerMode  TriggerMode   `json:"trigger_mode,omitempty"`
	AutoInit     *bool         `json:"auto_init,omitempty"`
	Links        []Link        `json:"links,omitempty"`
	// ExtraPodSelectors are label sets whose pods also belong to the resource
	// (logs, port forwards, live update); SelectorsOnly (discovery_strategy=
	// 'selectors-only') makes them the only ones.
	ExtraPodSelectors []map[string]string `json:"extra_pod_selectors,omitempty"`
	SelectorsOnly     bool                `json:"selectors_only,omitempty"`
	Pos               Position            `json:"pos"`
}

// ArgoApp is one Argo CD Application read by argocd_app.
type ArgoApp struct {
	// Name is metadata.name: the app's name in loop (resource, tracking, render dir).
	Name string `json:"name"`
	// Manifest is the absolute path of the file that declares the Application.
	Manifest string `json:"manifest"`
	// RepoRoot is the absolute directory that spec.source.path is relative to
	// (the Git work tree of the manifest unless argocd_app(repo_root=) says otherwise).
	RepoRoot string `json:"repo_root"`
	// Path is spec.source.path (a multi-source app's: its first source's with a path).
	Path string `json:"path"`
	// Sources are, for a multi-source app, the paths of its sources and the
	// directories of the value files they take from one another, relative to RepoRoot.
	Sources []string `json:"sources,omitempty"`
	// Namespace is spec.destination.namespace.
	Namespace string `json:"namespace,omitempty"`
	// Prune and SelfHeal are spec.syncPolicy.automated.prune and .selfHeal.
	Prune    bool     `json:"prune,omitempty"`
	SelfHeal bool     `json:"self_heal,omitempty"`
	Pos      Position `json:"pos"`
}

// ArgoAppSet is one Argo CD ApplicationSet read by argocd_appset.
type ArgoAppSet struct {
	Name string `json:"name"`
	// Manifest is the absolute path of the file that declares the ApplicationSet.
	Manifest string `json:"manifest"`
	// RepoRoot is the absolute directory the generators' paths and the generated
	// apps' source paths are relative to.
	RepoRoot string   `json:"repo_root"`
	Pos      Position `json:"pos"`
}

// K8sKind is a k8s_kind call (a custom kind that carries images) or a
// k8s_image_json_path call (image paths of the objects it selects).
type K8sKind struct {
	Kind          string   `json:"kind"`
	APIVersion    string   `json:"api_version,omitempty"`
	ImageJSONPath []string `json:"image_json_path,omitempty"`
	// ImageObject is k8s_kind(image_object=): an image split into a
	// repository and a tag field of the object at a JSONPath.
	ImageObject  *ImageObject `json:"image_object,omitempty"`
	PodReadiness string       `json:"pod_readiness,omitempty"`
	// Name and Namespace narrow a k8s_image_json_path selection. Like Tilt,
	// Kind, APIVersion, Name and Namespace of a k8s_image_json_path call are
	// case-insensitive regular expressions (ByPath is true for those).
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	ByPath    bool   `json:"by_path,omitempty"`
}

// ImageObject locates an image held as {repo_field: REPO, tag_field: TAG}.
type ImageObject struct {
	JSONPath  string `json:"json_path"`
	RepoField string `json:"repo_field"`
	TagField  string `json:"tag_field"`
}

// WorkloadToResource is the function workload_to_resource_function() gave.
type WorkloadToResource struct {
	// Name calls it for one workload and returns the resource name. It runs
	// Starlark code of the Tiltfile (frozen after the load), so it is safe for
	// concurrent use; an error names the Tiltfile position.
	Name func(ObjectID) (string, error) `json:"-"`
	// Pos is where the function is defined.
	Pos Position `json:"pos"`
}

// ObjectID identifies a Kubernetes object as Tilt's K8sObjectID does.
type ObjectID struct {
	Name      string
	Kind      string
	Namespace string
	Group     string
}

// PortForward is a port_forward value.
type PortForward struct {
	LocalPort     int    `json:"local_port"`
	ContainerPort int    `json:"container_port,omitempty"`
	Host          string `json:"host,omitempty"`
	Name          string `json:"name,omitempty"`
	LinkPath      string `json:"link_path,omitempty"`
}

// Link is a link() value shown next to a resource.
type Link struct {
	URL  string `json:"url"`
	Name string `json:"name,omitempty"`
}

// LocalResource is a local_resource call.
type LocalResource struct {
	Name     string            `json:"name"`
	Cmd      Cmd               `json:"cmd,omitempty"`
	Env      map[string]string `json:"env,omitempty"`
	Dir      string            `json:"dir,omitempty"`
	ServeCmd Cmd               `json:"serve_cmd,omitempty"`
	ServeEnv map[string]string `json:"serve_env,omitempty"`
	ServeDir string            `json:"serve_dir,omitempty"`
	// Deps are absolute files or directories whose changes re-run Cmd.
	Deps []string `json:"deps,omitempty"`
	// Ignore are patterns excluded from Deps.
	Ignore         []string    `json:"ignore,omitempty"`
	ResourceDeps   []string    `json:"resource_deps,omitempty"`
	TriggerMode    TriggerMode `json:"trigger_mode,omitempty"`
	AutoInit       bool        `json:"auto_init"`
	AllowParallel  bool        `json:"allow_parallel,omitempty"`
	Labels         []string    `json:"labels,omitempty"`
	Links          []Link      `json:"links,omitempty"`
	ReadinessProbe *Probe      `json:"readiness_probe,omitempty"`
	// ReadyLog is a regular expression (loop extension): serve_cmd is ready
	// when a line of its output matches it.
	ReadyLog string   `json:"ready_log,omitempty"`
	Pos      Position `json:"pos"`
}

// Probe is a readiness probe, shaped like Kubernetes' and Tilt's probe().
type Probe struct {
	InitialDelay     time.Duration    `json:"initial_delay,omitempty"`
	Timeout          time.Duration    `json:"timeout,omitempty"`
	Period           time.Duration    `json:"period,omitempty"`
	SuccessThreshold int              `json:"success_threshold,omitempty"`
	FailureThreshold int              `json:"failure_threshold,omitempty"`
	Exec             *ExecAction      `json:"exec,omitempty"`
	HTTPGet          *HTTPGetAction   `json:"http_get,omitempty"`
	TCPSocket        *TCPSocketAction `json:"tcp_socket,omitempty"`
}

// ExecAction probes by running a command; exit 0 is ready.
type ExecAction struct {
	Command []string `json:"command"`
}

// HTTPGetAction probes with an HTTP GET; a 2xx or 3xx status is ready.
type HTTPGetAction struct {
	Host   string `json:"host,omitempty"`
	Port   int    `json:"port"`
	Scheme string `json:"scheme,omitempty"`
	Path   string `json:"path,omitempty"`
}

// TCPSocketAction probes by opening a TCP connection.
type TCPSocketAction struct {
	Host string `json:"host,omitempty"`
	Port int    `json:"port"`
}

// Settings are the project-wide settings builtins.
type Settings struct {
	// MaxParallelUpdates bounds concurrent updates (update_settings), default 3.
	MaxParallelUpdates int `json:"max_parallel_updates"`
	// K8sUpsertTimeout bounds one apply (update_settings), default 30s.
	K8sUpsertTimeout            time.Duration `json:"k8s_upsert_timeout"`
	SuppressUnusedImageWarnings []string      `json:"suppress_unused_image_warnings,omitempty"`
	// WatchIgnore are watch_settings(ignore=) patterns, relative to the Tiltfile dir.
	WatchIgnore []string `json:"watch_ignore,omitempty"`
	// TriggerMode is the default set by trigger_mode().
	TriggerMode        TriggerMode `json:"trigger_mode"`
	AllowedK8sContexts []string    `json:"allowed_k8s_contexts,omitempty"`
	DefaultRegistry    *Registry   `json:"default_registry,omitempty"`
	// EnabledResources is what config.set_enabled_resources chose; nil means all.
	EnabledResources []string      `json:"enabled_resources,omitempty"`
	CITimeout        time.Duration `json:"ci_timeout,omitempty"`
	K8sGracePeriod   time.Duration `json:"k8s_grace_period,omitempty"`
	// CIReadinessTimeout is ci_settings(readiness_timeout=).
	CIReadinessTimeout time.Duration `json:"ci_readiness_timeout,omitempty"`
	VersionCheck       bool          `json:"version_check_updates"`
	VersionConstraint  string        `json:"version_constraint,omitempty"`
	// Secrets are names of environment values to mask in logs (loop extension).
	Secrets []string `json:"secrets,omitempty"`
}

// Registry is a default_registry setting.
type Registry struct {
	Host            string `json:"host"`
	HostFromCluster string `json:"host_from_cluster,omitempty"`
	SingleName      string `json:"single_name,omitempty"`
}

// Defaults applied by the loader when a Tiltfile does not set them.
const (
	DefaultMaxParallelUpdates = 3
	DefaultK8sUpsertTimeout   = 30 * time.Second
)
