import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Script } from 'node:vm';
import { inflateSync } from 'node:zlib';
import {
  DASHBOARD_ASSET_PATHS,
  DASHBOARD_CSP,
  crc32,
  dashboardAsset,
  dashboardHtml,
  iconPng,
  iconSvg,
  manifestJson,
} from '../../../src/keeper/dashboard-page.js';

const html = dashboardHtml();

function inlineScripts(page: string): string[] {
  return [...page.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)].map((m) => {
    assert.equal((m[1] ?? '').trim(), '', 'inline <script> has no attributes (no src, no type)');
    return m[2] ?? '';
  });
}

function inlineStyles(page: string): string[] {
  return [...page.matchAll(/<style\b[^>]*>([\s\S]*?)<\/style>/gi)].map((m) => m[1] ?? '');
}

const sha256 = (s: string): string => `'sha256-${createHash('sha256').update(s, 'utf8').digest('base64')}'`;

test('the page is self-contained: no remote resources, no external script or stylesheet', () => {
  assert.match(html, /^<!doctype html>/i);
  assert.doesNotMatch(html, /https?:\/\//i, 'no absolute http(s) URL anywhere');
  assert.doesNotMatch(html, /<script\b[^>]*\bsrc\s*=/i, 'no <script src>');
  assert.doesNotMatch(html, /<link\b[^>]*rel="?stylesheet/i, 'no external stylesheet');
  for (const css of inlineStyles(html)) assert.doesNotMatch(css, /@import|url\(/i, 'CSS loads nothing');
  assert.doesNotMatch(html, /<(iframe|img|object|embed)\b/i);
  // Every URL the markup names is a same-origin path the keeper serves.
  for (const m of html.matchAll(/\b(?:href|src)="([^"]*)"/g)) {
    const url = m[1] as string;
    assert.match(url, /^\/[^/]/, `same-origin path: ${url}`);
    assert.ok(dashboardAsset(url), `served by dashboardAsset: ${url}`);
  }
  assert.equal(inlineScripts(html).length, 1, 'exactly one inline script');
  assert.equal(inlineStyles(html).length, 1, 'exactly one inline style');
});

test('installable: manifest link, theme-color, icons, viewport', () => {
  assert.ok(html.includes('<link rel="manifest" href="/manifest.webmanifest">'));
  assert.match(html, /<meta name="theme-color" content="#[0-9a-f]{6}" media="\(prefers-color-scheme: light\)">/i);
  assert.match(html, /<meta name="theme-color" content="#[0-9a-f]{6}" media="\(prefers-color-scheme: dark\)">/i);
  assert.match(html, /<link rel="apple-touch-icon" href="\/icon\.(svg|png)">/);
  assert.match(html, /<meta name="viewport" content="width=device-width, initial-scale=1[^"]*">/);
  assert.match(html, /prefers-color-scheme: dark/);
  assert.match(html, /@media \(max-width: \d+px\)/, 'a narrow-screen (card) layout');
});

test('the manifest parses and has the required keys', () => {
  const m = JSON.parse(manifestJson()) as Record<string, unknown>;
  assert.equal(m.name, 'Latchkey');
  assert.equal(typeof m.short_name, 'string');
  assert.ok((m.short_name as string).length > 0 && (m.short_name as string).length <= 12);
  assert.equal(m.start_url, '/');
  assert.equal(m.display, 'standalone');
  assert.match(String(m.theme_color), /^#[0-9a-f]{6}$/i);
  assert.ok(Array.isArray(m.icons) && m.icons.length > 0);
  const icons = m.icons as { src: string; sizes: string; type: string }[];
  for (const icon of icons) {
    assert.equal(typeof icon.src, 'string');
    assert.equal(typeof icon.sizes, 'string');
    assert.equal(typeof icon.type, 'string');
    const a = dashboardAsset(icon.src);
    assert.ok(a, `icon ${icon.src} is served`);
    assert.equal(a.contentType, icon.type);
  }
  assert.ok(icons.some((i) => i.type === 'image/png' && i.sizes === '192x192'));
  assert.ok(icons.some((i) => i.type === 'image/png' && i.sizes === '512x512'));
});

test('the inline script compiles, and the page CSP allows exactly its own script and style', () => {
  const [script] = inlineScripts(html);
  const [style] = inlineStyles(html);
  assert.ok(script && style);
  assert.doesNotThrow(() => new Script(script, { filename: 'dashboard-inline.js' }));
  const meta = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(html);
  assert.ok(meta, 'CSP meta present');
  const csp = meta[1] as string;
  assert.ok(csp.includes(`script-src ${sha256(script)}`), 'script hash matches the inline script');
  assert.ok(csp.includes(`style-src ${sha256(style)}`), 'style hash matches the inline style');
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /connect-src 'self'/);
  assert.ok(DASHBOARD_CSP.startsWith(csp), 'the header CSP is the meta CSP plus what only a header can say');
  assert.match(DASHBOARD_CSP, /frame-ancestors 'none'/);
  assert.equal(dashboardAsset('/')?.headers['Content-Security-Policy'], DASHBOARD_CSP);
});

test('the script never injects data as HTML and talks to the keeper API as specified', () => {
  const [script = ''] = inlineScripts(html);
  assert.doesNotMatch(script, /\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function/);
  assert.doesNotMatch(html, /\son[a-z]+\s*=/i, 'no inline event handler attributes');
  assert.doesNotMatch(script, /<\/script|<!--/i);
  for (const needle of [
    "'/api/health'",
    "'/api/probe'",
    "'X-Latchkey-Action'",
    "'Bearer '",
    'history.replaceState',
    'dataset.source',
    'dataset.status',
    'dataset.probe',
    "'fix'",
    'POLL_MS = 5000',
    "'keeper not reachable: '",
    "'no expiry'",
    "'expires in '",
    "'last ok '",
  ]) {
    assert.ok(script.includes(needle), `script contains ${needle}`);
  }
  assert.ok(html.includes('id="probe-all"'));
  assert.ok(html.includes('id="banner"'));
});

test('built once: every call returns the same prebuilt value', () => {
  assert.equal(dashboardHtml(), html);
  assert.equal(manifestJson(), manifestJson());
  assert.equal(iconSvg(), iconSvg());
  assert.equal(iconPng(), iconPng(), 'same Buffer object, not rebuilt');
  assert.equal(dashboardAsset('/icon.png'), dashboardAsset('/icon.png'));
  assert.equal(dashboardAsset('/')?.body, dashboardAsset('/')?.body);
});

function checkPng(png: Buffer, size: number): void {
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  let off = 8;
  const types: string[] = [];
  const idat: Buffer[] = [];
  while (off < png.length) {
    const length = png.readUInt32BE(off);
    const type = png.toString('latin1', off + 4, off + 8);
    const data = png.subarray(off + 8, off + 8 + length);
    assert.equal(png.readUInt32BE(off + 8 + length), crc32(png.subarray(off + 4, off + 8 + length)), `${type} CRC`);
    if (type === 'IHDR') {
      assert.equal(data.readUInt32BE(0), size);
      assert.equal(data.readUInt32BE(4), size);
      assert.deepEqual([...data.subarray(8)], [8, 6, 0, 0, 0], '8-bit RGBA, not interlaced');
    }
    if (type === 'IDAT') idat.push(data);
    types.push(type);
    off += 12 + length;
  }
  assert.equal(off, png.length);
  assert.equal(types[0], 'IHDR');
  assert.equal(types.at(-1), 'IEND');
  const raw = inflateSync(Buffer.concat(idat));
  assert.equal(raw.length, size * (size * 4 + 1));
  // Opaque in the middle, transparent in the rounded corner.
  const alpha = (x: number, y: number): number => raw[y * (size * 4 + 1) + 1 + x * 4 + 3] as number;
  assert.equal(alpha(size >> 1, size >> 1), 255);
  assert.equal(alpha(0, 0), 0);
}

test('icons: a valid 192x192 and 512x512 PNG, and an SVG', () => {
  checkPng(iconPng(), 192);
  checkPng(iconPng(512), 512);
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926, 'CRC-32 check value');
  const svg = iconSvg();
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" viewBox="0 0 192 192"/);
  assert.ok(svg.trim().endsWith('</svg>'));
  assert.equal(dashboardAsset('/icon.svg')?.contentType, 'image/svg+xml');
});

test('assets: every path is served with a content type and an ETag; unknown paths are not', () => {
  for (const path of DASHBOARD_ASSET_PATHS) {
    const a = dashboardAsset(path);
    assert.ok(a, path);
    assert.ok(a.body.length > 0);
    assert.match(a.etag, /^"[A-Za-z0-9_-]+"$/);
    assert.equal(a.headers['Content-Type'], a.contentType);
    assert.equal(a.headers['X-Content-Type-Options'], 'nosniff');
  }
  assert.equal(dashboardAsset('/')?.body.toString('utf8'), html);
  assert.equal(dashboardAsset('/manifest.webmanifest')?.contentType, 'application/manifest+json; charset=utf-8');
  assert.equal(dashboardAsset('/api/health'), undefined);
  assert.equal(dashboardAsset('/../etc/passwd'), undefined);
});
