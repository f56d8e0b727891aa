// IEEE 754 half precision on the CPU, by value arithmetic (not bit tricks): the oracle for the f16 casts and f16 matmul operands.

/** The value of half bits h. */
export function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 31) return f ? NaN : sign * Infinity;
  return sign * (e === 0 ? f * 2 ** -24 : (1024 + f) * 2 ** (e - 25));
}

/** x rounded to the nearest half, ties to even (overflow to inf), as half bits. */
export function halfBits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00; // 65504 + half its ulp (32 / 2): the tie rounds to even, 2^16 = inf
  if (a === 0) return sign;
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  const q = 2 ** (Math.max(e, -14) - 10); // the spacing of halves around a (subnormals share 2^-24)
  const n = a / q;
  const fl = Math.floor(n);
  const r = n - fl > 0.5 || (n - fl === 0.5 && fl % 2 === 1) ? fl + 1 : fl;
  const v = r * q;
  if (v < 2 ** -14) return sign | r; // subnormal: r halves of 2^-24
  let E = Math.floor(Math.log2(v));
  while (2 ** E > v) E--;
  while (2 ** (E + 1) <= v) E++;
  return sign | ((E + 15) << 10) | (v / 2 ** (E - 10) - 1024);
}

/** x rounded to the nearest half, as a number. */
export const roundHalf = (x: number): number => halfValue(halfBits(x));
