package model

// Resource is one resource as `loop up` runs it, assembled from a Config by
// the kinds (local_resource commands, Compose services, Kubernetes objects
// grouped by workload): what `loop dump resources` prints.
type Resource struct {
	Name string `json:"name"`
	// Type is local, compose or k8s.
	Type string `json:"type"`
	ResourceDetail
	ResourceDeps []string    `json:"resource_deps,omitempty"`
	Links        []Link      `json:"links,omitempty"`
	Labels       []string    `json:"labels,omitempty"`
	TriggerMode  TriggerMode `json:"trigger_mode"`
	AutoInit     bool        `json:"auto_init"`
}

// ResourceDetail is what only the resource's kind knows: its objects,
// service or commands, and the images it builds.
type ResourceDetail struct {
	// Objects are a Kubernetes resource's objects, in the order they were
	// grouped (the workload first).
	Objects []ObjectRef `json:"objects,omitempty"`
	// Compose is a Compose service's project and name.
	Compose *ComposeRef `json:"compose,omitempty"`
	// Local is a local_resource's commands and watched files.
	Local *LocalRef `json:"local,omitempty"`
	// Images are the images the resource builds before it deploys.
	Images []ResourceImage `json:"images,omitempty"`
	// Custom is a k8s_custom_deploy's commands and watched files.
	Custom *CustomRef `json:"custom,omitempty"`
}

// CustomRef is what a k8s_custom_deploy runs: its objects are what ApplyCmd
// prints when it runs.
type CustomRef struct {
	ApplyCmd  []string `json:"apply_cmd"`
	DeleteCmd []string `json:"delete_cmd"`
	Deps      []string `json:"deps,omitempty"`
}

// ObjectRef names a Kubernetes object.
type ObjectRef struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// ComposeRef names a Compose service and the image it runs.
type ComposeRef struct {
	Project string `json:"project"`
	Service string `json:"service"`
	Image   string `json:"image,omitempty"`
}

// LocalRef is what a local_resource runs and watches.
type LocalRef struct {
	Cmd      []string `json:"cmd,omitempty"`
	ServeCmd []string `json:"serve_cmd,omitempty"`
	Dir      string   `json:"dir,omitempty"`
	Deps     []string `json:"deps,omitempty"`
}

// ResourceImage is an image a resource builds, with the live_update that
// keeps its containers current.
type ResourceImage struct {
	Ref     string `json:"ref"`
	Context string `json:"context,omitempty"`
	// Dockerfile is the Dockerfile's path; empty for dockerfile_contents
	// and custom_build.
	Dockerfile string `json:"dockerfile,omitempty"`
	// Custom is a custom_build's command.
	Custom []string `json:"custom_command,omitempty"`
	// BuiltFrom are the refs of the config's images it is built from (FROM
	// or COPY --from of another docker_build, custom_build image_deps).
	BuiltFrom []string `json:"built_from,omitempty"`
	// Entrypoint and ContainerArgs replace the command of the containers
	// that run the image (entrypoint=, container_args=).
	Entrypoint    []string    `json:"entrypoint,omitempty"`
	ContainerArgs []string    `json:"container_args,omitempty"`
	LiveUpdate    *LiveUpdate `json:"live_update,omitempty"`
}
