// Which tile sizes the matmul kernel uses on this adapter: the choice tuneMatmul() cached for it, else the defaults.
//
// The cache is one JSON document holding an entry per adapter (a machine may have several):
//   { "format": 1,
//     "entries": [ { "adapter": { "vendor", "architecture", "device", "description" },   (GPUAdapterInfo)
//                    "kernel": "9c1f03ab",                  (a hash of the kernel's WGSL, kernelVersion())
//                    "tiles": { "WX", "WY", "TM", "TN", "BK" },
//                    "tuned": "<ISO date>", "timing": ..., "shapes": [...], "candidates": [...] } ] }
// An entry is used when its adapter identity equals this adapter's field by field, its kernel hash equals the
// running kernel's (editing kernels/matmul.ts retires every tuned choice: a tile that was fastest, or even valid,
// for another kernel proves nothing about this one), and its tiles pass tilesProblem() on this device's limits.
// Only those three fields are read; the rest records how the choice was made.
// Where the document lives is a TileStore: localStorage in a browser; Node's file store (ops/matmul_tiles_node.ts)
// replaces it when src/index.ts or the CLI loads. Nothing is tuned at start-up: the first product on a device
// looks its adapter up once, and an unreadable, corrupt or stale cache costs one warning and the defaults.

import { SKINNY_TILES, TILES, TILE_CANDIDATES, firstFitting, matmulWGSL, tilesProblem, type MatmulTiles } from '../../kernels/matmul.js';
import type { Gpu } from '../gpu/device.js';
import { runtime } from '../gpu/runtime.js';

/** What identifies an adapter in the cache: its GPUAdapterInfo. */
export type AdapterIdentity = Gpu['adapterInfo'];

/** Where the cache document is kept. read() and write() may throw; callers turn that into a warning or an error. */
export interface TileStore {
  /** The place, for messages: a file path, or the localStorage item. */
  where(): string;
  /** The stored document, or null when there is none yet. */
  read(): string | null;
  /** Replaces the document all at once (a reader sees the old one or the new one, never half of one). */
  write(text: string): Promise<void>;
}

/** One adapter's cached choice. */
export interface TileCacheEntry {
  adapter: AdapterIdentity;
  kernel: string;
  tiles: MatmulTiles;
  [record: string]: unknown;
}

/** The tiles matmul uses now. */
export interface MatmulTileChoice {
  /** Products with more than 4 rows. */
  tiles: MatmulTiles;
  /** Products with at most 4 rows (decoding): fixed, the first of SKINNY_TILES that fits the adapter. */
  skinny: MatmulTiles;
  /** 'cache': tuned earlier for this adapter; 'tuned': by tuneMatmul() or saveMatmulTiles() in this process; 'set': by setMatmulTiles(). */
  source: 'default' | 'cache' | 'tuned' | 'set';
  /** Where this runtime's cache is ('' when it has none: Node without src/index.ts, a browser without localStorage). */
  cache: string;
}

const LOCAL_STORAGE_ITEM = 'webgpu-lm/matmul-tiles';

/** A browser's localStorage (a sandboxed frame may throw on the mere access: read() then reports it as unreadable). */
const localStorageStore: TileStore = {
  where: () => `localStorage item '${LOCAL_STORAGE_ITEM}'`,
  read: () => webStorage().getItem(LOCAL_STORAGE_ITEM),
  write: async (text) => webStorage().setItem(LOCAL_STORAGE_ITEM, text),
};

/** The Web Storage API's localStorage (typed here: Node's build has no DOM types). */
function webStorage(): { getItem(key: string): string | null; setItem(key: string, value: string): void } {
  return (globalThis as unknown as { localStorage: ReturnType<typeof webStorage> }).localStorage;
}

/** undefined until set or first needed: then localStorage where the runtime has it, else none. */
let chosenStore: TileStore | null | undefined;

function store(): TileStore | null {
  if (chosenStore === undefined) chosenStore = 'localStorage' in globalThis ? localStorageStore : null;
  return chosenStore;
}

/** Where the cache is kept from now on (ops/matmul_tiles_node.ts sets the file store); null keeps none. */
export function setTileStore(next: TileStore | null): void {
  chosenStore = next;
  active = null;
}

let version: string | null = null;

/**
 * A hash (FNV-1a, 32 bits) of the WGSL of three variants that between them contain every line the generator can
 * emit: the plain product, the split product's windowed accumulation with f16 operands, and the fused epilogues.
 * They are generated with the default tiles, so a new default retires tuned choices too (a re-tune is cheap).
 */
export function kernelVersion(): string {
  if (version !== null) return version;
  const text = [
    matmulWGSL({ transA: false, transB: false, bias: false }, TILES),
    matmulWGSL({ transA: true, transB: true, bias: true, windowed: true, accumulate: true, halfA: true, halfB: true }, TILES),
    matmulWGSL({ transA: false, transB: true, bias: true, activation: 'gelu_tanh', savePre: true, dropout: true, residual: true }, TILES),
  ].join('\0');
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (version = (h >>> 0).toString(16).padStart(8, '0'));
}

const sameAdapter = (a: AdapterIdentity, b: AdapterIdentity): boolean =>
  a.vendor === b.vendor && a.architecture === b.architecture && a.device === b.device && a.description === b.description;

/** The cache document's entries; throws, saying what is wrong, unless every entry has the three fields that are read. */
function parseDocument(text: string): TileCacheEntry[] {
  const doc: unknown = JSON.parse(text);
  const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (!isObject(doc) || doc.format !== 1 || !Array.isArray(doc.entries)) throw new Error('not a format-1 document ({ "format": 1, "entries": [...] })');
  doc.entries.forEach((e: unknown, i) => {
    const ok =
      isObject(e) &&
      isObject(e.adapter) &&
      ['vendor', 'architecture', 'device', 'description'].every((k) => typeof (e.adapter as Record<string, unknown>)[k] === 'string') &&
      typeof e.kernel === 'string' &&
      isObject(e.tiles);
    if (!ok) throw new Error(`entry ${i} lacks a string adapter identity, a kernel hash or tiles`);
  });
  return doc.entries as TileCacheEntry[];
}

function warnIgnored(where: string, reason: string): void {
  console.warn(
    `webgpu-lm: ignoring the matmul tile cache (${where}): ${reason}. Using the default tiles; delete it ` +
      'or tune again (`webgpu-lm tune-matmul`, or tuneMatmul()) to stop this warning.',
  );
}

/** The cached tiles for `gpu`'s adapter, if the cache has a usable entry for it, else the defaults. */
function load(gpu: Gpu): Pick<MatmulTileChoice, 'tiles' | 'source'> {
  const defaults = { tiles: firstFitting([TILES, ...TILE_CANDIDATES], gpu.limits), source: 'default' } as const;
  const cache = store();
  if (!cache) return defaults;
  const warn = (reason: string): void => warnIgnored(cache.where(), reason);
  let text: string | null;
  let entries: TileCacheEntry[];
  try {
    text = cache.read();
  } catch (e) {
    warn(`it cannot be read (${(e as Error).message})`);
    return defaults;
  }
  if (text === null) return defaults;
  try {
    entries = parseDocument(text);
  } catch (e) {
    warn(`it is corrupt (${(e as Error).message})`);
    return defaults;
  }
  const entry = entries.find((e) => sameAdapter(e.adapter, gpu.adapterInfo));
  if (!entry) return defaults;
  if (entry.kernel !== kernelVersion()) {
    warn(`this adapter's tiles were tuned for another version of the matmul kernel (${entry.kernel}; this one is ${kernelVersion()})`);
    return defaults;
  }
  const problem = tilesProblem(entry.tiles, gpu.limits);
  if (problem) {
    warn(`this adapter's tiles ${JSON.stringify(entry.tiles)} are not usable: ${problem}`);
    return defaults;
  }
  return { tiles: pickTiles(entry.tiles), source: 'cache' };
}

/** Just the five sizes (a cache entry or a caller's object may carry more). */
const pickTiles = ({ WX, WY, TM, TN, BK }: MatmulTiles): MatmulTiles => ({ WX, WY, TM, TN, BK });

/** The choice and the device it was made for (a new device, after shutdown() and init(), is looked up again). */
let active: { gpu: Gpu; choice: MatmulTileChoice } | null = null;

function choose(gpu: Gpu, { tiles, source }: Pick<MatmulTileChoice, 'tiles' | 'source'>): MatmulTileChoice {
  const choice = { tiles, skinny: firstFitting(SKINNY_TILES, gpu.limits), source, cache: store()?.where() ?? '' };
  active = { gpu, choice };
  return { ...choice };
}

/** The tiles matmul uses on the current device; the first call for a device looks its adapter up in the cache. */
export function matmulTiles(): MatmulTileChoice {
  const { gpu } = runtime();
  return active?.gpu === gpu ? { ...active.choice } : choose(gpu, load(gpu));
}

/**
 * Makes matmul use `tiles` on the current device from now on (throws a RangeError, changing nothing, if the kernel or
 * the adapter cannot run them), or with null reads the cache again, as at start-up. Nothing is stored.
 */
export function setMatmulTiles(tiles: MatmulTiles | null): MatmulTileChoice {
  const { gpu } = runtime();
  if (tiles === null) return choose(gpu, load(gpu));
  const problem = tilesProblem(tiles, gpu.limits);
  if (problem) throw new RangeError(`setMatmulTiles: tiles ${JSON.stringify(tiles)} cannot be used: ${problem}`);
  return choose(gpu, { tiles: pickTiles(tiles), source: 'set' });
}

/**
 * Records `tiles` as this adapter's choice, with `record` (how it was made) beside it, replacing the adapter's
 * previous entry and keeping the other adapters'; matmul uses them from now on. A cache that cannot be parsed is
 * replaced. Returns where it was written, or '' when this runtime has no store.
 */
export async function saveMatmulTiles(tiles: MatmulTiles, record: Record<string, unknown> = {}): Promise<string> {
  const { gpu } = runtime();
  const problem = tilesProblem(tiles, gpu.limits);
  if (problem) throw new RangeError(`saveMatmulTiles: tiles ${JSON.stringify(tiles)} cannot be used: ${problem}`);
  choose(gpu, { tiles: pickTiles(tiles), source: 'tuned' });
  const cache = store();
  if (!cache) return '';
  let entries: TileCacheEntry[] = [];
  try {
    entries = parseDocument(cache.read() ?? '{"format":1,"entries":[]}');
  } catch {
    // Unreadable or corrupt (load() warned about it): the new document replaces it.
  }
  // The three fields that are read come first in the file, and `record` cannot replace them.
  const key = { adapter: { ...gpu.adapterInfo }, kernel: kernelVersion(), tiles: pickTiles(tiles) };
  const entry: TileCacheEntry = Object.assign({ ...key }, record, key);
  const doc = { format: 1, entries: [...entries.filter((e) => !sameAdapter(e.adapter, gpu.adapterInfo)), entry] };
  await cache.write(`${JSON.stringify(doc, null, 2)}\n`);
  return cache.where();
}

/** "128×128×8 (16×16 invocations × 8×8 outputs)": workgroup tile BM×BN, K-slice depth, and how it is shared out. */
export function describeTiles(t: MatmulTiles): string {
  return `${t.WY * t.TM}×${t.WX * t.TN}×${t.BK} (${t.WX}×${t.WY} invocations × ${t.TM}×${t.TN} outputs)`;
}
