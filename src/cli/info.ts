// `webgpu-lm info`: which adapter the library uses, with the features and limits that matter to it.

import { formatBytes } from '../gpu/pool.js';
import { init } from '../gpu/runtime.js';

export async function info(): Promise<void> {
  const { gpu } = await init();
  const l = gpu.limits;
  const lines = [
    `adapter:   ${gpu.name}`,
    `vendor:    ${gpu.adapterInfo.vendor || '-'}  architecture: ${gpu.adapterInfo.architecture || '-'}`,
    `features:  ${[...gpu.features].sort().join(', ')}`,
    `max buffer ${formatBytes(l.maxBufferSize)}, max storage binding ${formatBytes(l.maxStorageBufferBindingSize)}, ` +
      `workgroup storage ${formatBytes(l.maxComputeWorkgroupStorageSize)}, ${l.maxComputeInvocationsPerWorkgroup} invocations/workgroup`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}
