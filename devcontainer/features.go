package devcontainer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/tailscale/hujson"
)

// Feature is a local Feature (a "./path" key of "features") to install.
type Feature struct {
	// Ref is the key as written in devcontainer.json.
	Ref string
	// Dir is the Feature's folder: it holds devcontainer-feature.json and
	// install.sh.
	Dir string
	ID  string
	// Env are the options (user values over defaults) as install.sh sees
	// them: names upper-cased, other characters turned into "_".
	Env map[string]string
	// ContainerEnv, Privileged, Init, CapAdd and SecurityOpt come from
	// devcontainer-feature.json and apply to the container.
	ContainerEnv map[string]string
	Privileged   bool
	Init         bool
	CapAdd       []string
	SecurityOpt  []string
}

// featureMeta is devcontainer-feature.json.
type featureMeta struct {
	ID      string `json:"id"`
	Version string `json:"version"`
	Options map[string]struct {
		Type    string `json:"type"`
		Default any    `json:"default"`
	} `json:"options"`
	ContainerEnv map[string]string `json:"containerEnv"`
	Privileged   bool              `json:"privileged"`
	Init         bool              `json:"init"`
	CapAdd       []string          `json:"capAdd"`
	SecurityOpt  []string          `json:"securityOpt"`
}

// loadFeatures reads "features" in the order written (maps would lose it).
func (c *Config) loadFeatures(doc *document, values map[string]json.RawMessage, v *vars) error {
	fv := doc.tree.Find("/features")
	if fv == nil {
		return nil
	}
	obj, ok := fv.Value.(*hujson.Object)
	if !ok {
		if lit, isLit := fv.Value.(hujson.Literal); isLit && lit.Kind() == 'n' {
			return nil
		}
		return doc.errorAt("/features", "\"features\" must be an object of feature references to options")
	}
	for _, m := range obj.Members {
		ref := m.Name.Value.(hujson.Literal).String()
		ptr := "/features/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(ref)
		if !strings.HasPrefix(ref, "./") && !strings.HasPrefix(ref, "../") {
			return doc.errorAt(ptr, "feature %q needs a registry (or a download), and loop installs only local Features: copy the Feature's folder into .devcontainer and reference it as \"./<folder>\"", ref)
		}
		f, err := loadFeature(doc, ptr, c.Dir, ref, values[v.expand(ref)])
		if err != nil {
			return err
		}
		c.Features = append(c.Features, f)
	}
	return nil
}

var nonWord = regexp.MustCompile(`[^\w_]`)
var leadingDigits = regexp.MustCompile(`^[\d_]+`)

// optionEnv is the spec's option-name-to-variable rule.
func optionEnv(name string) string {
	return strings.ToUpper(leadingDigits.ReplaceAllString(nonWord.ReplaceAllString(name, "_"), "_"))
}

func loadFeature(doc *document, ptr, dir, ref string, opts json.RawMessage) (Feature, error) {
	f := Feature{Ref: ref, Dir: filepath.Join(dir, ref), Env: map[string]string{}}
	metaPath := filepath.Join(f.Dir, "devcontainer-feature.json")
	src, err := os.ReadFile(metaPath)
	if err != nil {
		return f, doc.errorAt(ptr, "feature %q: %s is missing: a local Feature is a folder with devcontainer-feature.json and install.sh", ref, metaPath)
	}
	if _, err := os.Stat(filepath.Join(f.Dir, "install.sh")); err != nil {
		return f, doc.errorAt(ptr, "feature %q: install.sh is missing in %s", ref, f.Dir)
	}
	mdoc, err := parseJSONC(metaPath, src)
	if err != nil {
		return f, err
	}
	var meta featureMeta
	if err := mdoc.decode(&meta); err != nil {
		return f, err
	}
	if meta.ID == "" {
		return f, mdoc.errorAt("", "\"id\" is missing: name the Feature (the folder name, by convention)")
	}
	f.ID, f.ContainerEnv, f.Privileged, f.Init = meta.ID, meta.ContainerEnv, meta.Privileged, meta.Init
	f.CapAdd, f.SecurityOpt = meta.CapAdd, meta.SecurityOpt
	for name, o := range meta.Options {
		if o.Default != nil {
			f.Env[optionEnv(name)] = fmt.Sprint(o.Default)
		}
	}
	switch kindOf(opts) {
	case "object":
		var user map[string]any
		if err := json.Unmarshal(opts, &user); err != nil {
			return f, doc.errorAt(ptr, "feature options must be an object: %v", err)
		}
		names := make([]string, 0, len(user))
		for k := range user {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if _, known := meta.Options[k]; !known {
				return f, doc.errorAt(ptr+"/"+k, "feature %q has no option %q (it has: %s)", ref, k, optionNames(meta))
			}
			f.Env[optionEnv(k)] = fmt.Sprint(user[k])
		}
	case "string":
		// The short form sets the "version" option.
		var s string
		_ = json.Unmarshal(opts, &s)
		f.Env["VERSION"] = s
	case "bool", "null", "nothing":
	default:
		return f, doc.errorAt(ptr, "feature options must be an object, not %s", kindOf(opts))
	}
	return f, nil
}

func optionNames(m featureMeta) string {
	if len(m.Options) == 0 {
		return "none"
	}
	names := make([]string, 0, len(m.Options))
	for k := range m.Options {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
