// tests/interop/tuf_client.mjs — tuf-js (an independent TUF client) against a
// repository that slmkit published: serves REPO on 127.0.0.1, runs tuf-js's
// Updater from the trusted root, downloads TARGET to OUT and prints one JSON
// line {ok, length, sha256} or {ok:false, error}.
// usage: node tuf_client.mjs REPO TRUSTED_ROOT TARGET OUT [TUF_JS_DIR]
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';

const [repo, trustedRoot, target, out, tufDir] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const { Updater } = require(tufDir || process.env.SLM_TUF_JS || 'tuf-js');

const server = http.createServer((req, res) => {
  const rel = decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/^\/+/, '');
  const root = path.resolve(repo);
  const file = path.join(root, rel);
  if (!file.startsWith(root + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'Content-Length': fs.statSync(file).size });
  fs.createReadStream(file).pipe(res);
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const base = `http://127.0.0.1:${server.address().port}`;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tufjs-'));
const metadataDir = path.join(work, 'metadata');
const targetDir = path.join(work, 'targets');
fs.mkdirSync(metadataDir);
fs.mkdirSync(targetDir);
fs.copyFileSync(trustedRoot, path.join(metadataDir, 'root.json'));
let result;
try {
  const updater = new Updater({
    metadataBaseUrl: `${base}/metadata`,
    targetBaseUrl: `${base}/targets`,
    metadataDir,
    targetDir,
  });
  await updater.refresh();
  const info = await updater.getTargetInfo(target);
  if (!info) throw new Error(`no target ${target}`);
  const got = await updater.downloadTarget(info, out);
  const sha256 = crypto.createHash('sha256').update(fs.readFileSync(got)).digest('hex');
  result = { ok: true, length: info.length, sha256, path: got };
} catch (e) {
  result = { ok: false, error: String(e && e.message ? e.message : e) };
}
server.close();
fs.rmSync(work, { recursive: true, force: true });
console.log(JSON.stringify(result));
