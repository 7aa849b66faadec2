package model

import (
	"fmt"
	"strings"
)

// ParseSSHSpecs checks docker_build(ssh=) values, in `docker build --ssh`
// form: "default" (the agent at $SSH_AUTH_SOCK), "ID" or "ID=PATH[,PATH...]"
// (agent sockets or key files). It returns them as given.
func ParseSSHSpecs(specs []string) ([]string, error) {
	seen := map[string]bool{}
	for _, s := range specs {
		id, paths, _ := strings.Cut(s, "=")
		if id == "" || strings.ContainsAny(id, " ,") {
			return nil, fmt.Errorf("%q: want ID or ID=PATH[,PATH] (as docker build --ssh)", s)
		}
		if strings.Contains(s, "=") && strings.Trim(paths, ",") == "" {
			return nil, fmt.Errorf("%q: no path after =", s)
		}
		if seen[id] {
			return nil, fmt.Errorf("ssh id %q given twice", id)
		}
		seen[id] = true
	}
	return specs, nil
}

// SecretSpec is one docker_build(secret=) value.
type SecretSpec struct {
	ID, Src, Env string
}

// ParseSecretSpec reads "id=ID,src=PATH" / "id=ID,env=VAR" (also
// source=, type=file|env, and a bare "id=ID" meaning env ID when set, as
// docker build --secret).
func ParseSecretSpec(s string) (SecretSpec, error) {
	var sp SecretSpec
	typ := ""
	for _, field := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(field), "=")
		if !ok {
			return sp, fmt.Errorf("%q: %q is not KEY=VALUE", s, field)
		}
		switch strings.ToLower(k) {
		case "id":
			sp.ID = v
		case "src", "source":
			sp.Src = v
		case "env":
			sp.Env = v
		case "type":
			if v != "file" && v != "env" {
				return sp, fmt.Errorf("%q: type must be file or env", s)
			}
			typ = v
		default:
			return sp, fmt.Errorf("%q: unknown key %q (id, src, env, type)", s, k)
		}
	}
	if sp.ID == "" {
		return sp, fmt.Errorf("%q: no id", s)
	}
	if typ == "env" && sp.Env == "" {
		sp.Env, sp.Src = sp.Src, ""
	}
	if sp.Src == "" && sp.Env == "" {
		sp.Env = sp.ID
	}
	return sp, nil
}

// ParseSecretSpecs checks docker_build(secret=) values and returns them
// with each src made absolute by abs.
func ParseSecretSpecs(specs []string, abs func(string) string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, s := range specs {
		sp, err := ParseSecretSpec(s)
		if err != nil {
			return nil, err
		}
		if seen[sp.ID] {
			return nil, fmt.Errorf("secret id %q given twice", sp.ID)
		}
		seen[sp.ID] = true
		v := "id=" + sp.ID
		if sp.Src != "" {
			v += ",src=" + abs(sp.Src)
		} else {
			v += ",env=" + sp.Env
		}
		out = append(out, v)
	}
	return out, nil
}
