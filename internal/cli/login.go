package cli

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/server"
)

func newLoginCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "login URL",
		Short: "Keep a remote server's URL and token, so later commands go there without --server",
		Long: `login checks a token against the server at URL (slipway serve --api) and keeps
both in a 0600 file under your config dir (SLIPWAY_LOGIN_FILE overrides it).
Later commands given no --server talk to that server. The token is read from
SLIPWAY_TOKEN, else from standard input: never from the command line, where
other users of the machine can read it.`,
		Example: `  slipway login https://deploy.example.com:7443 < token.txt
  SLIPWAY_TOKEN=slw_... slipway login https://deploy.example.com:7443`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			url := strings.TrimRight(args[0], "/")
			token := os.Getenv("SLIPWAY_TOKEN")
			if token == "" {
				if isTerminal(os.Stdin) {
					fmt.Fprint(g.stderr, "token: ")
				}
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return usagef("no token: set SLIPWAY_TOKEN or pipe the token on standard input")
				}
				token = strings.TrimSpace(line)
			}
			c, err := server.NewRemoteClient(url, token)
			if err != nil {
				return &usageError{err}
			}
			id, err := c.WhoAmI(cmd.Context())
			if err != nil {
				return fmt.Errorf("checking the token at %s: %w", url, err)
			}
			l, path, err := readLogins()
			if err != nil {
				return err
			}
			l.Server, l.Tokens[url] = url, token
			if err := l.write(path); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "logged in to %s as %s (scope %s%s); kept in %s\n", url, id.Name, id.Scope, storesNote(id.Stores), path)
			return nil
		},
	}
}

func newLogoutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "logout [URL]",
		Short:   "Forget a server's token (default: the server of slipway login)",
		Example: "  slipway logout\n  slipway logout https://deploy.example.com:7443",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, path, err := readLogins()
			if err != nil {
				return err
			}
			url := l.Server
			if len(args) == 1 {
				url = strings.TrimRight(args[0], "/")
			}
			if url == "" || (l.Tokens[url] == "" && l.Server != url) {
				return usagef("not logged in to %s", dash(url))
			}
			delete(l.Tokens, url)
			if l.Server == url {
				l.Server = ""
			}
			if err := l.write(path); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "logged out of %s\n", url)
			return nil
		},
	}
}
