// Command loop-agent is loop's in-container sync agent. loop copies it into a
// container once (as /.loop/agent), starts it through the exec API and keeps
// the stream open: each batch of file changes arrives on stdin as one
// wire.Request and is acknowledged with one wire.Reply on stdout. It needs
// nothing from the image (no shell, tar or rm), so scratch and distroless
// images work. It exits when stdin ends.
//
// Run as `loop-agent supervise [-socket PATH] -- CMD ARGS...` it is instead
// the container's main process, in front of the application, so that
// restart_container() restarts only the application, not the container:
//
//   - loop sets the container's entrypoint to /.loop/agent supervise --
//     followed by the effective entrypoint and command, and installs the
//     agent before the container starts.
//   - The supervisor starts CMD in its own process group with the
//     container's stdin, stdout and stderr (docker logs see the
//     application's output unchanged), forwards every signal it receives
//     (SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, ...) to that
//     group, and reaps every child, orphans included (it is PID 1, or a
//     child subreaper under init: true).
//   - When CMD exits on its own, the supervisor exits with its exit code,
//     or 128+signal, as Docker would report CMD's: restart policies,
//     health checks and depends_on conditions see no difference. A CMD
//     that cannot be executed gives 127 (not found) or 126.
//   - It listens on the unix socket /.loop/supervise.sock. A connection
//     carries one line, `restart <grace-ms>`: the supervisor sends SIGTERM
//     to the group, SIGKILL after the grace period (10 s when 0), kills
//     what is left of the group, starts CMD again and answers `ok <pid>`
//     (or `error <message>`). A SIGTERM, SIGINT or SIGQUIT arriving during
//     a restart stops the container instead.
//   - loop asks for a restart through the sync agent's held exec stream: a
//     wire RestartProcess request, which the session agent forwards to
//     the socket and answers with the new PID once the process started.
//     The exec stream is not part of the process group, so the session
//     survives the restart.
//
// Run as `loop-agent install DEST` it copies itself to DEST and exits: in a
// pod, an init container running loop's agent image puts the agent into an
// emptyDir volume this way, and the application's container runs the
// supervisor from there (/.loop/agent, the volume mounted at /.loop).
//
// Build it small and static:
//
//	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' ./cmd/loop-agent
package main

import (
	"bufio"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "supervise":
			os.Exit(superviseMain(os.Args[2:], os.Stderr))
		case "install":
			os.Exit(installMain(os.Args[2:], os.Stderr))
		}
	}
	if err := serve(bufio.NewReaderSize(os.Stdin, 256<<10), os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "loop-agent: %v\n", err)
		os.Exit(1)
	}
}
