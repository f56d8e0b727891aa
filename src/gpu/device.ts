// getDevice(): one WebGPU device for Node (Dawn, npm `webgpu`) and the browser (navigator.gpu), with max limits and features.

/** Where the device comes from and how it is configured. Every field can also come from an env var (Node). */
export interface DeviceOptions {
  /** Dawn backend (Node only): 'vulkan' | 'metal' | 'd3d12' | 'd3d11' | 'opengl' | 'opengles'. Env: WEBGPU_LM_BACKEND. */
  backend?: string;
  /** Pick the adapter whose name contains this text (Node: Dawn's `adapter=` flag). Env: WEBGPU_LM_ADAPTER. */
  adapter?: string;
  powerPreference?: GPUPowerPreference;
  /** Extra Dawn toggles (Node only), e.g. { enable: ['allow_unsafe_apis'] }. */
  dawnToggles?: { enable?: string[]; disable?: string[] };
  /** Wrap every dispatch in an error scope so a validation error names its kernel at once (slow). Env: WEBGPU_LM_VALIDATE=1. */
  validate?: boolean;
}

/** The one device plus what was learned about it. */
export interface Gpu {
  device: GPUDevice;
  /** The navigator.gpu / Dawn instance. Held on purpose: if Dawn's instance is garbage-collected while its
   *  device lives, the process aborts (std::system_error from a Dawn thread). */
  instance: GPU;
  adapterInfo: { vendor: string; architecture: string; device: string; description: string };
  /** Human-readable adapter name for logs and benchmarks. */
  name: string;
  features: ReadonlySet<string>;
  limits: GPUSupportedLimits;
  validate: boolean;
}

export class DeviceLostError extends Error {
  override name = 'DeviceLostError';
}

/** Says what to install when no adapter exists; the most common first-run failure. */
export const NO_ADAPTER_HELP = [
  'webgpu-lm: no WebGPU adapter found.',
  '  - With a GPU: install its driver with Vulkan support (NVIDIA: the proprietary driver; AMD/Intel: Mesa `mesa-vulkan-drivers`).',
  '  - Without a GPU (CI, servers): install a CPU Vulkan driver, Mesa lavapipe >= 24:',
  '      sudo bash scripts/install-cpu-webgpu.sh   (Debian 12: mesa-vulkan-drivers from bookworm-backports)',
  '  - In a browser: use one with WebGPU enabled (Chrome/Edge 113+, or --enable-unsafe-webgpu).',
].join('\n');

// Limits we raise to the adapter's maximum: big buffers and bindings (GPT-2's 147 MiB embedding), big workgroups.
const MAX_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxDynamicUniformBuffersPerPipelineLayout',
  'maxUniformBufferBindingSize',
] as const;

const OPTIONAL_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;

let current: Promise<Gpu> | null = null;
let lostMessage: string | null = null;
/** Set while destroyDevice() tears the device down on purpose, so that is not reported as a loss. */
let destroying = false;

/** The shared device; created on first call, the same promise afterwards. */
export function getDevice(options: DeviceOptions = {}): Promise<Gpu> {
  if (lostMessage) return Promise.reject(new DeviceLostError(lostMessage));
  current ??= createGpu(options).catch((e) => {
    current = null;
    throw e;
  });
  return current;
}

/** Throws if the device was lost: every dispatch and read-back checks this first. */
export function assertDeviceAlive(): void {
  if (lostMessage) throw new DeviceLostError(lostMessage);
}

/** Forget a lost device so the next getDevice() creates a new one (all old tensors stay invalid). */
export function resetDevice(): void {
  current = null;
  lostMessage = null;
}

/** Destroys the device on purpose (end of a program or test); the next getDevice() makes a new one. */
export async function destroyDevice(): Promise<void> {
  const gpu = await current?.catch(() => null);
  current = null;
  if (!gpu) return;
  destroying = true;
  gpu.device.destroy();
  await gpu.device.lost;
  destroying = false;
}

function env(name: string): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const v = p?.env?.[name];
  return v === undefined || v === '' ? undefined : v;
}

/**
 * The flags for Dawn's `create()` (Node) from the options and their env vars: backend, adapter, power preference, and
 * the toggles. f16 on NVIDIA is hidden behind a toggle; exact timestamps need quantization off (docs/performance.md).
 * Exported so a program that makes the Dawn instance itself (the bench, to share it with other libraries) gets ours.
 */
export function dawnFlags(options: DeviceOptions = {}): string[] {
  const backend = options.backend ?? env('WEBGPU_LM_BACKEND');
  const adapterName = options.adapter ?? env('WEBGPU_LM_ADAPTER');
  const powerPreference = options.powerPreference ?? env('WEBGPU_LM_POWER');
  const flags: string[] = [];
  if (backend) flags.push(`backend=${backend}`);
  if (adapterName) flags.push(`adapter=${adapterName}`);
  if (powerPreference) flags.push(`power-preference=${powerPreference}`);
  const enable = ['vulkan_enable_f16_on_nvidia', ...(options.dawnToggles?.enable ?? [])];
  const disable = ['timestamp_quantization', ...(options.dawnToggles?.disable ?? [])];
  flags.push(`enable-dawn-features=${enable.join(',')}`, `disable-dawn-features=${disable.join(',')}`);
  return flags;
}

async function requestAdapter(options: DeviceOptions): Promise<{ instance: GPU; adapter: GPUAdapter }> {
  const backend = options.backend ?? env('WEBGPU_LM_BACKEND');
  const adapterName = options.adapter ?? env('WEBGPU_LM_ADAPTER');
  const powerPreference = options.powerPreference ?? (env('WEBGPU_LM_POWER') as GPUPowerPreference | undefined);
  const browserGpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  let gpu: GPU;
  if (browserGpu) {
    gpu = browserGpu;
  } else {
    // A variable module name keeps bundlers from pulling Dawn into a browser build.
    const nodeModule = 'webgpu';
    let dawn: { create(flags: string[]): GPU; globals: object };
    try {
      dawn = await import(nodeModule);
    } catch (e) {
      throw new Error(`webgpu-lm: cannot load Dawn's Node bindings (npm package \`webgpu\`): ${(e as Error).message}\n${NO_ADAPTER_HELP}`);
    }
    // Dawn's classes (GPUBufferUsage, ...) become globals as in a browser.
    for (const [k, v] of Object.entries(dawn.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
    const flags = dawnFlags(options);
    try {
      gpu = dawn.create(flags);
    } catch (e) {
      throw new Error(`webgpu-lm: Dawn rejected the options ${JSON.stringify(flags)}: ${(e as Error).message}`);
    }
  }
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter(powerPreference ? { powerPreference } : {});
  } catch (e) {
    const wanted = [backend && `backend "${backend}"`, adapterName && `adapter "${adapterName}"`].filter(Boolean).join(' and ');
    throw new Error(`webgpu-lm: no WebGPU adapter matches ${wanted || 'the request'}.\n${(e as Error).message}\n${NO_ADAPTER_HELP}`);
  }
  if (!adapter) throw new Error(NO_ADAPTER_HELP);
  return { instance: gpu, adapter };
}

async function createGpu(options: DeviceOptions): Promise<Gpu> {
  const { instance, adapter } = await requestAdapter(options);
  const requiredLimits: Record<string, number> = {};
  const limits = adapter.limits as unknown as Record<string, number>;
  for (const k of MAX_LIMITS) if (typeof limits[k] === 'number') requiredLimits[k] = limits[k];
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures, label: 'webgpu-lm' });
  const info = adapter.info;
  const adapterInfo = {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
  };
  void device.lost.then((lost) => {
    if (destroying) return;
    // Anything else (driver reset, GPU removed, a destroy() we did not ask for) invalidates every tensor.
    lostMessage =
      `webgpu-lm: the GPU device was lost (${lost.reason}: ${lost.message}). ` +
      'All tensors on it are gone. Restart the process; training resumes from the last checkpoint with --resume.';
  });
  return {
    device,
    instance,
    adapterInfo,
    name: adapterInfo.description || [adapterInfo.vendor, adapterInfo.architecture, adapterInfo.device].filter(Boolean).join(' ') || 'unknown adapter',
    features: new Set([...device.features] as string[]),
    limits: device.limits,
    validate: options.validate ?? env('WEBGPU_LM_VALIDATE') === '1',
  };
}
