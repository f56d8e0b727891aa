// Command-line flags for one `webgpu-lm` command: GPT2-Chinese's flags in kebab-case, its underscore spellings accepted too.

export type FlagValue = string | number | boolean;

/** GPT2-Chinese's --device (CUDA devices): accepted so its scripts run unchanged; the adapter comes from WEBGPU_LM_ADAPTER. */
export const DEVICE_FLAG: FlagSpec = {
  name: 'device',
  type: 'string',
  default: '',
  help: 'accepted for GPT2-Chinese compatibility; pick the GPU with WEBGPU_LM_ADAPTER instead',
};

export interface FlagSpec {
  /** kebab-case, e.g. 'batch-size'; `--batch_size` (GPT2-Chinese's argparse spelling) finds it as well. */
  name: string;
  type: 'string' | 'int' | 'float' | 'bool';
  /** Bool flags default to false. A non-bool flag without a default is absent from `flags` unless given. */
  default?: FlagValue;
  help: string;
  /** Other kebab-case spellings of the same flag (e.g. XLNet's --learning-rate for --lr). */
  aliases?: string[];
}

export interface ParsedArgs {
  /** Keyed by the kebab-case name. */
  flags: Record<string, FlagValue>;
  positional: string[];
  help: boolean;
}

/** A mistake on the command line, as opposed to a failure while running: the CLI prints the message and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

const KEBAB = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
const INT = /^[-+]?\d+$/;
// Stricter than Number(): no hex, no '' (which Number() reads as 0), no 'Infinity'.
const FLOAT = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?$/i;
const EXPECTS = { int: 'an integer', float: 'a number', string: 'a value', bool: 'true or false' } as const;

/** Parses argv for one command. Keys of `flags` are the kebab-case names; every spec gets its value or default. */
export function parseArgs(command: string, argv: readonly string[], specs: readonly FlagSpec[]): ParsedArgs {
  checkSpecs(specs);
  const byName = new Map(specs.flatMap((s) => [s.name, ...(s.aliases ?? [])].map((n) => [n, s] as const)));
  const flags: Record<string, FlagValue> = {};
  const positional: string[] = [];

  // `--help` wins over everything else on the line, so a typo next to it still gets the help text rather than an error.
  const end = argv.indexOf('--');
  const options = end === -1 ? argv : argv.slice(0, end);
  if (options.includes('--help') || options.includes('-h')) return { flags: withDefaults({}, specs), positional, help: true };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      // '-1' or '-' are values (a negative number, stdin); '-x' is someone expecting short options.
      if (/^-[^\d.]/.test(arg)) {
        throw new UsageError(`unknown option ${arg} for ${command}; flags are spelled --name (webgpu-lm ${command} --help lists them)`);
      }
      positional.push(arg);
      continue;
    }

    const eq = arg.indexOf('=');
    const typed = eq === -1 ? arg : arg.slice(0, eq);
    const name = typed.slice(2).replaceAll('_', '-');
    const spec = byName.get(name);
    if (spec === undefined) throw unknownFlag(command, typed, name, specs);

    let text = eq === -1 ? undefined : arg.slice(eq + 1);
    if (text === undefined && spec.type !== 'bool') {
      const next = argv[i + 1];
      // A following flag means the value was forgotten; '-1' does not start with '--', so `--length -1` works.
      if (next === undefined || next.startsWith('--')) throw new UsageError(`missing value for --${name} (expects ${EXPECTS[spec.type]})`);
      text = next;
      i++;
    }
    const value = convert(spec, text);
    if (Object.hasOwn(flags, spec.name)) throw new UsageError(`--${spec.name} given twice (${String(flags[spec.name])}, then ${String(value)})`);
    flags[spec.name] = value;
  }
  return { flags: withDefaults(flags, specs), positional, help: false };
}

/** Help text: usage, summary, the underscore note, then one aligned line per flag. */
export function formatHelp(command: string, summary: string, specs: readonly FlagSpec[]): string {
  const rows: [string, string][] = specs.map((s) => [
    `--${s.name}${s.type === 'bool' ? '' : ` <${s.type}>`}`,
    s.help + defaultNote(s) + (s.aliases?.length ? `; also ${s.aliases.map((a) => `--${a}`).join(', ')}` : ''),
  ]);
  rows.push(['-h, --help', 'show this help']);
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;

  const lines = [`usage: webgpu-lm ${command} [options]`, '', summary, ''];
  const example = specs.find((s) => s.name.includes('-'));
  if (example !== undefined) {
    lines.push(`GPT2-Chinese's underscore spellings (--${example.name.replaceAll('-', '_')}) are accepted too.`, '');
  }
  lines.push('options:', ...rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`));
  return lines.join('\n') + '\n';
}

function defaultNote(spec: FlagSpec): string {
  // A bool's false default goes without saying; an empty string would otherwise print as nothing at all.
  if (spec.default === undefined || spec.default === false) return '';
  return ` (default: ${spec.default === '' ? '""' : String(spec.default)})`;
}

function convert(spec: FlagSpec, text: string | undefined): FlagValue {
  const wrong = (): UsageError => new UsageError(`--${spec.name} expects ${EXPECTS[spec.type]}, got '${text}'`);
  switch (spec.type) {
    case 'bool':
      // absl (XLNet's scripts) writes --bi_data=False.
      if (text === undefined || text.toLowerCase() === 'true') return true;
      if (text.toLowerCase() === 'false') return false;
      throw wrong();
    case 'int':
      if (text !== undefined && INT.test(text) && Number.isSafeInteger(Number(text))) return Number(text);
      throw wrong();
    case 'float':
      if (text !== undefined && FLOAT.test(text) && Number.isFinite(Number(text))) return Number(text);
      throw wrong();
    case 'string':
      return text ?? '';
  }
}

function withDefaults(flags: Record<string, FlagValue>, specs: readonly FlagSpec[]): Record<string, FlagValue> {
  for (const s of specs) {
    if (Object.hasOwn(flags, s.name)) continue;
    const value = s.default ?? (s.type === 'bool' ? false : undefined);
    if (value !== undefined) flags[s.name] = value;
  }
  return flags;
}

function unknownFlag(command: string, typed: string, name: string, specs: readonly FlagSpec[]): UsageError {
  // Allow about one edit per three characters: catches 'batchsize' and 'tempreature' without suggesting --lr for --x.
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(name.length / 3)) + 1;
  for (const candidate of [...specs.flatMap((s) => [s.name, ...(s.aliases ?? [])]), 'help']) {
    const d = editDistance(name, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  const hint = best === undefined ? ` (webgpu-lm ${command} --help lists them)` : `; did you mean --${best}?`;
  return new UsageError(`unknown flag ${typed} for ${command}${hint}`);
}

/**
 * Edit distance where inserting, deleting or substituting a character, or swapping two neighbours, each cost 1
 * (optimal string alignment): swaps are the commonest typo, and plain Levenshtein would charge 2 for --hepl.
 */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i]!;
      row[j] = Math.min(d[i - 1]![j]! + 1, row[j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** Catches mistakes in a command's own spec table early, where they are bugs rather than user errors. */
function checkSpecs(specs: readonly FlagSpec[]): void {
  const seen = new Set<string>();
  for (const s of specs) {
    // An underscore or capital in a spec name could never match, because user input is folded to kebab-case.
    for (const name of [s.name, ...(s.aliases ?? [])]) {
      if (!KEBAB.test(name) || name === 'help' || seen.has(name)) throw new Error(`bad flag spec name '${name}'`);
      seen.add(name);
    }
    const d = s.default;
    const fits =
      d === undefined ||
      (s.type === 'bool' && typeof d === 'boolean') ||
      (s.type === 'string' && typeof d === 'string') ||
      (s.type === 'float' && typeof d === 'number') ||
      (s.type === 'int' && Number.isInteger(d));
    if (!fits) throw new Error(`flag spec --${s.name}: default ${String(d)} is not a ${s.type}`);
  }
}
