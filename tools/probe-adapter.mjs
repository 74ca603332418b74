// Exits 0 and prints the adapter when Dawn finds a WebGPU adapter, 1 otherwise (used by tools/setup.sh).
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const gpu = create([]);
const adapter = await gpu.requestAdapter();
if (!adapter) { console.error('no WebGPU adapter'); process.exit(1); }
const info = adapter.info ?? {};
console.log(`WebGPU adapter: ${info.vendor} ${info.architecture} ${info.device} ${info.description}`.replace(/\s+/g, ' '));
process.exit(0);
