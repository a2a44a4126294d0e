// Bundles GraphiQL (index.jsx, its CSS, fonts and images) into ONE self-contained HTML page for
// GET /graphiql, and writes the HTTP headers that page is served with.
//
//   node build.mjs OUT_HTML OUT_HEADERS
//
// OUT_HTML: the page, with the script and the styles inline; nothing is loaded from anywhere
// (fonts and images are data: URLs), the only request the page makes is to /graphql.
// OUT_HEADERS: "Name: value\r\n" lines for the response (src/data/data_graphiql.c embeds both):
// a Content-Security-Policy that allows exactly the inline script by its SHA-256 hash, inline
// styles, data: fonts and images and connect-src 'self'; nothing else.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const [outHtml, outHeaders] = process.argv.slice(2);
if (!outHtml || !outHeaders) {
    console.error('usage: node build.mjs OUT_HTML OUT_HEADERS');
    process.exit(2);
}

const result = await esbuild.build({
    entryPoints: [join(here, 'index.jsx')],
    bundle: true,
    minify: true,
    format: 'iife',
    platform: 'browser',
    target: ['es2020'],
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"production"' },
    loader: { '.woff2': 'dataurl', '.woff': 'dataurl', '.ttf': 'dataurl', '.png': 'dataurl', '.svg': 'dataurl' },
    legalComments: 'eof', // the MIT notices of what is bundled stay in the page
    outdir: 'out', // names only: write is false
    write: false,
    logLevel: 'warning',
});
let js = '';
let css = '';
for (const f of result.outputFiles) {
    if (f.path.endsWith('.js')) js += f.text;
    else if (f.path.endsWith('.css')) css += f.text;
}
if (!js || !css) throw new Error('esbuild produced no JS or no CSS');

// Inline text must not close its element early. esbuild escapes "</script" in the strings it
// writes; what remains (comments, regexes) is escaped the same way, which JS reads the same.
js = js.replace(/<\/(script)/gi, '<\\/$1');
// ASCII only (the server compiles the page in as a C char array, -Wconversion): esbuild leaves
// some non-ASCII characters in regex literals; \uXXXX (per UTF-16 unit) means the same there,
// in strings, comments and identifiers.
js = js.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
css = css.replace(/<\/(style)/gi, '<\\/$1');
for (const [text, tag] of [[js, 'script'], [css, 'style']]) {
    if (new RegExp(`</${tag}`, 'i').test(text)) throw new Error(`</${tag} left in the bundle`);
}
// No reference to another origin may survive in what the browser loads by itself: url(...) in
// the CSS must be data: (the script's own strings, e.g. links in docs, are not fetched).
for (const m of css.matchAll(/url\(\s*['"]?([^'")\s]*)/g)) {
    if (!m[1].startsWith('data:') && !m[1].startsWith('#')) throw new Error(`CSS loads ${m[1]}`);
}

const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>LedgerMQ GraphiQL</title>
<style>${css}</style>
</head>
<body>
<div id="root"></div>
<script>${js}</script>
</body>
</html>
`;
if (/[^\x00-\x7f]/.test(html)) throw new Error('the page is not ASCII');
const hash = createHash('sha256').update(js, 'utf8').digest('base64');
const csp = [
    "default-src 'none'",
    `script-src 'sha256-${hash}'`,
    "style-src 'unsafe-inline'", // GraphiQL's CSS inline, and the styles its components set
    'font-src data:',
    'img-src data:',
    "connect-src 'self'", // POST /graphql
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
].join('; ');
const headers =
    `Content-Security-Policy: ${csp}\r\n` +
    'Cache-Control: no-cache\r\n' +
    'X-Content-Type-Options: nosniff\r\n' +
    'Referrer-Policy: no-referrer\r\n';
// src/net/http.h: HTTP_RESPONSE_BODY_MAX_BYTES (4 MiB) bounds what the server can send.
if (Buffer.byteLength(html) > 4 * 1024 * 1024) throw new Error('page over 4 MiB');
if (headers.length >= 1024) throw new Error('headers too long for http_response.extra_headers');

mkdirSync(dirname(outHtml), { recursive: true });
mkdirSync(dirname(outHeaders), { recursive: true });
writeFileSync(outHtml, html);
writeFileSync(outHeaders, headers);
console.log(`graphiql: ${outHtml} ${Buffer.byteLength(html)} bytes`);
