'use strict';
// storefront-middleware, the API the storefronts call. Production entrypoint:
// `node server.js` from the app root. At run time it needs package.json,
// server.js, lib/, components/ and config/, plus dist/build.json when
// `npm run build` ran (build id and time; the app also runs without it).
// No node_modules.
const fs = require('fs');
const path = require('path');
const { start, loadParts } = require('./lib/runtime.js');

const parts = loadParts(__dirname, {
  header: 'components/header.js', footer: 'components/footer.js',
  locale: 'config/locale.json', catalog: 'config/catalog.json',
});
let build = {};
try {
  build = JSON.parse(fs.readFileSync(path.join(__dirname, 'dist/build.json'), 'utf8'));
} catch { /* not built: run without build metadata */ }

start({
  app: build.app || require('./package.json').name,
  defaultPort: 4000,
  parts,
  buildId: build.buildId, builtAt: build.builtAt, builtFor: build.builtFor,
  routes: {
    '/api/products': () => ({ catalog: parts.catalog.name, from: parts.catalog.from, products: parts.catalog.products || [] }),
  },
});
