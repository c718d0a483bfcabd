package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/slipway-dev/slipway/internal/console"
)

func newConsoleCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Manage the web console that serve shows on its API listener at /",
		Long: `The console is served by slipway serve on its API listener (--api) at /: a fleet
view, store pages, live job logs and deploy buttons. Log in with the admin
password set here, or with an API token (its scope decides which buttons work).
On plain HTTP, browse it at http://localhost:PORT (browsers keep its Secure
cookies on localhost only); elsewhere put it behind TLS (--api-cert/--api-key).`,
		Example: `  slipway console passwd
  slipway serve --api 127.0.0.1:7443 --repo https://git.example.com/shop.git`,
	}
	var fromStdin bool
	passwd := &cobra.Command{
		Use:   "passwd",
		Short: "Set the console's admin password (stored as a bcrypt hash in the state dir)",
		Long: `passwd sets the password of the console's admin login. It is read from the
terminal (twice, not echoed) or, with --password-stdin, from standard input;
never from the command line. Only its bcrypt hash is stored, in
<state-dir>/console.passwd (mode 0600). A running serve uses it at the next login.`,
		Example: `  slipway console passwd
  printf '%s' "$PASSWORD" | slipway console passwd --password-stdin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dataDir := g.data
			if dataDir == "" {
				cfg, err := g.load()
				if err != nil {
					return fmt.Errorf("%w (or pass --state-dir)", err)
				}
				dataDir = g.dataDir(cfg)
			}
			pw, err := readNewPassword(cmd.InOrStdin(), g.stderr, fromStdin)
			if err != nil {
				return err
			}
			if err := console.SetPassword(dataDir, pw); err != nil {
				return &usageError{err}
			}
			fmt.Fprintf(g.stdout, "console password set (%s)\n", console.PasswordFile(dataDir))
			return nil
		},
	}
	passwd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from standard input")
	cmd.AddCommand(passwd)
	return cmd
}

func readNewPassword(in io.Reader, prompt io.Writer, fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", err
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", usagef("standard input is not a terminal: pass --password-stdin and pipe the password in")
	}
	fmt.Fprint(prompt, "New console password: ")
	a, err := term.ReadPassword(fd)
	fmt.Fprintln(prompt)
	if err != nil {
		return "", err
	}
	fmt.Fprint(prompt, "Again: ")
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(prompt)
	if err != nil {
		return "", err
	}
	if string(a) != string(b) {
		return "", usagef("the passwords differ")
	}
	return string(a), nil
}
