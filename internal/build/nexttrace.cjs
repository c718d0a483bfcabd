// Written by Slipway (internal/build/nexttrace.cjs) and preloaded, with
// NODE_OPTIONS=--require, into the build step of a Next.js app.
//
// `next build` with output: 'standalone' ends with "Collecting build traces":
// @vercel/nft follows every require of the server from .next into
// node_modules. Next hands nft its own readFile/stat/readlink, which switches
// off nft's file system cache, so each path segment of each file is read
// again (a readlink that throws EINVAL for every non-link), and every file of
// node_modules is parsed again on every build. On two cores that step alone
// took ~23 s of a ~38 s build of a small storefront.
//
// This hook changes how the trace reads, never what it finds:
//
//  1. Within one trace it answers each stat/readFile/readlink once, as nft
//     does itself when no overrides are given, and asks lstat before readlink.
//  2. It keeps nft's per-file analyses (which requires, imports and assets a
//     file has) of files under <app>/node_modules in SLIPWAY_NEXT_TRACE_CACHE,
//     a directory in the dependency cache entry of the app's lockfile. An
//     analysis is reused only when
//       - the file still has the size and mtime it had when analysed (a hit of
//         Slipway's dependency cache hard-links the same files);
//       - everything it produced lies inside node_modules (nothing of the
//         store's own files, which differ between stores);
//       - every path the earlier traces stat'ed outside .next still is what
//         it was (missing, a file or a directory), and
//         every glob the ignore function was asked about gets the same answer;
//       - nft's options, its own file and the trace root are the same.
//     Otherwise the cache is ignored and rewritten from a full trace.
//
// Anything unexpected (another Next.js, a read error) leaves the trace as
// Next made it. SLIPWAY_NEXT_TRACE_CACHE=off turns the hook off.
'use strict';

const Module = require('module');
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const FORMAT = 1;
const cacheDir = process.env.SLIPWAY_NEXT_TRACE_CACHE || '';
const wrapped = new WeakMap();
const origLoad = Module._load;

if (cacheDir && cacheDir !== 'off') {
  Module._load = function (request, parent) {
    const exp = origLoad.apply(this, arguments);
    if (typeof request !== 'string' || !request.endsWith('/compiled/@vercel/nft') || !exp) return exp;
    let w = wrapped.get(exp);
    if (!w) {
      w = wrap(exp, request, parent);
      wrapped.set(exp, w);
    }
    return w;
  };
}

function wrap(exp, request, parent) {
  const orig = exp.nodeFileTrace;
  if (typeof orig !== 'function') return exp;
  let modFile = '';
  try {
    modFile = Module._resolveFilename(request, parent);
  } catch {
    return exp;
  }
  const out = {};
  for (const k of Object.keys(exp)) out[k] = exp[k];
  out.nodeFileTrace = function nodeFileTrace(files, opts) {
    return trace(orig, this, files, opts || {}, modFile);
  };
  return out;
}

// once memoizes f per path for one trace.
function once(f) {
  if (typeof f !== 'function') return f;
  const m = new Map();
  return function (p) {
    let r = m.get(p);
    if (r === undefined) {
      r = Promise.resolve(f.call(this, p));
      m.set(p, r);
    }
    return r;
  };
}

// statKind is what an analysis can learn from a stat: whether the path is
// missing, a file or a directory (a file's bytes matter only to its own
// analysis, which is checked by size and mtime).
function statKind(st) {
  if (!st) return '-';
  if (st.isDirectory()) return 'd';
  if (st.isFile()) return 'f';
  return 'o';
}

async function trace(orig, self, files, opts, modFile) {
  let cwd, base;
  try {
    cwd = path.resolve(opts.processCwd || process.cwd());
    base = path.resolve(opts.base || process.cwd());
  } catch {
    return orig.call(self, files, opts);
  }
  const nm = path.join(cwd, 'node_modules') + path.sep;
  const dist = path.sep + '.next' + path.sep;
  // Paths inside the app are kept relative to it (stores of one app share
  // the cache), others as they are.
  const rel = (p) => {
    const r = path.relative(cwd, p);
    return r === '..' || r.startsWith('..' + path.sep) || path.isAbsolute(r) ? p : r;
  };
  const o = Object.assign({}, opts);

  // What the trace looks at, to know when a kept analysis still holds.
  const probes = new Map(); // path relative to cwd -> kind
  const globs = new Map(); // glob asked of ignore -> answer
  const userStat = opts.stat || ((p) => fs.promises.stat(p).catch((e) => (e.code === 'ENOENT' || e.code === 'ENOTDIR' ? null : Promise.reject(e))));
  o.stat = once(async (p) => {
    const st = await userStat(p);
    if (!p.includes(dist)) probes.set(rel(p), statKind(st));
    return st;
  });
  if (opts.readFile) o.readFile = once(opts.readFile);
  if (opts.readlink) {
    const rl = opts.readlink;
    o.readlink = once((p) => fs.promises.lstat(p).then(
      (st) => (st.isSymbolicLink() ? rl(p) : null),
      (e) => (e && e.code === 'ENOENT' ? null : rl(p))));
  }
  if (typeof opts.ignore === 'function') {
    const ig = opts.ignore;
    o.ignore = function (p) {
      const r = ig.apply(this, arguments);
      if (typeof p === 'string' && p.includes('*')) globs.set(p, !!r);
      return r;
    };
  }

  let sig = '';
  try {
    const st = fs.statSync(modFile);
    sig = crypto.createHash('sha256').update(JSON.stringify({
      FORMAT, nft: [rel(modFile), st.size, st.mtimeMs], base: rel(base),
      analysis: opts.analysis, mixedModules: !!opts.mixedModules, ts: opts.ts,
      conditions: opts.conditions, exports: opts.exports, exportsOnly: !!opts.exportsOnly,
      paths: opts.paths, ignore: typeof opts.ignore === 'function' ? 'fn' : opts.ignore,
      resolve: typeof opts.resolve === 'function' ? 'fn' : '',
    })).digest('hex').slice(0, 16);
  } catch {
    return orig.call(self, files, opts);
  }
  const file = path.join(cacheDir, 'nft-' + sig + '.json');
  const cache = (o.cache = opts.cache && typeof opts.cache === 'object' ? opts.cache : {});
  if (!(cache.analysisCache instanceof Map)) cache.analysisCache = new Map();
  const ac = cache.analysisCache;
  const kept = load(file, cwd, nm, ac, opts.ignore, probes, globs);

  const result = await orig.call(self, files, o);

  try {
    save(file, nm, ac, probes, globs, kept);
  } catch (e) {
    console.error('slipway: next trace cache not saved: ' + (e && e.message));
  }
  return result;
}

// load adds the kept analyses that still hold to ac; it returns how many,
// and why none were when so. A cache it cannot make sense of adds nothing.
function load(file, cwd, nm, ac, ignore, probes, globs) {
  const got = new Map();
  let r;
  try {
    r = loadInto(file, cwd, nm, ac, ignore, probes, globs, got);
  } catch (e) {
    // Before the trace: what loadInto carried over goes too.
    probes.clear();
    globs.clear();
    return { n: 0, why: 'unreadable: ' + (e && e.message) };
  }
  for (const [k, v] of got) ac.set(k, v);
  return r;
}

function loadInto(file, cwd, nm, ac, ignore, probes, globs, got) {
  let j;
  try {
    j = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    return { n: 0, why: e.code === 'ENOENT' ? 'first trace' : 'unreadable' };
  }
  if (!j || j.format !== FORMAT) return { n: 0, why: 'another format' };
  for (const [p, kind] of Object.entries(j.probes || {})) {
    const abs = path.resolve(cwd, p);
    let st = null;
    try {
      st = fs.statSync(abs);
    } catch {}
    if (statKind(st) !== kind) return { n: 0, why: p + ' changed' };
  }
  if (typeof ignore === 'function') {
    for (const [g, was] of Object.entries(j.globs || {})) {
      if (!!ignore(g) !== was) return { n: 0, why: 'ignore of ' + g + ' changed' };
    }
  }
  // The earlier probes and globs still hold, so they carry over.
  for (const [p, kind] of Object.entries(j.probes || {})) probes.set(p, kind);
  for (const [g, was] of Object.entries(j.globs || {})) globs.set(g, was);
  let n = 0;
  const back = (s) => (s.startsWith('@/') ? nm + s.slice(2) : s);
  for (const [r, e] of Object.entries(j.entries || {})) {
    const abs = nm + r;
    if (ac.has(abs)) continue;
    let st;
    try {
      st = fs.lstatSync(abs);
    } catch {
      continue;
    }
    if (!st.isFile() || st.size !== e.size || st.mtimeMs !== e.mtime) continue;
    got.set(abs, {
      deps: new Set(e.deps.map(back)),
      imports: new Set(e.imports.map(back)),
      assets: new Set(e.assets.map(back)),
      isESM: !!e.isESM,
    });
    n++;
  }
  return { n, why: '' };
}

// save writes every analysis of a node_modules file that refers to nothing
// outside node_modules, beside and renamed into place.
function save(file, nm, ac, probes, globs, kept) {
  const entries = {};
  let all = 0;
  const keep = (s) => {
    if (typeof s !== 'string') return null;
    if (s.startsWith(nm)) return '@/' + s.slice(nm.length);
    if (path.isAbsolute(s) || s.startsWith('@/')) return null;
    return s;
  };
  for (const [abs, a] of ac) {
    if (!abs.startsWith(nm) || !a || typeof a.then === 'function') continue;
    all++;
    const deps = [...(a.deps || [])].map(keep);
    const imports = [...(a.imports || [])].map(keep);
    const assets = [...(a.assets || [])].map((s) => (typeof s === 'string' && s.startsWith(nm) ? '@/' + s.slice(nm.length) : null));
    if (deps.includes(null) || imports.includes(null) || assets.includes(null)) continue;
    let st;
    try {
      st = fs.lstatSync(abs);
    } catch {
      continue;
    }
    entries[abs.slice(nm.length)] = { size: st.size, mtime: st.mtimeMs, isESM: !!a.isESM, deps, imports, assets };
  }
  const n = Object.keys(entries).length;
  if (n === 0) return;
  const why = kept.why ? ' (' + kept.why + ')' : '';
  console.error(`slipway: next trace: ${kept.n} of ${all} node_modules analyses reused${why}, ${n} kept`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = file + '.' + process.pid + '.tmp';
  fs.writeFileSync(tmp, JSON.stringify({ format: FORMAT, probes: Object.fromEntries(probes), globs: Object.fromEntries(globs), entries }));
  fs.renameSync(tmp, file);
}
