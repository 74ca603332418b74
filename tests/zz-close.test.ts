// Runs last (files run in name order): releases the Dawn device so the test process can exit.
import { suite } from 'uvu';
import { closeGpu } from '../node/gpu.js';
const test = suite('teardown');
test('release the GPU', async () => { await closeGpu(); });
test.run();
