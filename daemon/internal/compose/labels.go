package compose

// Labels Docker Compose puts on what it creates, and reads back in ps, logs
// and down. The values must match Compose's spelling exactly.
const (
	LabelProject         = "com.docker.compose.project"
	LabelService         = "com.docker.compose.service"
	LabelContainerNumber = "com.docker.compose.container-number"
	LabelOneoff          = "com.docker.compose.oneoff"
	LabelConfigHash      = "com.docker.compose.config-hash"
	LabelWorkingDir      = "com.docker.compose.project.working_dir"
	LabelConfigFiles     = "com.docker.compose.project.config_files"
	LabelEnvFile         = "com.docker.compose.project.environment_file"
	LabelVersion         = "com.docker.compose.version"
	LabelImage           = "com.docker.compose.image"
	LabelDependsOn       = "com.docker.compose.depends_on"
	LabelNetwork         = "com.docker.compose.network"
	LabelVolume          = "com.docker.compose.volume"

	// LabelManaged marks what loop created, so loop (and a developer) can
	// tell it apart from containers made by the compose CLI.
	LabelManaged = "dev.loop.managed"
)

// ComposeVersion is the value of com.docker.compose.version. Compose only
// displays it; a v2 version keeps tools that parse it happy.
const ComposeVersion = "2.40.0"
