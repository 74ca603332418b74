// Runs the bundled uvu suites (dist/tests/run.js), streams their output, and closes with the plain
// "N passed, N failed" line that CI reads. Exit code: the suites' own.
import { spawn } from 'node:child_process';
const child = spawn(process.execPath, ['dist/tests/run.js', ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
child.stdout.on('data', (d) => { out += d; process.stdout.write(d); });
child.on('close', (code) => {
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
  const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? 0), passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? 0);
  console.log(`\ntests: ${passed} passed, ${total - passed} failed`);
  process.exit(code ?? 1);
});
