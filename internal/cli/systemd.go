package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/server"
)

type systemdOptions struct {
	name   string
	http   string
	https  string
	driver string
	user   string
	bin    string
	socket bool
	extra  []string
}

func newSystemdCmd(g *globals) *cobra.Command {
	o := &systemdOptions{}
	cmd := &cobra.Command{
		Use:   "systemd",
		Short: "Print systemd units that run slipway serve on this host (with --socket, socket activation too)",
		Long: `systemd prints a service unit for slipway serve, to install as
/etc/systemd/system/<name>.service. It runs serve with KillMode=process, so a
restart of serve stops serve only and the instances keep serving (serve adopts
them when it starts again, and restarts crashed ones); Restart=always brings it
back, and starting at boot (WantedBy=multi-user.target) brings the stores back
after a reboot. Type=notify: serve says when it serves. Delegate=yes lets serve
put each hook in a cgroup of its own, so a timed-out hook is killed with all it
started. systemctl reload runs an upgrade: the binary at ExecStart's path is
started again on the same sockets and the old serve drains (no connection is
refused).

With --socket it also prints <name>.socket: systemd then holds the router's (and
the API's) listening sockets, so even systemctl restart refuses no connection:
what arrives while serve restarts waits in the socket's queue.

The master key: keep <state-dir>/master.key (created 0600 on first start) in
your backups apart from the state, or give the key with SLIPWAY_MASTER_KEY in
an EnvironmentFile= (mode 0600) and no file is written.`,
		Example: `  slipway systemd --state-dir /var/lib/slipway --http 0.0.0.0:80 > /etc/systemd/system/slipway.service
  slipway systemd --state-dir /var/lib/slipway --http 0.0.0.0:80 --socket
  systemctl daemon-reload && systemctl enable --now slipway.socket slipway.service`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.data == "" {
				return usagef("--state-dir is required: the directory serve keeps its state in (e.g. /var/lib/slipway)")
			}
			dir, err := filepath.Abs(g.data)
			if err != nil {
				return usagef("--state-dir: %v", err)
			}
			if o.bin == "" {
				if o.bin, err = os.Executable(); err != nil {
					return fmt.Errorf("finding this binary: %w (pass --bin)", err)
				}
			}
			o.writeService(g.stdout, dir)
			if o.socket {
				fmt.Fprintf(g.stdout, "\n# ---- /etc/systemd/system/%s.socket ----\n", o.name)
				o.writeSocket(g.stdout, dir)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "slipway", "unit name")
	f.StringVar(&o.http, "http", "127.0.0.1:8080", "router address (serve --http)")
	f.StringVar(&o.https, "https", "", "router HTTPS address, if serve has one (serve --https)")
	f.StringVar(&o.driver, "driver", "process", "runtime (serve --driver)")
	f.StringVar(&o.user, "user", "", "run serve as this user (default root)")
	f.StringVar(&o.bin, "bin", "", "path of the slipway binary (default: this one)")
	f.BoolVar(&o.socket, "socket", false, "also print a .socket unit: systemd holds the listening sockets")
	f.StringArrayVar(&o.extra, "serve-arg", nil, "another argument for serve (repeatable), e.g. --serve-arg=--registry-listen=127.0.0.1:5050")
	return cmd
}

func (o *systemdOptions) writeService(w io.Writer, dir string) {
	args := []string{o.bin, "serve", "--state-dir", dir, "--http", o.http, "--driver", o.driver}
	if o.https != "" {
		args = append(args, "--https", o.https)
	}
	args = append(args, o.extra...)
	after := "network-online.target"
	if o.driver == "docker" || o.driver == "swarm" {
		after += " docker.service"
	}
	fmt.Fprintf(w, "# ---- /etc/systemd/system/%s.service ---- (printed by slipway systemd)\n", o.name)
	fmt.Fprintf(w, "[Unit]\nDescription=Slipway serve: router, runtime and control plane (%s)\nAfter=%s\nWants=network-online.target\n", dir, after)
	if o.socket {
		fmt.Fprintf(w, "Requires=%s.socket\nAfter=%s.socket\n", o.name, o.name)
	}
	fmt.Fprintf(w, "\n[Service]\nType=notify\n# The serve started by a reload reports its own pid.\nNotifyAccess=all\n")
	fmt.Fprintf(w, "ExecStart=%s\n", quoteArgs(args))
	fmt.Fprintf(w, "# Upgrade or restart without refusing a connection: replace the binary, then reload.\nExecReload=/bin/kill -HUP $MAINPID\n")
	fmt.Fprintf(w, "# Stop serve only: the instances keep serving and are adopted by the next serve.\nKillMode=process\n")
	fmt.Fprintf(w, "Restart=always\nRestartSec=1\nTimeoutStopSec=90\n# Hooks each get a cgroup of their own under serve's.\nDelegate=yes\n")
	if o.user != "" {
		fmt.Fprintf(w, "User=%s\n", o.user)
	}
	fmt.Fprintf(w, "# Optional: SLIPWAY_MASTER_KEY=... in a 0600 file instead of %s.\n#EnvironmentFile=-/etc/slipway/env\n", filepath.Join(dir, "master.key"))
	fmt.Fprintf(w, "\n[Install]\nWantedBy=multi-user.target\n")
}

func (o *systemdOptions) writeSocket(w io.Writer, dir string) {
	fmt.Fprintf(w, "[Unit]\nDescription=Slipway serve's listening sockets (%s)\n\n[Socket]\n", dir)
	fmt.Fprintf(w, "# serve matches each socket to its listener by address.\nListenStream=%s\n", o.http)
	if o.https != "" {
		fmt.Fprintf(w, "ListenStream=%s\n", o.https)
	}
	fmt.Fprintf(w, "ListenStream=%s\nSocketMode=0600\n", server.SocketPath(dir))
	if o.user != "" {
		fmt.Fprintf(w, "SocketUser=%s\n", o.user)
	}
	fmt.Fprintf(w, "Service=%s.service\n\n[Install]\nWantedBy=sockets.target\n", o.name)
}

// quoteArgs joins argv for ExecStart, quoting what has spaces or quotes.
func quoteArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \t\"'\\$%") {
			a = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`).Replace(a) + `"`
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
