// Vitest settings: one process at a time (each file opens its own WebGPU device; lavapipe uses every core).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    // Tuned matmul tiles cached on this machine must not steer the tests: each run gets an empty cache folder.
    env: { WEBGPU_LM_CACHE_DIR: mkdtempSync(join(tmpdir(), 'webgpu-lm-test-cache-')) },
  },
});
