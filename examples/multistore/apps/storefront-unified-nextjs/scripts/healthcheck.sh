#!/bin/sh
# Exits 0 when the app answers GET /healthz with 200. Needs only node (no curl
# in slim images). Usage: healthcheck.sh [port]   (default: $PORT, then 3000)
exec node -e "require('http').get({host: '127.0.0.1', port: process.argv[1], path: '/healthz', timeout: 2000}, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('timeout', function () { this.destroy(); }).on('error', () => process.exit(1));" "${1:-${PORT:-3000}}"
