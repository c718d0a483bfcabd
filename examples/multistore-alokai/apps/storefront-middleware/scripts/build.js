'use strict';
// Build for the plain Node middleware: it checks that the composed sources load
// and writes dist/build.json (build id, and time when SOURCE_DATE_EPOCH pins it).
// Production runs `node server.js` from the app root; see server.js for the files it needs.
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const app = process.env.SLIPWAY_APP || require(path.join(root, 'package.json')).name;
const store = process.env.SLIPWAY_STORE_ID || null;
const mode = process.env.NODE_ENV || 'production';

function fail(msg) {
  console.error(`[${app}] build failed: ${msg}`);
  process.exit(1);
}

console.log(`[${app}] building for store ${store || '(none)'} with NODE_ENV=${mode}`);
for (const f of ['server.js', 'lib/runtime.js', 'scripts/healthcheck.sh']) {
  if (!fs.existsSync(path.join(root, f))) fail(`missing required source file ${f}`);
}
let parts;
try {
  parts = require(path.join(root, 'lib/runtime.js')).loadParts(root, {
    header: 'components/header.js', footer: 'components/footer.js',
    locale: 'config/locale.json', catalog: 'config/catalog.json',
  });
} catch (err) {
  fail(err.message);
}
let builtAt = null;
const epoch = process.env.SOURCE_DATE_EPOCH;
if (epoch) {
  if (!/^\d+$/.test(epoch)) fail(`SOURCE_DATE_EPOCH must be whole seconds, got "${epoch}"`);
  builtAt = new Date(Number(epoch) * 1000).toISOString();
}

const h = crypto.createHash('sha256').update(JSON.stringify(parts));
for (const f of ['server.js', 'lib/runtime.js']) h.update(fs.readFileSync(path.join(root, f)));
const buildId = h.update(`${store}\n${mode}`).digest('hex').slice(0, 12);

const dist = path.join(root, 'dist');
fs.rmSync(dist, { recursive: true, force: true });
fs.mkdirSync(dist);
fs.writeFileSync(path.join(dist, 'build.json'), `${JSON.stringify({ app, buildId, builtAt, builtFor: store }, null, 2)}\n`);
console.log(`[${app}] build ${buildId}: wrote dist/build.json (catalog "${parts.catalog.name}")`);
