// Kernel: one WGSL compute shader, its bindings and its uniform layout, read from the WGSL text itself.
//
// The WGSL is the single source of truth. From it we parse
//   - `struct Params { M: u32, alpha: f32, dims: array<vec4<u32>, 2>, ... }` -> how dispatch() packs uniforms,
//   - `@group(0) @binding(i) var<storage, read|read_write>` / `var<uniform>` -> the bind group layout.
// Storage bindings are filled in binding order from dispatch()'s `buffers`; the uniform (if any) is a
// dynamic-offset slice of the runtime's uniform arena, so bind groups can be cached across calls.

export type Scalar = 'u32' | 'i32' | 'f32';
interface Field {
  name: string;
  scalar: Scalar;
  /** Byte offset inside the uniform block. */
  offset: number;
  /** Number of scalars (1 for a scalar, 4 per vec4). */
  count: number;
}

export interface Binding {
  binding: number;
  kind: 'uniform' | 'read' | 'read_write';
  name: string;
}

/**
 * Values for a kernel's Params fields. A function is a value that changes from step to step (a learning rate, a bias
 * correction): dispatch() packs what it returns now, and a captured step (gpu/graph.ts) calls it again at each replay.
 */
export type ParamValues = Record<string, number | readonly number[] | (() => number)>;

/** Where pack() put a field: its word inside the Params block, its scalar type, its name and the value it wrote. */
export interface PackedField {
  word: number;
  scalar: Scalar;
  name: string;
  value: number | (() => number);
}

let nextKernelId = 1;

export class Kernel {
  readonly id = nextKernelId++;
  readonly fields: Field[];
  /** Size of the Params block in bytes (multiple of 16), 0 when the kernel has no uniform. */
  readonly paramsSize: number;
  readonly bindings: Binding[];
  readonly storageBindings: Binding[];
  readonly uniformBinding: Binding | undefined;

  /**
   * @param name  short name used in labels and error messages ("matmul", "layernorm_backward")
   * @param code  the WGSL source, entry point `main`
   */
  constructor(readonly name: string, readonly code: string) {
    this.bindings = parseBindings(code);
    this.uniformBinding = this.bindings.find((b) => b.kind === 'uniform');
    this.storageBindings = this.bindings.filter((b) => b.kind !== 'uniform');
    const { fields, size } = parseParams(code, name);
    if (this.uniformBinding && size === 0) throw new Error(`kernel ${name}: has a uniform binding but no \`struct Params\``);
    this.fields = fields;
    this.paramsSize = size;
  }

  /**
   * Writes `values` into `dst` (a view over the uniform arena) at byte offset `at`, following the Params layout.
   * `scalars` (when capturing a step) hears of every scalar field, so the capture can replay its changing ones.
   */
  pack(values: ParamValues | undefined, u32: Uint32Array, f32: Float32Array, i32: Int32Array, at: number, scalars?: (f: PackedField) => void): void {
    for (const f of this.fields) {
      const v = values?.[f.name];
      if (v === undefined) throw new Error(`kernel ${this.name}: missing uniform \`${f.name}\``);
      const base = (at + f.offset) >> 2;
      const view = f.scalar === 'u32' ? u32 : f.scalar === 'i32' ? i32 : f32;
      if (typeof v === 'number' || typeof v === 'function') {
        view[base] = typeof v === 'number' ? v : v();
        scalars?.({ word: f.offset >> 2, scalar: f.scalar, name: f.name, value: v });
      } else {
        if (v.length > f.count) throw new Error(`kernel ${this.name}: uniform \`${f.name}\` holds ${f.count} values, got ${v.length}`);
        for (let i = 0; i < f.count; i++) view[base + i] = v[i] ?? 0;
      }
    }
  }
}

function parseBindings(code: string): Binding[] {
  const re = /@group\(0\)\s*@binding\((\d+)\)\s*var<\s*(uniform|storage\s*,\s*(read_write|read))\s*>\s*(\w+)/g;
  const out: Binding[] = [];
  for (const m of code.matchAll(re)) {
    const kind = m[2] === 'uniform' ? 'uniform' : (m[3] as 'read' | 'read_write');
    out.push({ binding: Number(m[1]), kind, name: m[4]! });
  }
  return out.sort((a, b) => a.binding - b.binding);
}

function parseParams(code: string, kernel: string): { fields: Field[]; size: number } {
  const m = /struct\s+Params\s*\{([^}]*)\}/.exec(code);
  if (!m) return { fields: [], size: 0 };
  const fields: Field[] = [];
  let offset = 0;
  const body = m[1]!.replace(/\/\/[^\n]*/g, '');
  for (const decl of body.split(/,(?![^<]*>)/)) {
    const d = decl.trim();
    if (!d) continue;
    const fm = /^(\w+)\s*:\s*(.+)$/.exec(d);
    if (!fm) throw new Error(`kernel ${kernel}: cannot parse Params field "${d}"`);
    const type = fm[2]!.replace(/\s+/g, '');
    let scalar: Scalar;
    let count: number;
    let align: number;
    let sm: RegExpExecArray | null;
    if ((sm = /^(u32|i32|f32)$/.exec(type))) {
      [scalar, count, align] = [sm[1] as Scalar, 1, 4];
    } else if ((sm = /^vec4<(u32|i32|f32)>$/.exec(type))) {
      [scalar, count, align] = [sm[1] as Scalar, 4, 16];
    } else if ((sm = /^array<vec4<(u32|i32|f32)>,(\d+)>$/.exec(type))) {
      [scalar, count, align] = [sm[1] as Scalar, 4 * Number(sm[2]), 16];
    } else {
      throw new Error(`kernel ${kernel}: Params field type "${type}" is not supported (use u32/i32/f32, vec4<..> or array<vec4<..>, N>)`);
    }
    offset = Math.ceil(offset / align) * align;
    fields.push({ name: fm[1]!, scalar, offset, count });
    offset += 4 * count;
  }
  return { fields, size: Math.ceil(offset / 16) * 16 };
}
