package config

import (
	"strings"
	"testing"
)

func TestBuildKeyCommandOrDockerfile(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"slipway.yaml": `apps:
  - {id: cmd, path: apps/cmd, build: "make dist"}
  - id: web
    path: apps/web
    framework: shop
    build: {target: runtime, args: {A: "1"}, secrets: [NPM_TOKEN], builder: buildah}
stores:
  s: {projectName: s, region: r, framework: shop}
`,
		"apps/cmd/a": "", "apps/web/Dockerfile": "FROM scratch\n", "apps/stores/s/": "",
	})
	cfg, err := Load(root, "")
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.App("cmd"); a.Build != "make dist" || a.BuildSpec.IsDockerfile() {
		t.Errorf("cmd: Build %q, BuildSpec %+v", a.Build, a.BuildSpec)
	}
	b := cfg.App("web").BuildSpec
	if !b.IsDockerfile() || b.Dockerfile != "Dockerfile" || b.Target != "runtime" || b.Args["A"] != "1" || len(b.Secrets) != 1 || b.Builder != "buildah" {
		t.Errorf("web: %+v", b)
	}
}

func TestBuildKeyErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ build, want string }{
		{`{dockerfile: ../Dockerfile}`, `apps[0].build.dockerfile: "../Dockerfile" contains '..'`},
		{`{dockerfile: docker/Missing}`, `apps[0].build.dockerfile: apps/web/docker/Missing does not exist`},
		{`{secrets: [npm-token]}`, `apps[0].build.secrets[0]: "npm-token" is not a valid secret name`},
		{`{secrets: [A, A]}`, `apps[0].build.secrets[1]: "A" is listed twice`},
		{`{args: {"bad-name": x}}`, `apps[0].build.args: "bad-name" is not a valid build arg name`},
		{`{dockerfile: Dockerfile, stage: x}`, `unknown key "apps[0].build.stage"`},
		{`{builder: kaniko}`, `apps[0].build.builder: "kaniko" is not a builder`},
	} {
		root := t.TempDir()
		write(t, root, map[string]string{
			"slipway.yaml":        "apps:\n  - {id: web, path: apps/web, framework: shop, build: " + tc.build + "}\nstores:\n  s: {projectName: s, region: r, framework: shop}\n",
			"apps/web/Dockerfile": "FROM scratch\n", "apps/stores/s/": "",
		})
		_, err := Load(root, "")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "slipway.yaml:2") {
			t.Errorf("build: %s: error %v, want one at slipway.yaml:2 containing %q", tc.build, err, tc.want)
		}
	}
}
