// Float64 CPU references for matmul and linear: the oracle the GPU kernels are tested against.

export interface Operand {
  data: Float64Array;
  shape: readonly number[];
  /** Read the last two dims swapped. */
  trans?: boolean;
}

/** torch.matmul(op(a), op(b)) in float64, with the output shape. Written from the definition, one element at a time. */
export function matmulRef(a: Operand, b: Operand): { data: Float64Array; shape: number[] } {
  // 1-D a is a [1, K] row, 1-D b a [K, 1] column; their dim is dropped from the result.
  const as = a.shape.length === 1 ? [1, a.shape[0]!] : [...a.shape];
  const bs = b.shape.length === 1 ? [b.shape[0]!, 1] : [...b.shape];
  const [ar, ac] = as.slice(-2) as [number, number];
  const [br, bc] = bs.slice(-2) as [number, number];
  const [M, K] = a.trans ? [ac, ar] : [ar, ac];
  const [Kb, N] = b.trans ? [bc, br] : [br, bc];
  if (K !== Kb) throw new Error(`matmulRef: K ${K} vs ${Kb}`);
  const ab = as.slice(0, -2);
  const bb = bs.slice(0, -2);
  const rank = Math.max(ab.length, bb.length);
  const pa = [...Array<number>(rank - ab.length).fill(1), ...ab];
  const pb = [...Array<number>(rank - bb.length).fill(1), ...bb];
  const batch = pa.map((d, i) => Math.max(d, pb[i]!));
  const count = batch.reduce((p, q) => p * q, 1);
  const out = new Float64Array(count * M * N);
  for (let z = 0; z < count; z++) {
    // Batch coordinates of z, then the flat index of each operand's matrix (index 0 along its size-1 dims).
    let rest = z;
    let za = 0;
    let zb = 0;
    let strideA = 1;
    let strideB = 1;
    for (let d = rank - 1; d >= 0; d--) {
      const c = rest % batch[d]!;
      rest = Math.floor(rest / batch[d]!);
      za += (pa[d] === 1 ? 0 : c) * strideA;
      zb += (pb[d] === 1 ? 0 : c) * strideB;
      strideA *= pa[d]!;
      strideB *= pb[d]!;
    }
    const A = (m: number, k: number): number => a.data[za * M * K + (a.trans ? k * M + m : m * K + k)]!;
    const B = (k: number, n: number): number => b.data[zb * K * N + (b.trans ? n * K + k : k * N + n)]!;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += A(m, k) * B(k, n);
        out[(z * M + m) * N + n] = s;
      }
    }
  }
  const shape = [...batch, ...(a.shape.length === 1 ? [] : [M]), ...(b.shape.length === 1 ? [] : [N])];
  return { data: out, shape };
}

/** torch.nn.functional.linear: x [..., in] · w[out, in]ᵀ + bias[out]. */
export function linearRef(x: Operand, w: Operand, bias?: Float64Array): Float64Array {
  const y = matmulRef(x, { ...w, trans: true }).data;
  if (bias) {
    const N = w.shape[0]!;
    for (let i = 0; i < y.length; i++) y[i] = y[i]! + bias[i % N]!;
  }
  return y;
}
