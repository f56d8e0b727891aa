// A one-line progress bar for training and generation: redrawn in place on a terminal, plain log lines anywhere else.

export interface ProgressInfo {
  loss?: number;
  tokensPerSecond?: number;
  epoch?: number;
  lr?: number;
}

/** What Progress writes to: a NodeJS.WriteStream or anything shaped like one (tests pass a fake). */
export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  /** Terminal width; read on every redraw so a resized window is honoured. */
  columns?: number;
}

export interface ProgressOptions {
  /** Default process.stderr, so stdout stays clean for generated text and redirected output. */
  stream?: ProgressStream;
  /** Printed at the start of every line, e.g. 'train' or 'eval'. */
  label?: string;
  /** Clock in milliseconds (default performance.now); tests inject a fake one. */
  now?: () => number;
  /** Off a terminal, print a line for every this many updates (default 1). */
  plainEvery?: number;
}

const CLEAR_TO_END = '\x1b[K';
// Eighths of a cell, so the bar's tip moves smoothly even when it is only 20 cells wide.
const PARTIAL = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
const DEFAULT_COLUMNS = 100;
const MAX_BAR = 30;
const MIN_BAR = 5;

export class Progress {
  readonly #total: number;
  readonly #stream: ProgressStream;
  readonly #tty: boolean;
  readonly #label: string;
  readonly #now: () => number;
  readonly #plainEvery: number;
  readonly #createdAt: number;
  /** Where the rate is measured from: the first update, so a resumed run (done starts high) and the first step's
   *  one-off cost (pipeline compilation, warm-up) do not distort the ETA. */
  #start: { time: number; done: number } | undefined;
  #done = 0;
  #info: ProgressInfo = {};
  #updates = 0;
  /** The bar currently on screen (TTY only), redrawn under lines printed by log(). */
  #bar: string | undefined;
  #finished = false;

  constructor(total: number, options: ProgressOptions = {}) {
    this.#total = total;
    this.#stream = options.stream ?? process.stderr;
    this.#tty = this.#stream.isTTY === true;
    this.#label = options.label ?? '';
    this.#now = options.now ?? (() => performance.now());
    this.#plainEvery = Math.max(1, Math.floor(options.plainEvery ?? 1));
    this.#createdAt = this.#now();
  }

  /** Records `done` of `total`; fields missing from `info` keep their last value (loss is often read back less often). */
  update(done: number, info: ProgressInfo = {}): void {
    if (this.#finished) return;
    const time = this.#now();
    this.#start ??= { time, done };
    this.#done = done;
    this.#info = { ...this.#info, ...info };
    this.#updates++;
    const eta = this.#eta(time);
    const tail = eta === undefined ? '' : `ETA ${formatDuration(eta)}`;
    if (this.#tty) this.#draw(tail);
    else if (this.#updates % this.#plainEvery === 0) this.#stream.write(this.#plainLine(tail) + '\n');
  }

  /** Prints a line above the bar: clear the bar's line, print, then draw the bar again below. */
  log(line: string): void {
    if (this.#bar === undefined) this.#stream.write(line + '\n');
    else this.#stream.write(`\r${line}${CLEAR_TO_END}\n${this.#bar}`);
  }

  /** Leaves the final state on screen with the elapsed time in place of the ETA. */
  finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#start === undefined) return;
    const tail = `done in ${formatDuration((this.#now() - this.#createdAt) / 1000)}`;
    if (this.#tty) {
      this.#draw(tail);
      this.#stream.write('\n');
      this.#bar = undefined;
    } else {
      this.#stream.write(this.#plainLine(tail) + '\n');
    }
  }

  /** Seconds left at the average rate since the first update; undefined until there is a rate to go on. */
  #eta(time: number): number | undefined {
    const start = this.#start!;
    const seconds = (time - start.time) / 1000;
    const progressed = this.#done - start.done;
    if (seconds <= 0 || progressed <= 0) return undefined;
    return Math.max(0, this.#total - this.#done) / (progressed / seconds);
  }

  #draw(tail: string): void {
    this.#bar = `\r${this.#ttyLine(tail)}${CLEAR_TO_END}`;
    this.#stream.write(this.#bar);
  }

  /** `epoch 2 ▕████████▌      ▏ 57% 1234/2170  loss 3.412  1.2k tok/s  ETA 4m12s`, fitted to the terminal. */
  #ttyLine(tail: string): string {
    // One column short of the width: writing into the last column makes some terminals wrap, breaking the \r redraw.
    const columns = (this.#stream.columns ?? DEFAULT_COLUMNS) - 1;
    const { epoch } = this.#info;
    const head = [this.#label, epoch === undefined ? '' : `epoch ${epoch}`].filter((s) => s !== '').join(' ');
    const total = String(this.#total);
    // Padded so the line does not jitter as the numbers grow.
    const counts = `${String(percent(this.#done, this.#total)).padStart(3)}% ${String(this.#done).padStart(total.length)}/${total}`;
    const rest = [counts, ...this.#fields(), tail].filter((s) => s !== '').join('  ');

    const fixed = (head === '' ? 0 : head.length + 1) + 2 + 1 + rest.length; // head + space, ▕ ▏, space, rest
    const cells = Math.min(MAX_BAR, columns - fixed);
    const bar = cells < MIN_BAR ? '' : `${barCells(this.#done, this.#total, cells)} `;
    const line = `${head === '' ? '' : `${head} `}${bar}${rest}`;
    return line.length > columns ? line.slice(0, columns) : line;
  }

  /** `step 1234/2170 (57%) epoch 2 loss 3.412 1.2k tok/s ETA 4m12s`: one self-contained line per report, for logs. */
  #plainLine(tail: string): string {
    const { epoch } = this.#info;
    return [
      this.#label,
      `step ${this.#done}/${this.#total} (${percent(this.#done, this.#total)}%)`,
      epoch === undefined ? '' : `epoch ${epoch}`,
      ...this.#fields(),
      tail,
    ]
      .filter((s) => s !== '')
      .join(' ');
  }

  #fields(): string[] {
    const { loss, lr, tokensPerSecond } = this.#info;
    return [
      loss === undefined ? '' : `loss ${loss.toFixed(3)}`,
      lr === undefined ? '' : `lr ${formatLr(lr)}`,
      tokensPerSecond === undefined ? '' : `${humanize(tokensPerSecond)} tok/s`,
    ].filter((s) => s !== '');
  }
}

/** How far along, clamped to [0, 1]; an empty job counts as complete. */
function fraction(done: number, total: number): number {
  return total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
}

/** Whole percent, rounded down so 100% means finished; done * 100 first, since 0.29 * 100 is 28.999999999999996. */
function percent(done: number, total: number): number {
  return total > 0 ? Math.floor(Math.min(100, Math.max(0, (done * 100) / total))) : 100;
}

/** `▕████████▌      ▏`: `cells` cells between the frame characters. */
function barCells(done: number, total: number, cells: number): string {
  const eighths = Math.floor(fraction(done, total) * cells * 8);
  const full = Math.floor(eighths / 8);
  const tip = full < cells ? PARTIAL[eighths % 8]! : '';
  return `▕${'█'.repeat(full)}${tip}${' '.repeat(cells - full - (tip === '' ? 0 : 1))}▏`;
}

/** 1.5e-4 -> '1.50e-4': learning rates span decades, so an exponent reads better than 0.000150. */
function formatLr(lr: number): string {
  return lr === 0 ? '0' : lr.toExponential(2).replace('e+', 'e');
}

/** 987 -> '987', 12.34 -> '12.3', 1234 -> '1.2k', 2_500_000 -> '2.5M'. */
export function humanize(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) < 1000) return String(Number(n.toPrecision(3)));
  const units = ['k', 'M', 'G'];
  let scaled = n / 1000;
  let u = 0;
  // 999.96k would print as 1000.0k; move up a unit instead.
  while (Math.abs(scaled) >= 999.95 && u < units.length - 1) {
    scaled /= 1000;
    u++;
  }
  return `${scaled.toFixed(1)}${units[u]}`;
}

/** 3725 -> '1h02m', 252 -> '4m12s', 12 -> '12s': the two most significant units. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  // Round once up front so 59.6 s reads '1m00s', not '60s'.
  const s = Math.max(0, Math.round(seconds));
  const pad = (n: number): string => String(n).padStart(2, '0');
  if (s >= 3600) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  return `${s}s`;
}
