package config

import (
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
)

// SourceSpec is the repository `slipway serve` deploys from on a push.
type SourceSpec struct {
	Pos Pos `yaml:"-" json:"-"`
	// Repo is an https://, ssh://, git@host:path or file:// URL, or a local path.
	Repo string `yaml:"repo" json:"repo,omitempty"`
	// Branch deploys on a push; default main.
	Branch string `yaml:"branch" json:"branch,omitempty"`
	// TokenFile holds an HTTPS access token; KeyFile an SSH deploy key. Relative to the config file.
	TokenFile string `yaml:"tokenFile" json:"tokenFile,omitempty"`
	KeyFile   string `yaml:"keyFile" json:"keyFile,omitempty"`
	// Webhook secret files, one per provider. Relative to the config file.
	GitHubSecretFile string `yaml:"githubSecretFile" json:"githubSecretFile,omitempty"`
	GitLabSecretFile string `yaml:"gitlabSecretFile" json:"gitlabSecretFile,omitempty"`
	GiteaSecretFile  string `yaml:"giteaSecretFile" json:"giteaSecretFile,omitempty"`
}

var branchNameRe = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)

// source validates source: and makes its file names absolute.
func (v *validator) source() {
	s := &v.c.Source
	files := []*string{&s.TokenFile, &s.KeyFile, &s.GitHubSecretFile, &s.GitLabSecretFile, &s.GiteaSecretFile}
	any := s.Repo != "" || s.Branch != ""
	for _, f := range files {
		any = any || *f != ""
	}
	if !any {
		return
	}
	file, pos := v.c.File, s.Pos
	switch {
	case s.Repo == "":
		v.ps.errorf(file, pos, "add repo: URL or path", "source: no repo given")
	case strings.HasPrefix(s.Repo, "-"):
		v.ps.errorf(file, pos, "", "source.repo: %q is not a repository URL", s.Repo)
	case hasPassword(s.Repo):
		v.ps.errorf(file, pos, "put the token in a file and name it with source.tokenFile", "source.repo: the URL holds a password")
	}
	if s.Branch == "" {
		s.Branch = "main"
	}
	if !branchNameRe.MatchString(s.Branch) || strings.HasPrefix(s.Branch, "-") || strings.Contains(s.Branch, "..") {
		v.ps.errorf(file, pos, "", "source.branch: %q is not a branch name", s.Branch)
	}
	if s.TokenFile != "" && s.KeyFile != "" {
		v.ps.errorf(file, pos, "HTTPS takes a token, SSH a key", "source: give tokenFile or keyFile, not both")
	}
	for _, f := range files {
		if *f != "" && !filepath.IsAbs(*f) {
			*f = filepath.Join(v.c.Root, *f)
		}
	}
}

func hasPassword(u string) bool {
	if !strings.Contains(u, "://") {
		return false
	}
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return false
	}
	_, ok := p.User.Password()
	return ok
}
