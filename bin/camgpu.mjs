#!/usr/bin/env node
// The `camgpu` command (package.json "bin"): runs the bundled CLI, built from node/cli.ts by `npm run build`.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write("camgpu: dist/cli.js is missing; build it first with 'npm run build'\n");
  process.exit(1);
}
await import(cli.href);
