package devcontainer

import (
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/go-connections/nat"
	units "github.com/docker/go-units"
)

// RunArgs are the `docker run` flags of "runArgs" that loop understands.
type RunArgs struct {
	Env         []string
	Binds       []string
	Mounts      []mount.Mount
	Publish     []string
	CapAdd      []string
	CapDrop     []string
	SecurityOpt []string
	Labels      map[string]string
	AddHost     []string
	Devices     []container.DeviceMapping
	Privileged  bool
	Init        bool
	Network     string
	Hostname    string
	User        string
	Name        string
	ShmSize     int64
}

// runFlags lists the supported flags; true when the flag takes a value.
var runFlags = map[string]bool{
	"--env": true, "-e": true, "--volume": true, "-v": true, "--mount": true,
	"--publish": true, "-p": true, "--cap-add": true, "--cap-drop": true,
	"--security-opt": true, "--label": true, "-l": true, "--add-host": true,
	"--device": true, "--network": true, "--net": true, "--hostname": true,
	"-h": true, "--user": true, "-u": true, "--name": true, "--shm-size": true,
	"--privileged": false, "--init": false,
}

func parseRunArgs(doc *document, args []string) (RunArgs, error) {
	var ra RunArgs
	for i := 0; i < len(args); i++ {
		ptr := "/runArgs/" + strconv.Itoa(i)
		flag, val, hasVal := strings.Cut(args[i], "=")
		takes, ok := runFlags[flag]
		if !ok {
			return ra, doc.errorAt(ptr, "runArgs: loop does not support %q; supported are --env, --volume, --mount, --publish, --cap-add, --cap-drop, --security-opt, --label, --add-host, --device, --network, --hostname, --user, --name, --shm-size, --privileged, --init (remove it, or use the devcontainer.json property)", args[i])
		}
		if !takes {
			if hasVal && val != "true" {
				continue // --privileged=false
			}
			switch flag {
			case "--privileged":
				ra.Privileged = true
			case "--init":
				ra.Init = true
			}
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return ra, doc.errorAt(ptr, "runArgs: %s needs a value", flag)
			}
			i++
			val = args[i]
		}
		switch flag {
		case "--env", "-e":
			ra.Env = append(ra.Env, val)
		case "--volume", "-v":
			ra.Binds = append(ra.Binds, val)
		case "--mount":
			m, err := parseMountString(val)
			if err != nil {
				return ra, doc.errorAt(ptr, "runArgs: --mount: %v", err)
			}
			ra.Mounts = append(ra.Mounts, m)
		case "--publish", "-p":
			if _, _, err := nat.ParsePortSpecs([]string{val}); err != nil {
				return ra, doc.errorAt(ptr, "runArgs: %s %s: %v", flag, val, err)
			}
			ra.Publish = append(ra.Publish, val)
		case "--cap-add":
			ra.CapAdd = append(ra.CapAdd, val)
		case "--cap-drop":
			ra.CapDrop = append(ra.CapDrop, val)
		case "--security-opt":
			ra.SecurityOpt = append(ra.SecurityOpt, val)
		case "--label", "-l":
			if ra.Labels == nil {
				ra.Labels = map[string]string{}
			}
			k, v, _ := strings.Cut(val, "=")
			ra.Labels[k] = v
		case "--add-host":
			ra.AddHost = append(ra.AddHost, val)
		case "--device":
			parts := strings.Split(val, ":")
			d := container.DeviceMapping{PathOnHost: parts[0], PathInContainer: parts[0], CgroupPermissions: "rwm"}
			if len(parts) > 1 {
				d.PathInContainer = parts[1]
			}
			if len(parts) > 2 {
				d.CgroupPermissions = parts[2]
			}
			ra.Devices = append(ra.Devices, d)
		case "--network", "--net":
			ra.Network = val
		case "--hostname", "-h":
			ra.Hostname = val
		case "--user", "-u":
			ra.User = val
		case "--name":
			ra.Name = val
		case "--shm-size":
			n, err := units.RAMInBytes(val)
			if err != nil {
				return ra, doc.errorAt(ptr, "runArgs: --shm-size %s: %v", val, err)
			}
			ra.ShmSize = n
		}
	}
	return ra, nil
}
