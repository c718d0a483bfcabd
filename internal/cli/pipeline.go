package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/deployfile"
	"github.com/slipway-dev/slipway/internal/pipeline"
)

type pipelineOptions struct {
	storeIDs []string
	json     bool
}

func newPipelineCmd(g *globals) *cobra.Command {
	o := &pipelineOptions{}
	cmd := &cobra.Command{
		Use:   "pipeline",
		Short: "Show a store's deploy pipeline: its stages, hooks and where each hook comes from",
		Long: `pipeline prints the stages a deploy of the store runs, in order: pre-deploy,
install (or destructive-install with --destructive), deploy, post-deploy, verify;
and for each hook its command, the app whose image runs it, its timeout and
where it was set.

Hooks come from deploy.yml files, nearest wins per hook:

  built-in defaults (no hooks)
  < deploy.yml at the monorepo root
  < <store dir>/deploy.yml of each ancestor store, outermost first
  < <store dir>/deploy.yml of the store
  < SLIPWAY_HOOK_BEFORE_DEPLOY, SLIPWAY_HOOK_INSTALL,
    SLIPWAY_HOOK_DESTRUCTIVE_INSTALL, SLIPWAY_HOOK_AFTER_DEPLOY

A hook set to null or "" in a file clears the inherited one. A variable replaces
only the command (the app and timeout of the hook it overrides stay), and is
read from this shell: a deploy run elsewhere sees its own environment.`,
		Example: `  slipway pipeline --store-id us
  slipway pipeline --store-id us --json
  SLIPWAY_HOOK_INSTALL="node migrate.js" slipway pipeline --store-id us`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			id, err := oneStore(cfg, o.storeIDs)
			if err != nil {
				return err
			}
			eff, err := deployfile.Load(cfg, id)
			if err != nil {
				return err
			}
			for _, w := range eff.Warnings {
				fmt.Fprintln(g.stderr, w.String())
			}
			v := newPipelineView(cfg, eff)
			if o.json {
				return printJSON(g.stdout, v)
			}
			v.print(g.stdout)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.storeIDs, "store-id", nil, "the store whose pipeline to show")
	f.BoolVar(&o.json, "json", false, "print the pipeline as JSON")
	return cmd
}

// oneStore resolves --store-id to exactly one deployable store.
func oneStore(cfg *config.Config, ids []string) (string, error) {
	if len(ids) == 0 {
		return "", usagef("choose a store with --store-id ID")
	}
	if len(ids) > 1 {
		return "", usagef("--store-id: this command takes one store, got %s", strings.Join(ids, ", "))
	}
	sel, err := selectStores(cfg, ids, false)
	if err != nil {
		return "", err
	}
	return sel[0], nil
}

// pipelineView is what `slipway pipeline` prints, and its JSON.
type pipelineView struct {
	Store    string           `json:"store"`
	Files    []string         `json:"files"`
	Stages   []stageView      `json:"stages"`
	Warnings []config.Problem `json:"warnings,omitempty"`
}

type stageView struct {
	Stage string `json:"stage"`
	// Pipeline is "normal" or "destructive" for a stage only that pipeline runs; "" for both.
	Pipeline string `json:"pipeline,omitempty"`
	// BuiltIn stages are Slipway's own; the others run the hook.
	BuiltIn bool      `json:"builtIn,omitempty"`
	Hook    *hookView `json:"hook,omitempty"`
	Note    string    `json:"note"`
}

type hookView struct {
	Key string `json:"key"`
	// Command is "" when the stage runs no hook.
	Command        string `json:"command"`
	App            string `json:"app,omitempty"`
	AppDefault     bool   `json:"appDefault,omitempty"`
	Timeout        string `json:"timeout,omitempty"`
	TimeoutDefault bool   `json:"timeoutDefault,omitempty"`
	Source         string `json:"source"`
	Cleared        bool   `json:"cleared,omitempty"`
	Overrides      string `json:"overrides,omitempty"`
}

// Notes on each stage; they describe what internal/pipeline does.
const (
	notePreDeploy   = "runs in the running release's image; pre-deploy is skipped on a store's first deploy"
	noteInstall     = "runs once in the new image, before it gets traffic"
	noteDestructive = "runs instead of install with `slipway deploy --destructive`, after the store's /data is emptied"
	noteDeploy      = "start the new release, health-gate every app, switch the router at once, drain and stop the old release"
	notePostDeploy  = "runs in the new, live release; if it fails the release stays live"
	noteVerify      = "health through the router, domains resolve, certificates valid"
)

func newPipelineView(cfg *config.Config, eff deployfile.Effective) pipelineView {
	defaultApp := ""
	if apps := cfg.AppsFor(eff.Store); len(apps) > 0 {
		defaultApp = apps[0].ID
	}
	hv := func(h deployfile.Hook) *hookView {
		v := &hookView{Key: h.Key, Command: h.Command, Source: h.Source, Cleared: h.Cleared, Overrides: h.Overrides}
		if h.Command == "" {
			return v
		}
		v.App, v.Timeout = h.App, fmtDuration(h.Timeout)
		if v.App == "" {
			v.App, v.AppDefault = defaultApp, true
		}
		if h.Timeout <= 0 {
			v.Timeout, v.TimeoutDefault = fmtDuration(pipeline.DefaultHookTimeout), true
		}
		return v
	}
	files := eff.Files
	if files == nil {
		files = []string{}
	}
	return pipelineView{Store: eff.Store, Files: files, Warnings: eff.Warnings, Stages: []stageView{
		{Stage: pipeline.StagePreDeploy, Hook: hv(eff.PreDeploy), Note: notePreDeploy},
		{Stage: pipeline.StageInstall, Pipeline: "normal", Hook: hv(eff.Install), Note: noteInstall},
		{Stage: pipeline.StageInstall, Pipeline: "destructive", Hook: hv(eff.DestructiveInstall), Note: noteDestructive},
		{Stage: pipeline.StageDeploy, BuiltIn: true, Note: noteDeploy},
		{Stage: pipeline.StagePostDeploy, Hook: hv(eff.PostDeploy), Note: notePostDeploy},
		{Stage: pipeline.StageVerify, BuiltIn: true, Note: noteVerify},
	}}
}

func (v pipelineView) print(w io.Writer) {
	fmt.Fprintf(w, "Deploy pipeline of store %s\n", v.Store)
	if len(v.Files) == 0 {
		fmt.Fprintf(w, "deploy files: none (add %s at the root or in a store directory)\n\n", deployfile.FileName)
	} else {
		fmt.Fprintf(w, "deploy files: %s\n\n", strings.Join(v.Files, ", "))
	}
	const indent = "                         "
	n := 0
	for _, s := range v.Stages {
		var label string
		if s.Pipeline == "destructive" {
			label = "   " + s.Hook.Key
		} else {
			n++
			label = fmt.Sprintf("%d. %s", n, s.Stage)
		}
		if s.BuiltIn {
			fmt.Fprintf(w, "%-25sbuilt in: %s\n", label, s.Note)
			continue
		}
		h := s.Hook
		if h.Command == "" {
			why := "no hook (default)"
			if h.Cleared {
				why = "no hook (cleared at " + h.Source + ")"
			}
			fmt.Fprintf(w, "%-25s%s\n", label, why)
		} else {
			fmt.Fprintf(w, "%-25s%s\n", label, h.Command)
			app, timeout := h.App, h.Timeout
			if h.AppDefault {
				app += " (default: the store's first app)"
			}
			if h.TimeoutDefault {
				timeout += " (default)"
			}
			src := h.Source
			if h.Overrides != "" {
				src += ", over " + h.Overrides
			}
			fmt.Fprintf(w, "%sapp %s, timeout %s, from %s\n", indent, app, timeout, src)
		}
		fmt.Fprintf(w, "%s%s\n", indent, s.Note)
	}
}

// fmtDuration prints 2m rather than 2m0s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// pipelineHooks converts a store's effective deploy-file hooks to the runner's.
func pipelineHooks(e deployfile.Effective) pipeline.Hooks {
	conv := func(h deployfile.Hook) pipeline.Hook {
		return pipeline.Hook{Command: h.Command, App: h.App, Timeout: h.Timeout}
	}
	return pipeline.Hooks{PreDeploy: conv(e.PreDeploy), Install: conv(e.Install),
		DestructiveInstall: conv(e.DestructiveInstall), PostDeploy: conv(e.PostDeploy)}
}
