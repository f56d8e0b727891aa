// Prints the WebGPU adapter Dawn finds (name, features, key limits); exits 1 when there is none.
import { create } from 'webgpu';

// Keep the instance referenced until exit: Dawn aborts if it is garbage-collected while in use.
const gpu = create([]);
let adapter = null;
try {
  adapter = await gpu.requestAdapter();
} catch (e) {
  console.error(`no WebGPU adapter: ${e.message}`);
}
if (!adapter) {
  console.error('no WebGPU adapter found (for a machine without a GPU: sudo bash scripts/install-cpu-webgpu.sh)');
  process.exit(1);
}
const i = adapter.info;
console.log(`adapter: ${[i.vendor, i.architecture, i.description].filter(Boolean).join(' | ')}`);
console.log(`features: ${[...adapter.features].sort().join(', ')}`);
const l = adapter.limits;
console.log(`limits: maxBufferSize ${l.maxBufferSize}, maxStorageBufferBindingSize ${l.maxStorageBufferBindingSize}, maxComputeWorkgroupStorageSize ${l.maxComputeWorkgroupStorageSize}`);
void gpu;
