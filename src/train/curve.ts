// A run's loss curve as a CSV table and as a standalone SVG line chart (raw loss + smoothed trend), with no plotting library.

export interface CurvePoint {
  step: number;
  loss: number;
  tokens?: number;
  lr?: number;
  epoch?: number;
}

const CSV_COLUMNS = ['step', 'loss', 'tokens', 'lr', 'epoch'] as const;

/** Header line + one row per point; absent fields are empty cells. */
export function lossCurveCsv(points: readonly CurvePoint[]): string {
  // String(n) is the shortest text that parses back to the same double: full precision without 17-digit noise.
  const rows = points.map((p) => CSV_COLUMNS.map((c) => (p[c] === undefined ? '' : String(p[c]))).join(','));
  return [CSV_COLUMNS.join(','), ...rows].join('\n') + '\n';
}

const WIDTH = 800;
const HEIGHT = 400;
const MARGIN = { left: 64, right: 24, top: 48, bottom: 56 };
const PLOT_W = WIDTH - MARGIN.left - MARGIN.right;
const PLOT_H = HEIGHT - MARGIN.top - MARGIN.bottom;
const SMOOTHING = 0.9;
const RAW_COLOR = '#a6c8e8';
const SMOOTH_COLOR = '#1f5f9e';
const GRID_COLOR = '#e6e6e6';
const TICKS = 5;

/** A self-contained SVG picture: title, axes with round tick values, the raw loss (thin, light) and its EMA (bold). */
export function lossCurveSvg(points: readonly CurvePoint[], options: { title?: string } = {}): string {
  const title = escapeXml(options.title ?? 'training loss');
  // NaN/Infinity (a diverged step, an overflowed f16 loss) cannot be placed on an axis; drop them but say how many.
  const finite = points.filter((p) => Number.isFinite(p.step) && Number.isFinite(p.loss));
  const skipped = points.length - finite.length;

  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12" fill="#333">`,
    `<title>${title}</title>`,
    // An explicit white background: viewers with a dark theme would otherwise show dark text on dark.
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>`,
    `<text x="${WIDTH / 2}" y="28" text-anchor="middle" font-size="16" font-weight="bold">${title}</text>`,
    `<text x="${MARGIN.left + PLOT_W / 2}" y="${HEIGHT - 12}" text-anchor="middle">optimizer step</text>`,
    `<text transform="translate(18 ${MARGIN.top + PLOT_H / 2}) rotate(-90)" text-anchor="middle">loss</text>`,
  ];
  if (finite.length === 0) {
    out.push(`<text x="${MARGIN.left + PLOT_W / 2}" y="${MARGIN.top + PLOT_H / 2}" text-anchor="middle" font-size="14" fill="#888">no data yet</text>`);
  } else {
    out.push(...chart(finite));
  }
  if (skipped > 0) {
    const what = skipped === 1 ? 'point' : 'points';
    out.push(`<text x="${WIDTH - MARGIN.right}" y="${HEIGHT - 12}" text-anchor="end" font-size="11" fill="#b03030">${skipped} ${what} with NaN/Infinity loss skipped</text>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Axes, grid, both lines and the legend for at least one finite point. */
function chart(points: readonly CurvePoint[]): string[] {
  const steps = points.map((p) => p.step);
  const losses = points.map((p) => p.loss);
  const x = niceScale(...extent(steps), true);
  const y = niceScale(...extent(losses), false);
  const px = (v: number): number => MARGIN.left + ((v - x.lo) / (x.hi - x.lo)) * PLOT_W;
  const py = (v: number): number => MARGIN.top + PLOT_H - ((v - y.lo) / (y.hi - y.lo)) * PLOT_H;
  const bottom = MARGIN.top + PLOT_H;
  const right = MARGIN.left + PLOT_W;

  const out: string[] = [];
  for (const t of x.ticks) {
    const at = px(t).toFixed(1);
    out.push(`<line x1="${at}" y1="${MARGIN.top}" x2="${at}" y2="${bottom}" stroke="${GRID_COLOR}"/>`);
    out.push(`<text x="${at}" y="${bottom + 18}" text-anchor="middle">${t.toFixed(x.decimals)}</text>`);
  }
  for (const t of y.ticks) {
    const at = py(t).toFixed(1);
    out.push(`<line x1="${MARGIN.left}" y1="${at}" x2="${right}" y2="${at}" stroke="${GRID_COLOR}"/>`);
    out.push(`<text x="${MARGIN.left - 8}" y="${at}" text-anchor="end" dominant-baseline="middle">${t.toFixed(y.decimals)}</text>`);
  }
  out.push(`<path d="M${MARGIN.left} ${MARGIN.top}V${bottom}H${right}" fill="none" stroke="#333"/>`);

  const line = (values: readonly number[]): string => values.map((v, i) => `${px(steps[i]!).toFixed(1)},${py(v).toFixed(1)}`).join(' ');
  out.push(`<polyline points="${line(losses)}" fill="none" stroke="${RAW_COLOR}" stroke-width="1"/>`);
  out.push(`<polyline points="${line(ema(losses, SMOOTHING))}" fill="none" stroke="${SMOOTH_COLOR}" stroke-width="2"/>`);
  if (points.length === 1) {
    // A one-point polyline draws nothing; a dot shows where the only measurement is.
    out.push(`<circle cx="${px(steps[0]!).toFixed(1)}" cy="${py(losses[0]!).toFixed(1)}" r="3" fill="${SMOOTH_COLOR}"/>`);
  }

  // Top right of the plot: loss curves fall, so that corner is almost always empty.
  const lx = right - 150;
  const ly = MARGIN.top + 14;
  out.push(
    `<line x1="${lx}" y1="${ly}" x2="${lx + 20}" y2="${ly}" stroke="${RAW_COLOR}" stroke-width="1"/>`,
    `<text x="${lx + 26}" y="${ly}" dominant-baseline="middle">loss</text>`,
    `<line x1="${lx}" y1="${ly + 16}" x2="${lx + 20}" y2="${ly + 16}" stroke="${SMOOTH_COLOR}" stroke-width="2"/>`,
    `<text x="${lx + 26}" y="${ly + 16}" dominant-baseline="middle">smoothed (EMA ${SMOOTHING})</text>`,
  );
  return out;
}

/**
 * Exponential moving average with bias correction: avg_k = w·avg_{k-1} + (1-w)·x_k, shown as avg_k / (1 - w^k).
 * Starting from avg_0 = 0 would drag the first values towards zero; dividing by 1 - w^k (the weights' sum, as in
 * Adam and TensorBoard) makes every shown value a weighted mean of the losses so far, so it stays within their range.
 */
function ema(values: readonly number[], w: number): number[] {
  let avg = 0;
  return values.map((v, i) => {
    avg = w * avg + (1 - w) * v;
    return avg / (1 - w ** (i + 1));
  });
}

/**
 * An axis range widened to round numbers with about TICKS ticks of 1, 2 or 5 × 10^k.
 * `integer` keeps the tick step ≥ 1 (optimizer steps are whole numbers).
 */
function niceScale(min: number, max: number, integer: boolean): { lo: number; hi: number; ticks: number[]; decimals: number } {
  if (min === max) {
    // A single value still needs a non-empty range to divide by.
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    [min, max] = [min - pad, max + pad];
  }
  const rough = (max - min) / TICKS;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  let step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough)!;
  if (integer) step = Math.max(1, step);
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const ticks: number[] = [];
  // Half a step of slack: lo + k·step accumulates rounding error and could miss hi by 1e-16.
  for (let k = 0; lo + k * step <= hi + step / 2; k++) ticks.push(lo + k * step);
  return { lo, hi, ticks, decimals: Math.max(0, -Math.floor(Math.log10(step))) };
}

/** [min, max] by a loop: Math.min(...values) overflows the call stack for a long run's hundreds of thousands of points. */
function extent(values: readonly number[]): [number, number] {
  let [min, max] = [Infinity, -Infinity];
  for (const v of values) [min, max] = [Math.min(min, v), Math.max(max, v)];
  return [min, max];
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}
