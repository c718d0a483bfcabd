package main

import (
	"os"
	"path/filepath"
)

// The bench's monorepo: one store with one small Node.js app, so that both
// systems switch the same backend. The app builds with a no-op command and
// ships server.js alone.
var repoFiles = map[string]string{
	"slipway.yaml": `project: bench
apps:
  - id: web
    path: apps/web
    framework: next
    build: "true"
    port: 3000
    health: {path: /healthz}
    entrypoint: [node, server.js]
    deploy: {include: ["server.js"]}
stores:
  shop: {projectName: bench-shop, region: local, framework: next}
`,
	"apps/web/server.js": `const http = require("http");
const release = process.env.SLIPWAY_RELEASE || process.env.RELEASE || "?";
const server = http.createServer((req, res) => {
  if (req.url === "/healthz") { res.end("ok"); return; }
  res.setHeader("X-Release", release);
  res.end("release=" + release + "\n");
});
server.listen(Number(process.env.PORT || 3000), process.env.HOST || "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`,
	"apps/stores/shop/README.md": "The bench's only store.\n",
	".gitignore":                 ".out/\n.slipway/\n",
}

func writeRepo(dir string) error {
	for name, body := range repoFiles {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}
