package devcontainer

import (
	"path"
	"path/filepath"
	"strings"
)

// vars resolves the spec's ${...} variables. Unknown variables, and
// ${containerEnv:...} while no container environment is known, are left as
// written (the reference CLI does the same), so a second pass can resolve
// them once the container exists.
type vars struct {
	localWorkspaceFolder     string
	containerWorkspaceFolder string
	devcontainerID           string
	localEnv                 func(string) (string, bool)
	// containerEnv is nil until the container's environment is known.
	containerEnv map[string]string
}

// expand replaces every ${...} in s that v knows.
func (v *vars) expand(s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		name := s[i+2 : i+j]
		if val, ok := v.lookup(name); ok {
			b.WriteString(val)
		} else {
			b.WriteString(s[i : i+j+1])
		}
		s = s[i+j+1:]
	}
}

func (v *vars) lookup(name string) (string, bool) {
	switch name {
	case "localWorkspaceFolder":
		return v.localWorkspaceFolder, v.localWorkspaceFolder != ""
	case "localWorkspaceFolderBasename":
		return filepath.Base(v.localWorkspaceFolder), v.localWorkspaceFolder != ""
	case "containerWorkspaceFolder":
		return v.containerWorkspaceFolder, v.containerWorkspaceFolder != ""
	case "containerWorkspaceFolderBasename":
		return path.Base(v.containerWorkspaceFolder), v.containerWorkspaceFolder != ""
	case "devcontainerId":
		return v.devcontainerID, v.devcontainerID != ""
	}
	kind, rest, ok := strings.Cut(name, ":")
	if !ok {
		return "", false
	}
	key, def, _ := strings.Cut(rest, ":")
	switch kind {
	case "localEnv", "env":
		if val, ok := v.localEnv(key); ok {
			return val, true
		}
		// A missing variable without a default becomes empty, as in the
		// reference implementation.
		return def, true
	case "containerEnv":
		if v.containerEnv == nil {
			return "", false
		}
		if val, ok := v.containerEnv[key]; ok {
			return val, true
		}
		return def, true
	}
	return "", false
}
