// Weight file I/O: safetensors, torch.save zip and legacy files agree bit for bit on the HF fixtures; corrupt and hostile files fail clearly.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync, zipSync, type Zippable } from 'fflate';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { atomicWriteFile, readBytes } from '../src/io/fs.js';
import { parsePytorch } from '../src/io/pytorch.js';
import { fromFloat32, parseSafetensors, serializeSafetensors, toFloat32, toInt32, type HostTensor, type WeightDtype } from '../src/io/safetensors.js';
import { parseWeights } from '../src/io/weights.js';

// A switch the atomicWriteFile test flips: the next temp file opened for writing gets half its data, then a disk error.
const fault = vi.hoisted(() => ({ failNextWrite: false, tmpPath: '' }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const open: typeof real.open = async (path, flags, mode) => {
    const handle = await real.open(path, flags, mode);
    if (fault.failNextWrite && flags === 'wx') {
      fault.failNextWrite = false;
      fault.tmpPath = String(path);
      Object.assign(handle, {
        writeFile: async (data: Uint8Array | string) => {
          const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
          await handle.write(bytes.subarray(0, bytes.length >> 1));
          throw Object.assign(new Error('ENOSPC: no space left on device (simulated)'), { code: 'ENOSPC' });
        },
      });
    }
    return handle;
  };
  return { ...real, open };
});

const HF = '/work/shared/fixtures/hf';
const CASES = ['gpt2_tiny', 'gpt2_tiny_backward', 'xlnet_tiny', 'xlnet_tiny_backward', 'xlnet_tiny_bidata'];
const fixture = (c: string, f: string): Uint8Array => new Uint8Array(readFileSync(join(HF, c, f)));

const scratch = mkdtempSync(join(tmpdir(), 'webgpu-lm-io-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function expectSameTensors(actual: Map<string, HostTensor>, expected: Map<string, HostTensor>, what: string): void {
  expect([...actual.keys()].sort(), `${what}: names`).toEqual([...expected.keys()].sort());
  for (const [name, e] of expected) {
    const a = actual.get(name)!;
    expect(a.dtype, `${what}: ${name} dtype`).toBe(e.dtype);
    expect(a.shape, `${what}: ${name} shape`).toEqual(e.shape);
    expect(Buffer.from(a.bytes).equals(Buffer.from(e.bytes)), `${what}: ${name} bytes`).toBe(true);
  }
}

function header(file: Uint8Array): Record<string, unknown> {
  const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  return JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n))) as Record<string, unknown>;
}

/** A raw safetensors file from a header (object or exact text) and a data buffer; pads the JSON to `pad` bytes. */
function rawSafetensors(head: object | string, data: Uint8Array, pad = 8): Uint8Array {
  let json = typeof head === 'string' ? head : JSON.stringify(head);
  while (json.length % pad !== 0) json += ' ';
  const text = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + text.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  out.set(data, 8 + text.length);
  return out;
}

const f32Bytes = (xs: number[]): Uint8Array => new Uint8Array(Float32Array.from(xs).buffer);
const host = (dtype: WeightDtype, shape: number[], bytes: ArrayBufferView): HostTensor => ({
  dtype,
  shape,
  bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
});

/** Assembles pickles opcode by opcode, the way torch.save's pickler would write them. */
class Pickle {
  private readonly out: number[] = [];
  op(...codes: number[]): this {
    this.out.push(...codes);
    return this;
  }
  private text(s: string): number[] {
    return [...new TextEncoder().encode(s)];
  }
  str(s: string): this {
    const b = this.text(s);
    return this.op(0x58, b.length & 0xff, (b.length >> 8) & 0xff, 0, 0, ...b); // BINUNICODE
  }
  shortStr(s: string): this {
    const b = this.text(s);
    return this.op(0x8c, b.length, ...b); // SHORT_BINUNICODE
  }
  int(n: number): this {
    const b = new Uint8Array(new Int32Array([n]).buffer);
    return this.op(0x4a, ...b); // BININT
  }
  long(v: bigint, n: number): this {
    const b: number[] = [];
    for (let i = 0; i < n; i++) b.push(Number((v >> BigInt(8 * i)) & 0xffn));
    return this.op(0x8a, n, ...b); // LONG1
  }
  global(module: string, name: string): this {
    return this.op(0x63, ...this.text(`${module}\n${name}\n`)); // GLOBAL
  }
  ints(xs: number[]): this {
    this.mark();
    for (const x of xs) this.int(x);
    return this.op(0x74); // TUPLE
  }
  mark(): this {
    return this.op(0x28);
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

/** `_rebuild_tensor_v2(<persistent id>, offset, size, stride, False, OrderedDict())` with the id's fields given. */
function tensorCall(p: Pickle, id: (p: Pickle) => void, offset: number, size: number[], stride: number[]): void {
  p.global('torch._utils', '_rebuild_tensor_v2').mark();
  p.mark().str('storage');
  id(p);
  p.op(0x74, 0x51); // TUPLE, BINPERSID
  p.int(offset).ints(size).ints(stride).op(0x89); // NEWFALSE
  p.global('collections', 'OrderedDict').op(0x29, 0x52); // EMPTY_TUPLE, REDUCE
  p.op(0x74, 0x52); // TUPLE, REDUCE
}

/** A torch.save zip archive of a given data.pkl and storage records, stored uncompressed like torch does. */
function torchZip(pkl: Uint8Array, storages: Record<string, Uint8Array>, prefix = 'archive/'): Uint8Array {
  const entries: Zippable = { [`${prefix}data.pkl`]: [pkl, { level: 0 }], [`${prefix}version`]: [new TextEncoder().encode('3\n'), { level: 0 }] };
  for (const [k, v] of Object.entries(storages)) entries[`${prefix}data/${k}`] = [v, { level: 0 }];
  return zipSync(entries);
}

/** A legacy torch.save stream: magic, protocol, sys_info, `main`, the key list, then (count, bytes) per storage. */
function legacyFile(main: Uint8Array, storages: [string, number, Uint8Array][]): Uint8Array {
  const magic = new Pickle().op(0x80, 2).long(0x1950a86a20f9469cfc6cn, 10).op(0x2e).bytes();
  const protocol = new Pickle().op(0x80, 2).op(0x4d, 0xe9, 0x03, 0x2e).bytes();
  const sysInfo = new Pickle().op(0x80, 2, 0x7d).mark().str('little_endian').op(0x88).op(0x75, 0x2e).bytes();
  const keys = new Pickle().op(0x80, 2, 0x5d).mark();
  for (const [k] of storages) keys.str(k);
  keys.op(0x65, 0x2e);
  const parts: Uint8Array[] = [magic, protocol, sysInfo, main, keys.bytes()];
  for (const [, count, data] of storages) parts.push(new Uint8Array(new BigInt64Array([BigInt(count)]).buffer), data);
  return Buffer.concat(parts);
}

describe('HF fixtures: every format gives the same state dict', () => {
  for (const c of CASES) {
    it(`${c}: model.safetensors, pytorch_model.bin and pytorch_model.legacy.bin agree bit for bit`, () => {
      const st = parseWeights(fixture(c, 'model.safetensors'), 'model.safetensors');
      const zip = parseWeights(fixture(c, 'pytorch_model.bin'), 'pytorch_model.bin');
      const legacy = parseWeights(fixture(c, 'pytorch_model.legacy.bin'), 'pytorch_model.legacy.bin');
      expectSameTensors(zip, st, `${c} zip`);
      expectSameTensors(legacy, st, `${c} legacy`);
      for (const t of [...st.values(), ...zip.values(), ...legacy.values()]) {
        expect(t.dtype).toBe('F32');
        expect(t.bytes.byteOffset % 4).toBe(0);
      }
    });

    it(`${c}: names and shapes are the stored entries of params.json`, () => {
      const params = JSON.parse(readFileSync(join(HF, c, 'params.json'), 'utf8')) as {
        state_dict: { name: string; shape: number[]; stored_in_model_safetensors: boolean }[];
      };
      const stored = params.state_dict.filter((p) => p.stored_in_model_safetensors);
      const { tensors, metadata } = parseSafetensors(fixture(c, 'model.safetensors'));
      expect(metadata).toEqual({ format: 'pt' });
      expect([...tensors.keys()].sort()).toEqual(stored.map((p) => p.name).sort());
      for (const p of stored) expect(tensors.get(p.name)!.shape, p.name).toEqual(p.shape);
    });
  }

  it('serialize(parse(file)) reproduces the reference writer byte for byte', () => {
    for (const [c, f] of [['gpt2_tiny', 'model.safetensors'], ['xlnet_tiny', 'model.safetensors'], ['gpt2_tiny_backward', 'grads.safetensors'], ['xlnet_tiny', 'expected.safetensors']] as const) {
      const file = fixture(c, f);
      const { tensors, metadata } = parseSafetensors(file);
      const again = serializeSafetensors(tensors, metadata);
      expect(Buffer.from(again).equals(Buffer.from(file)), `${c}/${f}`).toBe(true);
    }
  });

  it('round trip: mixed dtypes come back identical, header 8-aligned, every tensor aligned, format pt', () => {
    const tensors = new Map<string, HostTensor>([
      ['b.u8', host('U8', [3], Uint8Array.from([1, 2, 255]))],
      ['a.f16', host('F16', [2, 1], Uint16Array.from([0x3c00, 0xc000]))],
      ['10', host('F64', [1], Float64Array.from([Math.PI]))],
      ['2', host('I64', [], BigInt64Array.from([-7n]))],
      ['empty', host('F32', [0, 4], new Float32Array(0))],
      ['w', fromFloat32(Float32Array.from([0.5, -1.25, 3]), [3])],
    ]);
    const file = serializeSafetensors(tensors, { note: 'hi' });
    const n = Number(new DataView(file.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const head = header(file);
    expect(head.__metadata__).toEqual({ format: 'pt', note: 'hi' });
    // Data order: I64, F64, F32 (ties by name), F16, U8 — the reference writer's dtype order, larger alignment first.
    const byOffset = Object.entries(head)
      .filter(([k]) => k !== '__metadata__')
      .map(([k, v]) => [k, (v as { data_offsets: number[] }).data_offsets] as const)
      .sort(([, a], [, b]) => a[0]! - b[0]! || a[1]! - b[1]!);
    expect(byOffset.map(([k]) => k)).toEqual(['2', '10', 'empty', 'w', 'a.f16', 'b.u8']);
    // Built by hand, the JSON text keeps that order even for integer-like names, which JSON.parse would hoist.
    expect(new TextDecoder().decode(file.subarray(8, 8 + n)).indexOf('"2":')).toBeLessThan(new TextDecoder().decode(file.subarray(8, 8 + n)).indexOf('"10":'));
    const back = parseSafetensors(file);
    expectSameTensors(back.tensors, tensors, 'round trip');
    for (const [name, t] of back.tensors) expect(t.bytes.byteOffset % ({ F64: 8, I64: 8, F32: 4, F16: 2, U8: 1 } as Record<string, number>)[t.dtype]!, name).toBe(0);
    const twice = serializeSafetensors(back.tensors, back.metadata);
    expect(Buffer.from(twice).equals(Buffer.from(file))).toBe(true);
    expect(header(serializeSafetensors(new Map())).__metadata__).toEqual({ format: 'pt' });
  });
});

describe('dtype conversions against hand-computed values', () => {
  it('F16: normals, subnormals, ±0, ±inf, NaN', () => {
    const bits = [0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xc000, 0x3555, 0x7bff, 0x8001, 0x7c00, 0xfc00, 0x7e00, 0x7c01];
    const f = toFloat32(host('F16', [bits.length], Uint16Array.from(bits)));
    const expected = [0, -0, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, 1, -2, 0.333251953125, 65504, -(2 ** -24), Infinity, -Infinity, NaN, NaN];
    expected.forEach((e, i) => expect(Object.is(f[i], e), `0x${bits[i]!.toString(16)} → ${f[i]}, expected ${e}`).toBe(true));
    // NaN payloads survive (quiet bit and the low mantissa bit move up 13 places).
    const u = new Uint32Array(f.buffer);
    expect(u[12]).toBe(0x7fc00000);
    expect(u[13]).toBe(0x7f802000);
  });

  it('F16: all 65536 bit patterns equal (-1)^s · 2^(e-15) · 1.m (e = 0: 2^-14 · 0.m; e = 31: inf or NaN)', () => {
    const f = toFloat32(host('F16', [65536], Uint16Array.from({ length: 65536 }, (_, i) => i)));
    for (let i = 0; i < 65536; i++) {
      const sign = i & 0x8000 ? -1 : 1;
      const e = (i >> 10) & 0x1f;
      const m = i & 0x3ff;
      const v = e === 0 ? sign * m * 2 ** -24 : e === 31 ? (m ? NaN : sign * Infinity) : sign * (1 + m / 1024) * 2 ** (e - 15);
      if (!Object.is(f[i], v)) expect.fail(`0x${i.toString(16)} → ${f[i]}, expected ${v}`);
    }
  });

  it('BF16: the top half of a float32, subnormals and specials included', () => {
    const bits = [0x3f80, 0xc049, 0x8000, 0x0001, 0x7f7f, 0x7f80, 0xff80, 0x7fc0, 0x3eab];
    const f = toFloat32(host('BF16', [3, 3], Uint16Array.from(bits)));
    const expected = [1, -3.140625, -0, 2 ** -133, 3.3895313892515355e38, Infinity, -Infinity, NaN, 0.333984375];
    expected.forEach((e, i) => expect(Object.is(f[i], e), `0x${bits[i]!.toString(16)} → ${f[i]}, expected ${e}`).toBe(true));
  });

  it('F64 rounds to float32; integer types widen exactly', () => {
    const f = toFloat32(host('F64', [5], Float64Array.from([1 / 3, 1e300, -0, NaN, -1e-50])));
    [Math.fround(1 / 3), Infinity, -0, NaN, -0].forEach((e, i) => expect(Object.is(f[i], e), `${i}`).toBe(true));
    expect([...toFloat32(host('I64', [4], BigInt64Array.from([-5n, 2n ** 40n, 0n, -(2n ** 53n)])))]).toEqual([-5, 2 ** 40, 0, -(2 ** 53)]);
    expect([...toFloat32(host('I32', [2], Int32Array.from([-2147483648, 7])))]).toEqual([-2147483648, 7]);
    expect([...toFloat32(host('I16', [2], Int16Array.from([-32768, 3])))]).toEqual([-32768, 3]);
    expect([...toFloat32(host('I8', [2], Int8Array.from([-128, 127])))]).toEqual([-128, 127]);
    expect([...toFloat32(host('U8', [2], Uint8Array.from([0, 255])))]).toEqual([0, 255]);
    expect([...toFloat32(host('BOOL', [3], Uint8Array.from([0, 1, 1])))]).toEqual([0, 1, 1]);
  });

  it('toInt32: I64 is range-checked, narrower ints widen, floats are refused', () => {
    expect([...toInt32(host('I64', [3], BigInt64Array.from([-1n, 2147483647n, -2147483648n])))]).toEqual([-1, 2147483647, -2147483648]);
    expect(() => toInt32(host('I64', [2], BigInt64Array.from([0n, 2147483648n])))).toThrow(/element 1 of an I64 tensor is 2147483648, outside the int32 range/);
    expect(() => toInt32(host('I64', [1], BigInt64Array.from([-(2n ** 40n)])))).toThrow(/-1099511627776/);
    expect([...toInt32(host('I16', [1], Int16Array.from([-3])))]).toEqual([-3]);
    expect([...toInt32(host('U8', [1], Uint8Array.from([200])))]).toEqual([200]);
    expect([...toInt32(host('BOOL', [2], Uint8Array.from([1, 0])))]).toEqual([1, 0]);
    expect(() => toInt32(host('F32', [1], Float32Array.from([1])))).toThrow(/F32, a floating type/);
  });

  it('F32 is a view when aligned and a copy when not; wrong byte counts are refused', () => {
    const data = Float32Array.from([1.5, -2]);
    const t = fromFloat32(data, [2, 1]);
    expect(toFloat32(t).buffer).toBe(data.buffer);
    const odd = new Uint8Array(9);
    odd.set(t.bytes, 1);
    expect([...toFloat32(host('F32', [2], odd.subarray(1)))]).toEqual([1.5, -2]);
    expect(() => fromFloat32(data, [3])).toThrow(/3 elements but the data has 2/);
    expect(() => toFloat32(host('F32', [3], data))).toThrow(/needs 12 bytes but the tensor holds 8/);
  });
});

describe('safetensors: every corruption fails with a message naming the problem', () => {
  const file = fixture('gpt2_tiny', 'model.safetensors');
  const headerEnd = 8 + Number(new DataView(file.buffer).getBigUint64(0, true));

  it('truncated files', () => {
    expect(() => parseSafetensors(file.subarray(0, 0))).toThrow(/0 bytes, too short to hold the 8-byte header length/);
    expect(() => parseSafetensors(file.subarray(0, 7))).toThrow(/too short/);
    for (const cut of [8, 100, headerEnd - 1]) expect(() => parseSafetensors(file.subarray(0, cut)), `cut ${cut}`).toThrow(/runs past the end of the file.*truncated/);
    for (const cut of [headerEnd, headerEnd + 1, file.length - 4, file.length - 1]) {
      expect(() => parseSafetensors(file.subarray(0, cut)), `cut ${cut}`).toThrow(/tensor 'transformer\.wte\.weight' ends at data offset \d+ but the data buffer has only \d+ bytes: file truncated/);
    }
  });

  it('header length over the limit, bad JSON, not an object', () => {
    const big = file.slice();
    new DataView(big.buffer).setBigUint64(0, 2n ** 40n, true);
    expect(() => parseSafetensors(big)).toThrow(/header length 1099511627776 is over the 100,000,000-byte limit/);
    expect(() => parseSafetensors(rawSafetensors('{"a": {"dtype": "F32",', new Uint8Array(0)))).toThrow(/header is not valid JSON/);
    expect(() => parseSafetensors(rawSafetensors('[1, 2]', new Uint8Array(0)))).toThrow(/must be a JSON object starting with '\{', but it starts with "\[1, 2\]/);
    expect(() => parseSafetensors(rawSafetensors(' {}', new Uint8Array(0)))).toThrow(/starting with '\{'/);
    const badUtf8 = rawSafetensors('{"x":1}', new Uint8Array(0));
    badUtf8[10] = 0xff;
    expect(() => parseSafetensors(badUtf8)).toThrow(/not valid UTF-8/);
  });

  it('offsets with holes, overlaps, wrong sizes or trailing bytes', () => {
    const e = (begin: number, end: number, shape = [2]) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });
    const data = new Uint8Array(16);
    expect(() => parseSafetensors(rawSafetensors({ a: e(0, 8), b: e(4, 12), c: e(12, 16, [1]) }, data))).toThrow(/tensor 'b' \[4, 12\) overlaps tensor 'a', which ends at 8/);
    expect(() => parseSafetensors(rawSafetensors({ a: e(0, 8), b: e(12, 20) }, new Uint8Array(20)))).toThrow(/4 bytes after tensor 'a' belong to no tensor \(hole before 'b' at offset 12\)/);
    expect(() => parseSafetensors(rawSafetensors({ a: e(4, 12) }, data))).toThrow(/4 bytes at the start of the data buffer belong to no tensor/);
    expect(() => parseSafetensors(rawSafetensors({ a: e(0, 8) }, data))).toThrow(/8 bytes after the last tensor belong to no tensor/);
    expect(() => parseSafetensors(rawSafetensors({ a: e(8, 4) }, data))).toThrow(/data_offsets must be \[begin, end\] with 0 <= begin <= end, got \[8,4\]/);
    const w = 'h.0.attn.c_attn.weight';
    expect(() => parseSafetensors(rawSafetensors({ [w]: e(0, 49148, [64, 192]) }, new Uint8Array(49148)))).toThrow(
      "safetensors: tensor 'h.0.attn.c_attn.weight' needs 49152 bytes (shape [64,192] F32) but its offsets span 49148",
    );
    expect(() => parseSafetensors(rawSafetensors({ a: e(0, 8, [-2]) }, data))).toThrow(/shape \[-2\] must be a list of non-negative integers/);
  });

  it('unknown dtypes are named, duplicate names and bad metadata refused', () => {
    const data = new Uint8Array(4);
    for (const dtype of ['F8_E4M3', 'Q4_K', 'U32']) {
      expect(() => parseSafetensors(rawSafetensors({ a: { dtype, shape: [4], data_offsets: [0, 4] } }, data))).toThrow(new RegExp(`tensor 'a' has dtype "${dtype}", which webgpu-lm does not read`));
    }
    const dup = '{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}';
    expect(() => parseSafetensors(rawSafetensors(dup, data))).toThrow(/the header names 'a' twice/);
    const nested = '{"__metadata__":{"a":"x"},"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}';
    expect(parseSafetensors(rawSafetensors(nested, data)).metadata).toEqual({ a: 'x' });
    expect(() => parseSafetensors(rawSafetensors({ __metadata__: { format: 1 } }, new Uint8Array(0)))).toThrow(/__metadata__ must map strings to strings, but 'format' holds a number/);
  });

  it('zero-size tensors and scalars load; unaligned data from other writers is copied, not viewed', () => {
    const data = f32Bytes([2.5, -1, 7]);
    // JSON padded to 4k+2 bytes: the data buffer starts 2 bytes off a 4-byte boundary.
    let json = JSON.stringify({ s: { dtype: 'F32', shape: [], data_offsets: [0, 4] }, e: { dtype: 'F32', shape: [3, 0], data_offsets: [4, 4] }, v: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } });
    while (json.length % 4 !== 2) json += ' ';
    const file = rawSafetensors(json, data, 1);
    expect((8 + json.length) % 4).toBe(2);
    const { tensors } = parseSafetensors(file);
    expect(tensors.get('s')!.shape).toEqual([]);
    expect([...toFloat32(tensors.get('s')!)]).toEqual([2.5]);
    expect(toFloat32(tensors.get('e')!).length).toBe(0);
    expect([...toFloat32(tensors.get('v')!)]).toEqual([-1, 7]);
    for (const t of tensors.values()) expect(t.bytes.byteOffset % 4).toBe(0);
  });
});

describe('pytorch: corrupt archives and streams fail clearly', () => {
  const zipBytes = fixture('gpt2_tiny', 'pytorch_model.bin');
  const entries = unzipSync(zipBytes);
  const rezip = (change: (e: Record<string, Uint8Array>) => void): Uint8Array => {
    const copy = { ...entries };
    change(copy);
    return zipSync(Object.fromEntries(Object.entries(copy).map(([k, v]) => [k, [v, { level: 0 }]])) as Zippable);
  };

  it('the fixture archive and a re-zipped copy with another prefix load the same', () => {
    const moved = zipSync(Object.fromEntries(Object.entries(entries).map(([k, v]) => [k.replace(/^pytorch_model\//, 'some/other dir/'), [v, { level: 0 }]])) as Zippable);
    expectSameTensors(parsePytorch(moved), parsePytorch(zipBytes), 'moved');
  });

  it('truncated zip files', () => {
    for (const cut of [4, 100, 3000, zipBytes.length >> 1, zipBytes.length - 22, zipBytes.length - 1]) {
      expect(() => parsePytorch(zipBytes.subarray(0, cut)), `cut ${cut}`).toThrow(/pytorch: the zip archive cannot be read \(.*\): the file is truncated or corrupt/);
    }
  });

  it('a zip without data.pkl', () => {
    const noPkl = rezip((e) => delete e['pytorch_model/data.pkl']);
    expect(() => parsePytorch(noPkl)).toThrow(/the zip archive has no data\.pkl, so it is not a torch\.save checkpoint \(entries: pytorch_model\/data\/0/);
    expect(() => parseWeights(zipSync({}), 'empty.bin')).toThrow(/empty\.bin: not a weight file/);
  });

  it('a pickle truncated mid-stream', () => {
    const pkl = entries['pytorch_model/data.pkl']!;
    for (const cut of [1, 2, 40, 140, pkl.length >> 1, pkl.length - 1]) {
      const bad = rezip((e) => (e['pytorch_model/data.pkl'] = pkl.subarray(0, cut)));
      expect(() => parsePytorch(bad), `cut ${cut}`).toThrow(/pytorch: pytorch_model\/data\.pkl: truncated/);
    }
  });

  it('a storage file too short or missing', () => {
    const short = rezip((e) => (e['pytorch_model/data/0'] = e['pytorch_model/data/0']!.subarray(0, 764)));
    expect(() => parsePytorch(short)).toThrow('pytorch: storage file pytorch_model/data/0 has 764 bytes but 192 F32 elements need 768');
    const missing = rezip((e) => delete e['pytorch_model/data/5']);
    expect(() => parsePytorch(missing)).toThrow(/refers to storage '5' but the archive has no pytorch_model\/data\/5/);
  });

  it('a truncated legacy file, cut in every section', () => {
    const legacy = fixture('gpt2_tiny', 'pytorch_model.legacy.bin');
    // This fixture's sections: magic [0, 15), protocol [15, 21), sys_info [21, 137), main pickle [137, 2931), key list [2931, 3387),
    // then per storage an 8-byte count and its bytes (the first key, '398181264', holds 64 floats).
    const cases: [number, RegExp][] = [
      [10, /legacy magic number: truncated/],
      [18, /legacy protocol version: truncated/],
      [100, /legacy sys_info: truncated/],
      [1500, /legacy main pickle: truncated/],
      [3300, /legacy storage key list: truncated/],
      [3390, /inside the element count of storage '398181264': truncated/],
      [3400, /storage '398181264' needs 256 bytes at byte 3395 but the file has 5 left: truncated/],
      [legacy.length - 1, /needs \d+ bytes at byte \d+ but the file has \d+ left: truncated/],
    ];
    for (const [cut, message] of cases) expect(() => parsePytorch(legacy.subarray(0, cut)), `cut ${cut}`).toThrow(message);
    const wrongCount = legacy.slice();
    wrongCount[3387] = 65;
    expect(() => parsePytorch(wrongCount)).toThrow(/storage '398181264' should hold 64 elements but its record says 65/);
  });

  it('pickles that are not state dicts, or not torch files at all', () => {
    const notDict = new Pickle().op(0x80, 2, 0x5d, 0x2e).bytes();
    expect(() => parsePytorch(torchZip(notDict, {}))).toThrow(/the checkpoint holds a tuple or list, not a state dict/);
    const wrapped = new Pickle().op(0x80, 2, 0x7d).str('epoch').int(3).op(0x73, 0x2e).bytes();
    expect(() => parsePytorch(torchZip(wrapped, {}))).toThrow(/state dict entry 'epoch' holds the number 3, not a tensor/);
    const plainPickle = new Pickle().op(0x80, 2).int(5).op(0x2e).bytes();
    expect(() => parsePytorch(plainPickle)).toThrow(/starts with a pickle of the number 5, not the torch\.save magic number/);
    const badOp = new Pickle().op(0x80, 2, 0x7d, 0x49, 0x2e).bytes();
    expect(() => parsePytorch(torchZip(badOp, {}))).toThrow(/opcode 0x49 is not one torch\.save writes/);
    const underflow = new Pickle().op(0x80, 2, 0x73, 0x2e).bytes();
    expect(() => parsePytorch(torchZip(underflow, {}))).toThrow(/the stack is empty \(SETITEM at byte 2\)/);
  });
});

describe('pytorch: the restricted unpickler', () => {
  it('refuses the malicious fixture, naming posix.system, and runs nothing', () => {
    const bytes = fixture('.', 'malicious_pytorch_model.bin');
    // Its data.pkl builds {'transformer.wte.weight': <tensor>, 'x': posix.system('echo pwned > /tmp/webgpu-lm-pwned')}.
    const pkl = new TextDecoder('latin1').decode(Object.entries(unzipSync(bytes)).find(([k]) => k.endsWith('/data.pkl'))![1]);
    expect(pkl).toContain('posix\nsystem\n');
    const marker = '/tmp/webgpu-lm-pwned';
    expect(pkl).toContain(`echo pwned > ${marker}`);
    const before = existsSync(marker) ? statSync(marker).mtimeMs : null;
    const refusal = /refusing to load: the pickle asks for posix\.system, which a model checkpoint never needs — it may be malicious/;
    expect(() => parsePytorch(bytes)).toThrow(refusal);
    expect(() => parseWeights(bytes, 'malicious_pytorch_model.bin')).toThrow(/^malicious_pytorch_model\.bin: refusing to load/);
    expect(existsSync(marker) ? statSync(marker).mtimeMs : null).toBe(before);
  });

  it('refuses every other global, by GLOBAL or STACK_GLOBAL, before any call', () => {
    for (const [m, n] of [['os', 'system'], ['builtins', 'eval'], ['builtins', 'getattr'], ['subprocess', 'Popen'], ['torch', 'load'], ['torch._utils', '_rebuild_device_tensor_from_numpy']]) {
      const viaGlobal = new Pickle().op(0x80, 2).global(m!, n!).str('x').op(0x85, 0x52, 0x2e).bytes();
      expect(() => parsePytorch(torchZip(viaGlobal, {}))).toThrow(`the pickle asks for ${m}.${n}, which a model checkpoint never needs`);
      const viaStack = new Pickle().op(0x80, 4).shortStr(m!).shortStr(n!).op(0x93).str('x').op(0x85, 0x52, 0x2e).bytes();
      expect(() => parsePytorch(torchZip(viaStack, {}))).toThrow(`the pickle asks for ${m}.${n}`);
    }
    const buildOnTensor = new Pickle().op(0x80, 2).global('torch', 'FloatStorage').op(0x7d, 0x62, 0x2e).bytes();
    expect(() => parsePytorch(torchZip(buildOnTensor, {}))).toThrow(/refusing to set the state of torch\.FloatStorage/);
    const callStorage = new Pickle().op(0x80, 2).global('torch', 'FloatStorage').op(0x29, 0x52, 0x2e).bytes();
    expect(() => parsePytorch(torchZip(callStorage, {}))).toThrow(/torch\.FloatStorage is a storage type, not something a checkpoint calls/);
  });

  it('protocol 4 opcodes, an OrderedDict with _metadata, a Parameter, F16/I64 storages and a transposed tensor', () => {
    // OrderedDict([('w.T', fp16 [2,3] stored transposed), ('p', Parameter(I64 [2])), ('s', shares w's storage at offset 4)])
    const p = new Pickle().op(0x80, 4, 0x95, 0, 0, 0, 0, 0, 0, 0, 0);
    p.shortStr('collections').op(0x94).shortStr('OrderedDict').op(0x94, 0x93, 0x94, 0x29, 0x52, 0x94).mark();
    const half = (q: Pickle) => q.global('torch', 'HalfStorage').str('7').str('cpu').int(6);
    p.shortStr('w.T');
    tensorCall(p, half, 0, [2, 3], [1, 2]);
    p.str('p').global('torch._utils', '_rebuild_parameter').mark();
    tensorCall(p, (q) => q.global('torch', 'LongStorage').str('k').str('cpu').int(2), 0, [2], [1]);
    p.op(0x88).global('collections', 'OrderedDict').op(0x29, 0x52, 0x74, 0x52);
    p.str('s');
    tensorCall(p, half, 4, [2], [1]);
    p.op(0x75); // SETITEMS
    p.op(0x7d).str('_metadata').op(0x7d).str('').op(0x7d).str('version').int(1).op(0x73, 0x73, 0x73, 0x62, 0x2e); // BUILD {_metadata: {'': {version: 1}}}
    const h = Uint16Array.from([0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600]); // 1, 2, 3, 4, 5, 6 in fp16
    const sd = parsePytorch(torchZip(p.bytes(), { 7: new Uint8Array(h.buffer), k: new Uint8Array(BigInt64Array.from([3n, -4n]).buffer) }));
    expect([...sd.keys()]).toEqual(['w.T', 'p', 's']);
    const w = sd.get('w.T')!;
    expect(w.dtype).toBe('F16');
    expect(w.shape).toEqual([2, 3]);
    expect([...toFloat32(w)]).toEqual([1, 3, 5, 2, 4, 6]);
    expect(sd.get('p')!.dtype).toBe('I64');
    expect([...toInt32(sd.get('p')!)]).toEqual([3, -4]);
    expect([...toFloat32(sd.get('s')!)]).toEqual([5, 6]);
  });

  it('a tensor reaching past its storage is refused', () => {
    const p = new Pickle().op(0x80, 2, 0x7d).str('t');
    tensorCall(p, (q) => q.global('torch', 'FloatStorage').str('0').str('cpu').int(4), 2, [3], [1]);
    p.op(0x73, 0x2e);
    expect(() => parsePytorch(torchZip(p.bytes(), { 0: new Uint8Array(16) }))).toThrow(/tensor 't' \(offset 2, size \[3\], stride \[1\]\) reads past its 4-element storage '0'/);
  });

  it('legacy format: shared storages, view metadata, any key order', () => {
    // Two root storages; 'b' is a view of elements [1, 3) of root '9'; data follows in key-list order.
    const p = new Pickle().op(0x80, 2, 0x7d).mark();
    p.str('a');
    tensorCall(p, (q) => q.global('torch', 'FloatStorage').str('9').str('cpu').int(4).op(0x4e), 0, [2, 2], [2, 1]);
    p.str('b');
    tensorCall(p, (q) => q.global('torch', 'FloatStorage').str('9').str('cpu').int(4).str('9v').int(1).int(2).op(0x87), 0, [2], [1]);
    p.str('c');
    tensorCall(p, (q) => q.global('torch', 'ByteStorage').str('10').str('cpu').int(3).op(0x4e), 1, [2], [1]);
    p.op(0x75, 0x2e);
    const file = legacyFile(p.bytes(), [
      ['10', 3, Uint8Array.from([7, 8, 9])],
      ['9', 4, f32Bytes([1, 2, 3, 4])],
    ]);
    const sd = parsePytorch(file);
    expect([...toFloat32(sd.get('a')!)]).toEqual([1, 2, 3, 4]);
    expect([...toFloat32(sd.get('b')!)]).toEqual([2, 3]);
    expect(sd.get('c')!.dtype).toBe('U8');
    expect([...sd.get('c')!.bytes]).toEqual([8, 9]);
    for (const t of sd.values()) expect(t.bytes.byteOffset % 4 === 0 || t.dtype === 'U8').toBe(true);
  });
});

describe('parseWeights sniffs the format', () => {
  it('names the file and the likely cause of an unreadable one', () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    expect(() => parseWeights(enc('version https://git-lfs.github.com/spec/v1\noid sha256:abc\n'), 'pytorch_model.bin')).toThrow(/^pytorch_model\.bin: not a weight file webgpu-lm reads: it is a Git LFS pointer/);
    expect(() => parseWeights(enc('<!DOCTYPE html><html>'), 'model.safetensors')).toThrow(/looks like HTML/);
    expect(() => parseWeights(new Uint8Array(0), 'x.bin')).toThrow(/\(empty file\)/);
    expect(() => parseWeights(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))).toThrow(/^weights: not a weight file webgpu-lm reads: its first bytes are 01 02 03 04 05 06 07 08/);
    const tar = new Uint8Array(1024);
    tar.set(enc('ustar'), 257);
    expect(() => parseWeights(tar, 'old.pt')).toThrow(/tar archive, the torch\.save format of PyTorch < 0\.4/);
  });

  it('reads a safetensors file whose header length starts with the byte 0x80 (not a pickle)', () => {
    const json = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'.padEnd(128, ' ');
    const bytes = new Uint8Array(8 + 128 + 4);
    new DataView(bytes.buffer).setBigUint64(0, 128n, true);
    bytes.set(new TextEncoder().encode(json), 8);
    new DataView(bytes.buffer).setFloat32(136, 2.5, true);
    expect(bytes[0]).toBe(0x80);
    expect(Array.from(toFloat32(parseWeights(bytes).get('a')!))).toEqual([2.5]);
  });

  it('routes each format to its parser and prefixes errors with the file name', () => {
    const st = fixture('xlnet_tiny', 'model.safetensors');
    expect(parseWeights(st).size).toBe(37);
    expect(() => parseWeights(st.subarray(0, 5000), 'model.safetensors')).toThrow(/^model\.safetensors: safetensors: tensor .* file truncated\?$/);
    expect(() => parseWeights(fixture('xlnet_tiny', 'pytorch_model.legacy.bin').subarray(0, 9000), 'old.bin')).toThrow(/^old\.bin: pytorch: storage/);
  });
});

describe('fs helpers', () => {
  it('readBytes returns a plain Uint8Array of the file', async () => {
    const bytes = await readBytes(join(HF, 'gpt2_tiny', 'model.safetensors'));
    expect(Object.getPrototypeOf(bytes)).toBe(Uint8Array.prototype);
    expect(Buffer.from(bytes).equals(readFileSync(join(HF, 'gpt2_tiny', 'model.safetensors')))).toBe(true);
  });

  it('atomicWriteFile writes and replaces whole files and leaves no temp file', async () => {
    const dir = join(scratch, 'ok');
    mkdirSync(dir);
    const target = join(dir, 'model.safetensors');
    const file = fixture('gpt2_tiny', 'model.safetensors');
    await atomicWriteFile(target, file);
    expect(readFileSync(target).equals(Buffer.from(file))).toBe(true);
    await atomicWriteFile(target, '{"step": 2}');
    expect(readFileSync(target, 'utf8')).toBe('{"step": 2}');
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
  });

  it('a failure mid-write leaves the old target intact and removes the half-written temp file', async () => {
    const dir = join(scratch, 'fail');
    mkdirSync(dir);
    const target = join(dir, 'ckpt.json');
    writeFileSync(target, 'old contents');
    fault.failNextWrite = true;
    await expect(atomicWriteFile(target, 'new contents that never fully arrive')).rejects.toThrow(/ENOSPC/);
    expect(fault.tmpPath.startsWith(join(dir, '.ckpt.json.'))).toBe(true);
    expect(existsSync(fault.tmpPath)).toBe(false);
    expect(readFileSync(target, 'utf8')).toBe('old contents');
    expect(readdirSync(dir)).toEqual(['ckpt.json']);
  });

  it('a failed rename (the target is a directory) leaves no temp file', async () => {
    const dir = join(scratch, 'rename');
    mkdirSync(join(dir, 'target', 'inner'), { recursive: true });
    await expect(atomicWriteFile(join(dir, 'target'), 'x')).rejects.toThrow();
    expect(readdirSync(dir)).toEqual(['target']);
    expect(readdirSync(join(dir, 'target'))).toEqual(['inner']);
  });
});
