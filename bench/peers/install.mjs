// Installs the benchmark peers (this folder's package.json / package-lock.json) into bench/peers/node_modules when
// they are missing or older than the lock file. `npm run bench:peers` calls it; nothing else needs these packages
// (tools/zoo_ort.mjs also uses onnxruntime-node from here). onnxruntime-node's install script would download CUDA
// binaries from the internet; ONNXRUNTIME_NODE_INSTALL=skip keeps to the CPU binary that ships in the package.
import { existsSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const stamp = `${dir}node_modules/.package-lock.json`;
if (!existsSync(stamp) || statSync(`${dir}package-lock.json`).mtimeMs > statSync(stamp).mtimeMs) {
  console.error('bench:peers: installing the peer engines into bench/peers/node_modules (~760 MB, once)');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['ci', '--no-audit', '--no-fund'], { cwd: dir, stdio: 'inherit',
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } });
  if (r.status !== 0) { console.error(`bench:peers: npm ci in bench/peers failed (exit ${r.status ?? r.signal})`); process.exit(1); }
}
