package main

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// The generated app: a Next.js-standalone-like .deploy (server.js,
// package.json, .next/static chunks) over a node_modules tree of a few
// thousand files. Mostly JS-like text (sources, minified bundles, source maps,
// package.json, READMEs, .d.ts), plus some binary-ish blobs (native .node
// addons, .wasm) that gzip barely shrinks. Every byte comes from seeded RNGs,
// one per file, so the same flags give a byte-identical tree.

type fileKind int

const (
	kindJS fileKind = iota
	kindMinJS
	kindMap
	kindJSON
	kindMD
	kindDTS
	kindBinary
)

var kindNames = [...]string{"js", "min.js", "map", "json", "md", "d.ts", "binary"}

type genFile struct {
	path string
	kind fileKind
	size int64
	exec bool
}

type genStats struct {
	Files, Symlinks, Dirs int
	Bytes                 int64
	ByKind                [len(kindNames)]struct {
		Files int
		Bytes int64
	}
}

func (s genStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d files + %d symlinks in %d dirs, %s:", s.Files, s.Symlinks, s.Dirs, mb(s.Bytes))
	for k, v := range s.ByKind {
		if v.Files > 0 {
			fmt.Fprintf(&b, " %s %d/%s", kindNames[k], v.Files, mb(v.Bytes))
		}
	}
	return b.String()
}

func mb(n int64) string {
	if n < 1e6 {
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

var syllables = strings.Fields(`ab ac ad al am an ap ar as at ba be bi bo bu ca ce ci co cu da de di do du
	el em en er es et fa fe fi fo ga ge gi go ha he hi ho id il im in ir is it ka ke la le li lo lu
	ma me mi mo mu na ne ni no nu ob oc od ol om on op or os pa pe pi po pu ra re ri ro ru sa se si
	so su ta te ti to tu ul um un ur us va ve vi vo xa yo za ze`)

func makeVocab(r *rand.Rand, n int) []string {
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		k := 2 + r.IntN(3)
		var b strings.Builder
		for i := 0; i < k; i++ {
			s := syllables[r.IntN(len(syllables))]
			if i > 0 && r.IntN(3) == 0 {
				s = strings.ToUpper(s[:1]) + s[1:]
			}
			b.WriteString(s)
		}
		w := b.String()
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

func logNormal(r *rand.Rand, median, sigma float64) float64 {
	return median * math.Exp(sigma*r.NormFloat64())
}

// planBigApp lays out the tree and the files' sizes, scaled so that the
// regular files add up to targetBytes.
func planBigApp(targetBytes int64, nFiles int, seed uint64) (files []genFile, links [][2]string, vocab []string) {
	r := rand.New(rand.NewPCG(seed, 1))
	vocab = makeVocab(r, 2000)
	type wfile struct {
		genFile
		w float64
	}
	var ws []wfile
	add := func(p string, k fileKind, w float64, exec bool) {
		ws = append(ws, wfile{genFile{path: p, kind: k, exec: exec}, w})
	}
	word := func() string { return strings.ToLower(vocab[r.IntN(len(vocab))]) }

	add("server.js", kindJS, 12000, false)
	add("package.json", kindJSON, 700, false)
	for i := 0; i < 24; i++ {
		add(fmt.Sprintf(".next/static/chunks/%d-%08x.js", i, r.Uint32()), kindMinJS, logNormal(r, 30000, 0.8), false)
	}
	add(".next/BUILD_ID", kindJSON, 30, false)

	pkgSeen := map[string]bool{}
	for len(ws) < nFiles {
		name := word() + "-" + word()
		if r.IntN(6) == 0 {
			name = "@" + word() + "/" + name
		}
		if pkgSeen[name] {
			continue
		}
		pkgSeen[name] = true
		dir := "node_modules/" + name
		if r.IntN(10) == 0 && len(pkgSeen) > 10 { // a nested copy, as npm does on version conflicts
			dir = "node_modules/" + strings.ToLower(vocab[r.IntN(len(vocab))]) + "-" + word() + "/node_modules/" + name
		}
		add(dir+"/package.json", kindJSON, logNormal(r, 1200, 0.4), false)
		add(dir+"/README.md", kindMD, logNormal(r, 4000, 0.8), false)
		add(dir+"/LICENSE", kindMD, 1100, false)
		add(dir+"/index.js", kindJS, logNormal(r, 1500, 0.9), false)
		nlib := 1 + int(logNormal(r, 5, 0.9))
		for i := 0; i < nlib; i++ {
			sub := "lib/"
			if r.IntN(3) == 0 {
				sub = "lib/" + word() + "/"
			}
			add(dir+"/"+sub+word()+".js", kindJS, logNormal(r, 3500, 1.1), false)
			if r.IntN(3) == 0 {
				add(dir+"/"+sub+word()+".d.ts", kindDTS, logNormal(r, 1500, 0.9), false)
			}
		}
		if r.IntN(5) < 2 {
			base := strings.TrimPrefix(name[strings.LastIndex(name, "/")+1:], "@")
			w := logNormal(r, 35000, 0.9)
			add(dir+"/dist/"+base+".min.js", kindMinJS, w, false)
			add(dir+"/dist/"+base+".min.js.map", kindMap, w*2.2, false)
		}
		if r.IntN(10) == 0 {
			add(dir+"/bin/cli.js", kindJS, logNormal(r, 2500, 0.6), true)
			links = append(links, [2]string{"node_modules/.bin/" + word() + strconv.Itoa(len(links)), "../" + strings.TrimPrefix(dir, "node_modules/") + "/bin/cli.js"})
		}
		switch n := r.IntN(100); {
		case n < 5:
			add(dir+"/build/Release/"+word()+".node", kindBinary, logNormal(r, 350000, 0.7), false)
		case n < 8:
			add(dir+"/dist/"+word()+".wasm", kindBinary, logNormal(r, 250000, 0.7), false)
		}
	}
	var total float64
	for _, f := range ws {
		total += f.w
	}
	scale := float64(targetBytes) / total
	var sum int64
	for _, f := range ws {
		f.size = max(1, int64(f.w*scale))
		sum += f.size
		files = append(files, f.genFile)
	}
	files[0].size += targetBytes - sum // server.js absorbs the rounding
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	return files, links, vocab
}

// generateBigApp writes the tree into dst (which must not exist).
func generateBigApp(dst string, targetBytes int64, nFiles int, seed uint64) (genStats, error) {
	files, links, vocab := planBigApp(targetBytes, nFiles, seed)
	var st genStats
	dirs := map[string]bool{}
	for _, f := range files {
		dirs[filepath.Dir(filepath.Join(dst, f.path))] = true
		st.Files++
		st.Bytes += f.size
		st.ByKind[f.kind].Files++
		st.ByKind[f.kind].Bytes += f.size
	}
	for _, l := range links {
		dirs[filepath.Dir(filepath.Join(dst, l[0]))] = true
	}
	for d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return st, err
		}
	}
	st.Dirs = len(dirs)
	for _, l := range links {
		if err := os.Symlink(l[1], filepath.Join(dst, l[0])); err != nil {
			return st, err
		}
		st.Symlinks++
	}
	// Two workers; each file has its own RNG, so the order does not matter.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			for i := w; i < len(files); i += 2 {
				f := files[i]
				r := rand.New(rand.NewPCG(seed, uint64(i)+1000))
				buf.Reset()
				fill(&buf, r, f, vocab, seed, i)
				mode := os.FileMode(0o644)
				if f.exec {
					mode = 0o755
				}
				if err := os.WriteFile(filepath.Join(dst, f.path), buf.Bytes(), mode); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return st, <-errs
}

func fill(buf *bytes.Buffer, r *rand.Rand, f genFile, vocab []string, seed uint64, i int) {
	n := int(f.size)
	switch f.kind {
	case kindBinary:
		fillBinary(buf, r, n, seed, i)
	case kindMap:
		fillMap(buf, r, n, vocab)
	case kindMinJS:
		fillJS(buf, r, n, vocab, true)
	case kindJSON, kindMD:
		fillProse(buf, r, n, vocab, f.kind == kindJSON)
	default:
		fillJS(buf, r, n, vocab, false)
	}
	buf.Truncate(n)
}

var jsTemplates = []string{
	"const %a = require('./%b');",
	"function %a(%b, %c) {",
	"if (%a && %b.%c !== undefined) {",
	"return %a.%b(%c, %n);",
	"%a.prototype.%b = function (%c) {",
	"this.%a = %b || {};",
	"for (let i = 0; i < %a.length; i++) {",
	"%a.push({ %b: %c, %d: '%e' });",
	"throw new TypeError('%a: expected %b to be a %c');",
	"}",
	"};",
	"} else {",
	"exports.%a = %b;",
	"var %a = Object.assign({}, %b, { %c: %n });",
	"return typeof %a === 'function' ? %a(%b) : %c;",
	"// %a %b %c %d",
	"/** @param {%a} %b the %c to %d */",
	"module.exports = %a;",
	"await %a.%b('%c', { %d: true });",
	"case '%a': return %b;",
}

// fillJS writes statements from templates with identifiers from vocab;
// minified output drops indentation and newlines and shortens locals.
func fillJS(buf *bytes.Buffer, r *rand.Rand, n int, vocab []string, minified bool) {
	local := make([]string, 48)
	for i := range local {
		local[i] = vocab[int(float64(len(vocab))*math.Pow(r.Float64(), 2))]
	}
	if !minified {
		buf.WriteString("'use strict';\n\n")
	}
	depth := 0
	for buf.Len() < n {
		t := jsTemplates[r.IntN(len(jsTemplates))]
		if !minified {
			if strings.HasPrefix(t, "}") && depth > 0 {
				depth--
			}
			for i := 0; i < depth; i++ {
				buf.WriteString("  ")
			}
		}
		for j := 0; j < len(t); j++ {
			c := t[j]
			if c != '%' || j+1 >= len(t) {
				buf.WriteByte(c)
				continue
			}
			j++
			switch {
			case t[j] == 'n':
				buf.WriteString(strconv.Itoa(r.IntN(1000)))
			case minified && r.IntN(2) == 0:
				buf.WriteByte(byte('a' + r.IntN(26)))
			case r.IntN(10) == 0:
				buf.WriteString(vocab[int(float64(len(vocab))*math.Pow(r.Float64(), 3))])
			default:
				// A file mostly reuses its own few identifiers, a few a lot.
				buf.WriteString(local[int(float64(len(local))*math.Pow(r.Float64(), 2))])
			}
		}
		if strings.HasSuffix(t, "{") {
			depth = min(depth+1, 6)
		}
		if minified {
			buf.WriteByte(';')
		} else {
			buf.WriteByte('\n')
		}
	}
}

const vlq = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

func fillMap(buf *bytes.Buffer, r *rand.Rand, n int, vocab []string) {
	buf.WriteString(`{"version":3,"sources":["webpack://`)
	buf.WriteString(vocab[r.IntN(len(vocab))])
	buf.WriteString(`/./src/index.js"],"names":[`)
	for i := 0; i < 40; i++ {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(buf, "%q", vocab[r.IntN(len(vocab))])
	}
	// Half embedded sources (sourcesContent, JSON-escaped JS), half mappings.
	buf.WriteString(`],"sourcesContent":["`)
	var js bytes.Buffer
	fillJS(&js, r, n/2, vocab, false)
	js.Truncate(n / 2)
	for _, c := range js.Bytes() {
		switch c {
		case '\n':
			buf.WriteString(`\n`)
		case '"', '\\':
			buf.WriteByte('\\')
			buf.WriteByte(c)
		default:
			buf.WriteByte(c)
		}
	}
	buf.WriteString(`"],"mappings":"`)
	for buf.Len() < n-2 {
		// Segments of 4-5 VLQ digits, mostly small values (A..H, g..p).
		k := 4 + r.IntN(2)
		for i := 0; i < k; i++ {
			if r.IntN(4) == 0 {
				buf.WriteByte(vlq[r.IntN(len(vlq))])
			} else {
				buf.WriteByte(vlq[r.IntN(8)])
			}
		}
		if r.IntN(8) == 0 {
			buf.WriteByte(';')
		} else {
			buf.WriteByte(',')
		}
	}
	buf.WriteString(`"}`)
}

func fillProse(buf *bytes.Buffer, r *rand.Rand, n int, vocab []string, json bool) {
	if json {
		buf.WriteString("{\n  \"name\": \"" + vocab[r.IntN(len(vocab))] + "\",\n  \"version\": \"" +
			fmt.Sprintf("%d.%d.%d", r.IntN(10), r.IntN(30), r.IntN(20)) + "\",\n")
	}
	for buf.Len() < n {
		if json {
			fmt.Fprintf(buf, "  %q: %q,\n", vocab[r.IntN(len(vocab))], vocab[r.IntN(len(vocab))])
			continue
		}
		for w := 3 + r.IntN(12); w > 0; w-- {
			buf.WriteString(vocab[int(float64(len(vocab))*math.Pow(r.Float64(), 2))])
			buf.WriteByte(' ')
		}
		buf.WriteString(".\n")
	}
}

// fillBinary: machine-code-like blobs, 4 KiB pages that are either random
// (gzip cannot shrink them) or sparse tables (mostly zeros).
func fillBinary(buf *bytes.Buffer, r *rand.Rand, n int, seed uint64, i int) {
	var key [32]byte
	copy(key[:], fmt.Sprintf("slipway-bench-%d-%d", seed, i))
	cc := rand.NewChaCha8(key)
	page := make([]byte, 4096)
	for buf.Len() < n {
		if r.IntN(10) < 5 {
			_, _ = cc.Read(page)
		} else {
			clear(page)
			for j := 0; j < 200; j++ {
				page[r.IntN(len(page))] = byte(r.Uint32())
			}
		}
		buf.Write(page)
	}
}
