package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writeFleet writes a monorepo with n stores under a template store, each
// overriding one storefront file so that every store has its own image.
func writeFleet(dir string, n int) error {
	server := `const http = require("http");
const server = http.createServer((req, res) => {
  if (req.url === "/healthz") { res.end("ok"); return; }
  res.end((process.env.SLIPWAY_STORE_ID || "?") + " " + require("./brand.json").name + "\n");
});
server.listen(Number(process.env.PORT || 3000), process.env.HOST || "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`
	files := map[string]string{
		"apps/storefront-unified-nextjs/server.js":  server,
		"apps/storefront-unified-nextjs/brand.json": `{"name": "base"}`,
		"apps/storefront-middleware/server.js":      strings.Replace(server, `require("./brand.json").name`, `"middleware"`, 1),
		"apps/stores/brand/README.md":               "template store\n",
	}
	var cfg strings.Builder
	cfg.WriteString(`project: fleet
apps:
  - id: storefront-unified-nextjs
    path: apps/storefront-unified-nextjs
    framework: next
    build: "true"
    port: 3000
    health: {path: /healthz}
    entrypoint: [node, server.js]
    deploy: {include: ["server.js", "brand.json"]}
  - id: storefront-middleware
    path: apps/storefront-middleware
    build: "true"
    port: 4000
    health: {path: /healthz}
    entrypoint: [node, server.js]
    deploy: {include: ["server.js"]}
stores:
  brand: {template: true, framework: next}
`)
	for i := range n {
		id := fmt.Sprintf("s%02d", i+1)
		fmt.Fprintf(&cfg, "  %s: {projectName: fleet-%s, region: local}\n", id, id)
		files["apps/stores/brand/stores/"+id+"/storefront-unified-nextjs/brand.json"] = fmt.Sprintf(`{"name": "%s"}`, id)
	}
	files["slipway.yaml"] = cfg.String()
	for name, body := range files {
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
