// The README's demo screenshot (docs/demo.png): the built demo with a bundled model on a sample scene, in headless
// Debian Chromium (SwiftShader WebGPU). Run after `node build.mjs`: node tools/screenshot.mjs [model] [scene]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [model = 'resnet', scene = 'multi_00047.png'] = process.argv.slice(2);
const server = spawn(process.execPath, ['tools/serve.mjs', '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
const url = await new Promise((ok) => server.stdout.on('data', (d) => { const m = /http:\/\/127\.0\.0\.1:\d+/.exec(String(d)); if (m) ok(m[0]); }));
const dir = mkdtempSync(join(tmpdir(), 'camgpu-shot-'));
const ctx = await chromium.launchPersistentContext(dir, { executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1400, height: 900 },
  args: ['--no-sandbox', '--enable-unsafe-webgpu', '--disable-gpu-sandbox', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-quic', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-angle=swiftshader'] });
try {
  const page = await ctx.newPage();
  await page.goto(`${url}/?model=${model}&scene=${scene}`);
  await page.waitForFunction(() => window.camgpuDemo && ['done', 'error'].includes(window.camgpuDemo.status), null, { timeout: 60_000 });
  const st = await page.evaluate(() => ({ status: window.camgpuDemo.status, error: window.camgpuDemo.error }));
  if (st.status !== 'done') throw new Error(`demo: ${st.error}`);
  await page.screenshot({ path: 'docs/demo.png', fullPage: true });
  console.log('wrote docs/demo.png');
} finally { await ctx.close(); server.kill(); rmSync(dir, { recursive: true, force: true }); }
