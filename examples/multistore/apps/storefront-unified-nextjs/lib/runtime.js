'use strict';
// Tiny HTTP runtime shared by every app of this example. Each app keeps its own
// copy because Slipway composes, builds and ships every app independently.
// Node core only: no dependencies, no node_modules.
const fs = require('fs');
const http = require('http');
const path = require('path');

const TYPES = {
  '.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json', '.txt': 'text/plain; charset=utf-8',
  '.html': 'text/html; charset=utf-8', '.svg': 'image/svg+xml',
};

// What each composable part must contain; a store overrides a part by shipping
// its own copy of the file. `from` names the file that won, so tests can tell.
const SHAPES = { header: ['text'], footer: ['text'], locale: ['code', 'currency'], catalog: ['name'] };

// loadParts reads the composable files of an app (e.g. {header: 'components/header.js'})
// and checks their shape. Builds call it so that a broken store fails the build.
function loadParts(root, files) {
  const parts = {};
  for (const [name, rel] of Object.entries(files)) {
    const file = path.join(root, rel);
    if (!fs.existsSync(file)) throw new Error(`missing required source file ${rel}`);
    let value;
    try {
      value = rel.endsWith('.json') ? JSON.parse(fs.readFileSync(file, 'utf8')) : require(file);
    } catch (err) {
      throw new Error(`${rel}: ${err.message}`);
    }
    if (!value || typeof value !== 'object') throw new Error(`${rel}: must export an object`);
    for (const key of ['from', ...(SHAPES[name] || [])]) {
      if (typeof value[key] !== 'string') throw new Error(`${rel}: "${key}" must be a string`);
    }
    parts[name] = value;
  }
  return parts;
}

// dataDir is the persistent directory shared by all releases of a store/app:
// SLIPWAY_DATA_DIR (process runtime) or /data (containers); null when neither is writable.
function dataDir() {
  for (const dir of [process.env.SLIPWAY_DATA_DIR, '/data']) {
    try {
      if (dir && fs.statSync(dir).isDirectory()) { fs.accessSync(dir, fs.constants.W_OK); return dir; }
    } catch { /* try the next one */ }
  }
  return null;
}

function visit() {
  const dir = dataDir();
  if (!dir) return null;
  const file = path.join(dir, 'visits.txt');
  let n = 0;
  try { n = parseInt(fs.readFileSync(file, 'utf8'), 10) || 0; } catch { /* first visit */ }
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${n + 1}\n`);
  fs.renameSync(tmp, file); // atomic: a crash never leaves a half-written counter
  return { visits: n + 1, dataDir: dir };
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function info(o) {
  const p = o.parts;
  const out = {
    store: process.env.SLIPWAY_STORE_ID || null, app: o.app, release: process.env.SLIPWAY_RELEASE || null,
    header: p.header.text, footer: p.footer.text, locale: p.locale.code, currency: p.locale.currency,
  };
  if (p.catalog) out.catalog = p.catalog.name;
  out.from = Object.fromEntries(Object.entries(p).map(([k, v]) => [k, v.from]));
  Object.assign(out, { builtAt: o.builtAt || null, buildId: o.buildId || null, builtFor: o.builtFor || null });
  out.env = { NODE_ENV: process.env.NODE_ENV || null, CURRENCY: process.env.CURRENCY || null };
  return out;
}

function page(o) {
  const i = info(o);
  const rows = Object.entries(o.parts).map(([k, v]) =>
    `<tr id="part-${k}"><th>${k}</th><td>${esc(v.text || v.name || `${v.code} (${v.currency})`)}</td><td><code>${esc(v.from)}</code></td></tr>`);
  return `<!doctype html>
<html lang="${esc(i.locale)}"><head><meta charset="utf-8"><title>${esc(i.store || 'no store')} · ${esc(i.app)}</title>
${o.stylesheet ? `<link rel="stylesheet" href="${esc(o.stylesheet)}">` : ''}</head>
<body>
<header data-from="${esc(i.from.header)}">${esc(i.header)}</header>
<main>
<h1>Store <span id="store">${esc(i.store || '(none)')}</span></h1>
<p>App <b id="app">${esc(i.app)}</b> · release <b id="release">${esc(i.release || '(unset)')}</b> · locale <b id="locale">${esc(i.locale)}</b> · currency <b id="currency">${esc(i.currency)}</b></p>
<table><tr><th>part</th><th>value</th><th>file that won</th></tr>
${rows.join('\n')}
</table>
</main>
<footer data-from="${esc(i.from.footer)}">${esc(i.footer)}</footer>
</body></html>
`;
}

// serveFile answers from the first asset directory that holds rel; false if none does.
function serveFile(req, res, dirs, rel) {
  for (const dir of dirs) {
    const file = path.join(dir, rel);
    if (!file.startsWith(dir + path.sep)) return false;
    let st;
    try { st = fs.statSync(file); } catch { continue; }
    if (!st.isFile()) continue;
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'content-length': st.size });
    if (req.method === 'HEAD') res.end(); else fs.createReadStream(file).pipe(res);
    return true;
  }
  return false;
}

// start serves the app. o: {app, defaultPort, parts, stylesheet, buildId, builtAt,
// builtFor, routes: {path: () => json}, assets: [{prefix, dirs}]}.
function start(o) {
  const assets = (o.assets || []).map((a) => ({ prefix: a.prefix, dirs: a.dirs.filter((d) => fs.existsSync(d)) }));
  let stopping = false;
  const send = (res, code, type, body) => {
    if (stopping) res.setHeader('connection', 'close');
    res.writeHead(code, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  };
  const json = (res, code, v) => send(res, code, 'application/json', `${JSON.stringify(v)}\n`);

  const server = http.createServer((req, res) => {
    if (stopping) res.setHeader('connection', 'close');
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed\n');
      const url = new URL(req.url, 'http://localhost');
      const p = url.pathname;
      if (p === '/healthz') return send(res, 200, 'text/plain', 'ok');
      if (p === '/') return send(res, 200, 'text/html; charset=utf-8', page(o));
      if (p === '/api/info') return json(res, 200, info(o));
      if (p === '/visits') {
        const v = visit();
        return v ? json(res, 200, v) : json(res, 503, { error: 'no writable persistent directory (SLIPWAY_DATA_DIR or /data)' });
      }
      if (p === '/slow') { // lets tests hold a request in flight across a deploy
        const ms = Math.min(Number(url.searchParams.get('ms')) || 1000, 30000);
        return setTimeout(() => json(res, 200, { sleptMs: ms }), ms);
      }
      if (o.routes && o.routes[p]) return json(res, 200, o.routes[p]());
      for (const a of assets) {
        if (p.startsWith(a.prefix) && serveFile(req, res, a.dirs, decodeURIComponent(p.slice(a.prefix.length)))) return;
      }
      return send(res, 404, 'text/plain', 'not found\n');
    } catch (err) {
      console.error(`[${o.app}] ${req.method} ${req.url}: ${err.message}`);
      if (!res.headersSent) send(res, 500, 'text/plain', 'internal error\n');
    }
  });

  const host = process.env.HOST || '0.0.0.0';
  const port = Number(process.env.PORT) || o.defaultPort;
  server.on('error', (err) => { console.error(`[${o.app}] ${err.message}`); process.exit(1); });
  server.listen(port, host, () => {
    console.log(`[${o.app}] listening on http://${host}:${port} store=${process.env.SLIPWAY_STORE_ID || '-'} release=${process.env.SLIPWAY_RELEASE || '-'}`);
  });

  // Graceful stop: refuse new connections, let in-flight requests finish, exit 0.
  const stop = (sig) => {
    if (stopping) return;
    stopping = true;
    console.log(`[${o.app}] ${sig}: draining in-flight requests`);
    server.close(() => { console.log(`[${o.app}] stopped`); process.exit(0); });
    server.closeIdleConnections();
    setTimeout(() => { server.closeAllConnections(); process.exit(0); }, 25000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return server;
}

module.exports = { start, loadParts };
