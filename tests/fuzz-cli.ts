// Command-line fuzz cases as processes: hostile files for the roles mutateArgs picks from, and one run of
// dist/cli.js with a wall-clock limit and its peak RSS (polled from /proc) -> an outcome.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { deflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { npyBytes } from '../node/npy.js';
import { Result, pngChunks, sofJpeg } from './fuzz-lib.js';

const CLI = resolve('dist/cli.js');

/** Native lines Dawn and the Vulkan loader print to stderr (camgpu cannot silence them). */
const nativeNoise = (l: string) => l.trim() === '' || l.startsWith('Warning: ') || /^\s+at \w+ \(.*\.cpp:\d+\)$/.test(l);

/** Files for command-line cases, made once per process in a fresh temporary folder (also the runs' working folder). */
let made: Record<string, string> | null = null;
export function cliFiles(): Record<string, string> {
  if (made) return made;
  const d = mkdtempSync(join(tmpdir(), 'camgpu-fuzz-cli-')), at = (f: string) => join(d, f);
  writeFileSync(at('ok.png'), readFileSync('tests/fixtures/images/shapes32.png'));
  writeFileSync(at('ok.jpg'), readFileSync('tests/fixtures/images/shapes32.jpg'));
  writeFileSync(at('x.npy'), readFileSync('tests/fixtures/vgg/x.npy'));
  writeFileSync(at('nan.npy'), npyBytes(new Float32Array(3 * 32 * 32).fill(NaN), [1, 3, 32, 32]));
  writeFileSync(at('big.png'), pngChunks(30000, 30000, { idat: deflateSync(Buffer.alloc(10)) }));
  writeFileSync(at('big.jpg'), sofJpeg(8000, 8000, 723));
  const strip = new PNG({ width: 20000, height: 1 }); strip.data.fill(90); writeFileSync(at('strip.png'), PNG.sync.write(strip));
  writeFileSync(at('text.onnx'), 'not a model\n');
  spawnSync('mkfifo', [at('fifo.png')]);
  mkdirSync(at('dir'));
  mkdirSync(at('scenes'));
  writeFileSync(at('scenes/boxes.json'), '[]');
  made = {
    model: resolve('tests/fixtures/vgg/model.onnx'), png: at('ok.png'), jpg: at('ok.jpg'), npy: at('x.npy'), nan: at('nan.npy'), big: at('big.png'),
    bigjpg: at('big.jpg'), strip: at('strip.png'), text: at('text.onnx'), fifo: at('fifo.png'), dir: at('dir'), scenes: at('scenes'),
    missing: at('missing.onnx'), proc: '/proc/camgpu/out', dev: '/dev/zero', cwd: d,
  };
  return made;
}

/** Peak resident memory of a process, from /proc/<pid>/status (kB -> bytes); 0 when it is gone. */
function rss(pid: number): number {
  try { const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8')); return m ? Number(m[1]) * 1024 : 0; } catch { return 0; }
}

/** Runs `camgpu ...args`; hang past limitMs or RSS over maxBytes kills it. */
export function cliCase(args: string[], limitMs = 30_000, maxBytes = 2 * 2 ** 30): Promise<Result & { ms: number; rss: number }> {
  const files = cliFiles(), t0 = performance.now();
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: files.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '', peak = 0, killed: 'hang' | 'memory' | null = null;
    child.stdout.on('data', () => {});
    child.stderr.on('data', (d) => { err += d; });
    const poll = setInterval(() => {
      peak = Math.max(peak, rss(child.pid!));
      if (peak > maxBytes) { killed = 'memory'; child.kill('SIGKILL'); }
      else if (performance.now() - t0 > limitMs) { killed = 'hang'; child.kill('SIGKILL'); }
    }, 100);
    child.on('close', (code, signal) => {
      clearInterval(poll);
      const ms = performance.now() - t0, lines = err.split('\n').filter((l) => !nativeNoise(l));
      const r = (outcome: Result['outcome'], detail: string) => done({ outcome, detail, ms, rss: peak });
      if (killed) return r(killed, `${killed === 'hang' ? `over ${limitMs} ms` : `over ${maxBytes} bytes`}`);
      if (signal) return r('internal', `killed by ${signal}`);
      if (code === 0) return r('ok', 'exit 0');
      // the user's own argument quoted back ("got 'NaN'") is not engine text: drop quoted arguments before the check
      const said = lines.length ? args.reduce((t, a) => (a ? t.split(`'${a}'`).join("'<arg>'") : t), lines[0]) : '';
      const one = lines.length === 1 && said.startsWith('camgpu: ') && !/internal error|undefined|NaN\b|Cannot read prop|Invalid typed array|ENOENT|\bat .*\.(js|ts):\d+/.test(said);
      return r(one && (code === 1 || code === 2) ? 'clean' : 'internal', `exit ${code}: ${lines.join(' | ').slice(0, 300)}`);
    });
  });
}
