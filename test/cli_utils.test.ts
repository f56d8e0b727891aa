// The CLI's GPU-free helpers: flag parsing and help text, the progress bar, and the loss-curve CSV/SVG.
import { describe, expect, it } from 'vitest';
import { formatHelp, parseArgs, UsageError, type FlagSpec } from '../src/cli/args.js';
import { formatDuration, humanize, Progress } from '../src/cli/progress.js';
import { lossCurveCsv, lossCurveSvg, type CurvePoint } from '../src/train/curve.js';

const SPECS: FlagSpec[] = [
  { name: 'batch-size', type: 'int', default: 8, help: 'batch size' },
  { name: 'epochs', type: 'int', default: 5, help: 'training epochs' },
  { name: 'lr', type: 'float', default: 1.5e-4, help: 'learning rate' },
  { name: 'raw', type: 'bool', help: 'tokenize the raw corpus first' },
  { name: 'output-dir', type: 'string', default: 'model/', help: 'checkpoint directory' },
  { name: 'pretrained-model', type: 'string', default: '', help: 'start from this checkpoint' },
  { name: 'length', type: 'int', default: -1, help: 'tokens to generate' },
  { name: 'prefix', type: 'string', help: 'text to start from' },
];

const parse = (...argv: string[]) => parseArgs('train', argv, SPECS);

function parseError(...argv: string[]): UsageError {
  try {
    parse(...argv);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as UsageError;
  }
  throw new Error(`parsing ${argv.join(' ')} did not throw`);
}

describe('parseArgs', () => {
  it('fills every default; a bool defaults to false; a non-bool without a default stays absent', () => {
    expect(parse()).toEqual({
      flags: { 'batch-size': 8, epochs: 5, lr: 1.5e-4, raw: false, 'output-dir': 'model/', 'pretrained-model': '', length: -1 },
      positional: [],
      help: false,
    });
  });

  it('reads --name value, --name=value and the underscore spellings alike', () => {
    expect(parse('--batch-size', '16').flags['batch-size']).toBe(16);
    expect(parse('--batch-size=16').flags['batch-size']).toBe(16);
    expect(parse('--batch_size', '16').flags['batch-size']).toBe(16);
    expect(parse('--batch_size=16').flags['batch-size']).toBe(16);
    expect(parse('--output_dir', 'out/x=y').flags['output-dir']).toBe('out/x=y');
    expect(parse('--output-dir=a=b').flags['output-dir']).toBe('a=b');
  });

  it('converts ints and floats, including negatives and exponents', () => {
    const { flags } = parse('--lr', '3e-4', '--length', '-1', '--epochs', '+2');
    expect(flags).toMatchObject({ lr: 3e-4, length: -1, epochs: 2 });
    expect(parse('--lr=.5').flags['lr']).toBe(0.5);
  });

  it('takes bools bare or as =true / =false', () => {
    expect(parse('--raw').flags['raw']).toBe(true);
    expect(parse('--raw=true').flags['raw']).toBe(true);
    expect(parse('--raw=false').flags['raw']).toBe(false);
  });

  it('keeps empty string values and collects positional arguments in order', () => {
    const r = parse('a.json', '--pretrained-model', '', 'b.json', '--raw', 'c.json');
    expect(r.flags['pretrained-model']).toBe('');
    expect(r.positional).toEqual(['a.json', 'b.json', 'c.json']);
    expect(parse('--prefix=').flags['prefix']).toBe('');
  });

  it('treats everything after -- as positional, and a lone - or -1 as a value', () => {
    expect(parse('x', '--', '--raw', '-h').positional).toEqual(['x', '--raw', '-h']);
    expect(parse('-', '-1').positional).toEqual(['-', '-1']);
  });

  it('--help and -h ask for help, even next to a mistake', () => {
    expect(parse('--help').help).toBe(true);
    expect(parse('-h').help).toBe(true);
    const r = parse('--batchsize', '3', '--help');
    expect(r.help).toBe(true);
    expect(r.flags['batch-size']).toBe(8);
    expect(parse('--', '-h').help).toBe(false);
  });

  it('names the closest flag when one is unknown', () => {
    expect(parseError('--batchsize', '8').message).toBe('unknown flag --batchsize for train; did you mean --batch-size?');
    expect(parseError('--epoch=3').message).toBe('unknown flag --epoch for train; did you mean --epochs?');
    expect(parseError('--output_dri', 'x').message).toBe('unknown flag --output_dri for train; did you mean --output-dir?');
    expect(parseError('--hepl').message).toBe('unknown flag --hepl for train; did you mean --help?');
    expect(parseError('--fp16').message).toBe('unknown flag --fp16 for train (webgpu-lm train --help lists them)');
    expect(parseError('-b', '8').message).toBe('unknown option -b for train; flags are spelled --name (webgpu-lm train --help lists them)');
  });

  it('rejects a missing value', () => {
    expect(parseError('--epochs').message).toBe('missing value for --epochs (expects an integer)');
    expect(parseError('--lr', '--raw').message).toBe('missing value for --lr (expects a number)');
    expect(parseError('--output-dir').message).toBe('missing value for --output-dir (expects a value)');
  });

  it('rejects values of the wrong type', () => {
    expect(parseError('--epochs', 'five').message).toBe("--epochs expects an integer, got 'five'");
    expect(parseError('--epochs', '2.5').message).toBe("--epochs expects an integer, got '2.5'");
    expect(parseError('--epochs=').message).toBe("--epochs expects an integer, got ''");
    expect(parseError('--lr', '0x10').message).toBe("--lr expects a number, got '0x10'");
    expect(parseError('--lr=Infinity').message).toBe("--lr expects a number, got 'Infinity'");
    expect(parseError('--raw=yes').message).toBe("--raw expects true or false, got 'yes'");
  });

  it('rejects a flag given twice, in either spelling', () => {
    expect(parseError('--epochs', '1', '--epochs', '2').message).toBe('--epochs given twice (1, then 2)');
    expect(parseError('--batch-size', '8', '--batch_size=16').message).toBe('--batch-size given twice (8, then 16)');
    expect(parseError('--raw', '--raw=false').message).toBe('--raw given twice (true, then false)');
  });

  it('reads aliases into the flag they name, refuses both spellings at once, and lists them in the help', () => {
    const specs: FlagSpec[] = [
      { name: 'learning-rate', type: 'float', default: 1e-4, help: 'peak learning rate', aliases: ['lr'] },
      { name: 'bi-data', type: 'bool', default: true, help: 'forward and backward rows' },
    ];
    expect(parseArgs('train', ['--lr', '3e-3'], specs).flags).toEqual({ 'learning-rate': 3e-3, 'bi-data': true });
    expect(parseArgs('train', ['--learning_rate=2'], specs).flags['learning-rate']).toBe(2);
    expect(() => parseArgs('train', ['--lr', '1', '--learning-rate', '2'], specs)).toThrow('--learning-rate given twice (1, then 2)');
    // absl's spelling of a false bool (XLNet's scripts).
    expect(parseArgs('train', ['--bi_data=False'], specs).flags['bi-data']).toBe(false);
    expect(formatHelp('train', 's', specs)).toMatch(/--learning-rate <float>\s+peak learning rate \(default: 0\.0001\); also --lr/);
    expect(() => parseArgs('x', [], [{ name: 'lr', type: 'float', help: '' }, { name: 'learning-rate', type: 'float', help: '', aliases: ['lr'] }])).toThrow(/bad flag spec name 'lr'/);
  });

  it('refuses spec tables that could never match or disagree with their defaults', () => {
    expect(() => parseArgs('x', [], [{ name: 'batch_size', type: 'int', help: '' }])).toThrow(/bad flag spec name 'batch_size'/);
    expect(() => parseArgs('x', [], [{ name: 'help', type: 'bool', help: '' }])).toThrow(/bad flag spec name 'help'/);
    expect(() => parseArgs('x', [], [{ name: 'epochs', type: 'int', default: 1.5, help: '' }])).toThrow(/default 1.5 is not a int/);
  });
});

describe('formatHelp', () => {
  const text = formatHelp('train', 'Train GPT-2 on a train.json corpus.', SPECS);
  const lines = text.split('\n');

  it('starts with usage and summary and mentions the underscore spelling once', () => {
    expect(lines[0]).toBe('usage: webgpu-lm train [options]');
    expect(text).toContain('Train GPT-2 on a train.json corpus.');
    expect(text.match(/underscore/g)).toHaveLength(1);
    expect(text).toContain("GPT2-Chinese's underscore spellings (--batch_size) are accepted too.");
  });

  it('has one aligned line per flag with its type and default', () => {
    const flagLines = lines.filter((l) => /^ {2}-/.test(l));
    expect(flagLines).toHaveLength(SPECS.length + 1);
    expect(text).toMatch(/--batch-size <int> +batch size \(default: 8\)\n/);
    expect(text).toMatch(/--lr <float> +learning rate \(default: 0\.00015\)\n/);
    expect(text).toMatch(/--raw +tokenize the raw corpus first\n/); // no <bool>, no "(default: false)"
    expect(text).toMatch(/--pretrained-model <string> +start from this checkpoint \(default: ""\)\n/);
    expect(text).toMatch(/--prefix <string> +text to start from\n/);
    expect(text).toMatch(/-h, --help +show this help\n/);
    // Every help text starts in the same column: the end of the first run of two or more spaces.
    const helpColumns = new Set(flagLines.map((l) => /^ {2}\S.*? {2,}(?=\S)/.exec(l)![0].length));
    expect(helpColumns.size).toBe(1);
  });
});

/** A stream that records what was written; `isTTY`/`columns` make it look like a terminal. */
function fakeStream(isTTY: boolean, columns?: number) {
  const writes: string[] = [];
  return { writes, isTTY, columns, write: (s: string) => writes.push(s), text: () => writes.join('') };
}

/** A clock the test moves by hand, in milliseconds like performance.now(). */
function fakeClock() {
  let t = 1000;
  return { now: () => t, advance: (seconds: number) => (t += seconds * 1000) };
}

/** What the terminal would show on the current line: drop the escapes, keep what follows the last \r. */
const visible = (s: string): string => s.replace(/\x1b\[K/g, '').split('\r').pop()!;

describe('Progress on a terminal', () => {
  it('redraws one line in place with loss, rate and an ETA from the average rate since the first update', () => {
    const stream = fakeStream(true, 120);
    const clock = fakeClock();
    const p = new Progress(2170, { stream, now: clock.now });
    p.update(1000, { epoch: 2, loss: 3.5 });
    clock.advance(10);
    p.update(1234, { loss: 3.4123, tokensPerSecond: 1234 });
    // 234 steps in 10 s = 23.4 steps/s; 936 left -> 40 s.
    const line = stream.writes[1]!;
    expect(line.startsWith('\r')).toBe(true);
    expect(line.endsWith('\x1b[K')).toBe(true);
    expect(line).not.toContain('\n');
    expect(visible(line)).toMatch(/^epoch 2 ▕█+[▏▎▍▌▋▊▉]? *▏  56% 1234\/2170 {2}loss 3\.412 {2}1\.2k tok\/s {2}ETA 40s$/);
    expect(stream.writes[0]).not.toContain('ETA'); // no rate yet after a single update
  });

  it('fits the line into the terminal, dropping the bar when it is too narrow', () => {
    for (const columns of [100, 60, 40, 20]) {
      const stream = fakeStream(true, columns);
      const clock = fakeClock();
      const p = new Progress(2170, { stream, now: clock.now, label: 'train' });
      p.update(10, { epoch: 1, loss: 9.1, lr: 1.5e-4, tokensPerSecond: 2_500_000 });
      clock.advance(3725);
      p.update(20, { epoch: 1, loss: 8.2 });
      expect(visible(stream.writes[1]!).length).toBeLessThanOrEqual(columns - 1);
    }
    const wide = fakeStream(true, 200);
    const p = new Progress(100, { stream: wide, label: 'train' });
    p.update(50, { lr: 1.5e-4, tokensPerSecond: 2_500_000 });
    expect(visible(wide.text())).toMatch(/^train ▕█{15} {15}▏  50%  50\/100  lr 1\.50e-4  2\.5M tok\/s$/);
  });

  it('uses 100 columns when the width is unknown', () => {
    const stream = fakeStream(true);
    const p = new Progress(10, { stream });
    p.update(3, { loss: 1 });
    expect(visible(stream.text()).length).toBeLessThanOrEqual(99);
    expect(visible(stream.text())).toContain('▕');
  });

  it('log() prints above the bar and redraws it; finish() leaves it with the elapsed time', () => {
    const stream = fakeStream(true, 80);
    const clock = fakeClock();
    const p = new Progress(4, { stream, now: clock.now });
    p.update(1, { loss: 2 });
    const bar = stream.writes[0]!;
    p.log('saved model/epoch1');
    expect(stream.writes[1]).toBe(`\rsaved model/epoch1\x1b[K\n${bar}`);
    clock.advance(75);
    p.update(4);
    p.finish();
    p.finish();
    const last = stream.writes.at(-2)!;
    expect(visible(last)).toMatch(/100% 4\/4 {2}loss 2\.000 {2}done in 1m15s$/);
    expect(stream.writes.at(-1)).toBe('\n');
    expect(stream.text().split('\n')).toHaveLength(3);
    p.log('after');
    expect(stream.writes.at(-1)).toBe('after\n');
  });
});

describe('Progress off a terminal', () => {
  it('prints plain lines with the same information', () => {
    const stream = fakeStream(false);
    const clock = fakeClock();
    const p = new Progress(2170, { stream, now: clock.now });
    p.update(1000, { epoch: 2, loss: 3.5 });
    clock.advance(10);
    p.update(1234, { loss: 3.4123, tokensPerSecond: 1234 });
    p.log('a note');
    clock.advance(252);
    p.finish();
    expect(stream.text()).toBe(
      'step 1000/2170 (46%) epoch 2 loss 3.500\n' +
        'step 1234/2170 (56%) epoch 2 loss 3.412 1.2k tok/s ETA 40s\n' +
        'a note\n' +
        'step 1234/2170 (56%) epoch 2 loss 3.412 1.2k tok/s done in 4m22s\n',
    );
    expect(stream.text()).not.toContain('\r');
    expect(stream.text()).not.toContain('\x1b');
  });

  it('prints every plainEvery-th update only', () => {
    const stream = fakeStream(false);
    const p = new Progress(10, { stream, plainEvery: 3, label: 'eval' });
    for (let i = 1; i <= 7; i++) p.update(i);
    expect(stream.writes.map((s) => s.split(' ').slice(0, 2).join(' '))).toEqual(['eval step', 'eval step']);
    expect(stream.writes.map((s) => s.match(/\d+\/10/)![0])).toEqual(['3/10', '6/10']);
  });
});

describe('number formatting', () => {
  it('humanizes rates', () => {
    expect([0, 0.5, 12.34, 987, 1234, 12_345, 999_960, 2_500_000, 3e9].map(humanize)).toEqual([
      '0', '0.5', '12.3', '987', '1.2k', '12.3k', '1.0M', '2.5M', '3.0G',
    ]);
  });

  it('formats durations with two units', () => {
    expect([0, 12, 59.6, 252, 3599.6, 3725, 100 * 3600].map(formatDuration)).toEqual([
      '0s', '12s', '1m00s', '4m12s', '1h00m', '1h02m', '100h00m',
    ]);
  });
});

describe('lossCurveCsv', () => {
  it('writes a header and one full-precision row per point with empty cells for absent fields', () => {
    const points: CurvePoint[] = [
      { step: 1, loss: 9.876543210123, tokens: 4096, lr: 1.5e-4, epoch: 1 },
      { step: 2, loss: 0.1 + 0.2 },
      { step: 3, loss: NaN, lr: 0 },
    ];
    expect(lossCurveCsv(points)).toBe('step,loss,tokens,lr,epoch\n1,9.876543210123,4096,0.00015,1\n2,0.30000000000000004,,,\n3,NaN,,0,\n');
    expect(lossCurveCsv([])).toBe('step,loss,tokens,lr,epoch\n');
  });
});

/** A tiny XML well-formedness check: balanced tags, quoted attributes, no stray '<' or '&' in text. */
function checkWellFormed(xml: string): void {
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  let last = 0;
  let roots = 0;
  for (const m of body.matchAll(/<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g)) {
    const text = body.slice(last, m.index);
    expect(text, 'text between tags').not.toMatch(/[<>]|&(?!(?:amp|lt|gt|quot|apos);)/);
    last = m.index + m[0].length;
    const [, closing, name, , selfClosing] = m;
    if (stack.length === 0) roots++;
    if (closing) expect(stack.pop()).toBe(name);
    else if (!selfClosing) stack.push(name!);
  }
  expect(body.slice(last).trim()).toBe('');
  expect(stack).toEqual([]);
  expect(roots).toBe(1);
}

function polylinePointCounts(svg: string): number[] {
  return [...svg.matchAll(/<polyline points="([^"]*)"/g)].map((m) => m[1]!.trim().split(/\s+/).length);
}

describe('lossCurveSvg', () => {
  const points: CurvePoint[] = Array.from({ length: 50 }, (_, i) => ({ step: (i + 1) * 10, loss: 8 * Math.exp(-i / 10) + 2 + 0.3 * Math.sin(i) }));

  it('is a well-formed standalone SVG with both lines over every point', () => {
    const svg = lossCurveSvg(points);
    checkWellFormed(svg);
    expect(svg).toMatch(/<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="800" height="400"/);
    expect(polylinePointCounts(svg)).toEqual([50, 50]);
    expect(svg).toContain('>optimizer step</text>');
    expect(svg).toContain('>loss</text>');
    expect(svg).toContain('>training loss</text>');
    // Round tick labels on both axes: steps 0..500, losses 2..10 or so.
    expect(svg).toContain('>500</text>');
    expect(svg).toMatch(/>10<\/text>/);
    for (const m of svg.matchAll(/<polyline points="([^"]*)"/g)) {
      for (const pair of m[1]!.split(' ')) {
        const [x, y] = pair.split(',').map(Number);
        expect(x).toBeGreaterThanOrEqual(64);
        expect(x).toBeLessThanOrEqual(800 - 24);
        expect(y).toBeGreaterThanOrEqual(48);
        expect(y).toBeLessThanOrEqual(400 - 56);
      }
    }
  });

  it('escapes the title', () => {
    const svg = lossCurveSvg(points, { title: 'GPT-2 <small> & "tiny" \'zh\'' });
    checkWellFormed(svg);
    expect(svg).toContain('GPT-2 &lt;small&gt; &amp; &quot;tiny&quot; &apos;zh&apos;');
    expect(svg).not.toContain('<small>');
  });

  it('says "no data yet" for no points', () => {
    const svg = lossCurveSvg([]);
    checkWellFormed(svg);
    expect(svg).toContain('no data yet');
    expect(polylinePointCounts(svg)).toEqual([]);
  });

  it('draws a single point as a dot', () => {
    const svg = lossCurveSvg([{ step: 0, loss: 10.4 }]);
    checkWellFormed(svg);
    expect(polylinePointCounts(svg)).toEqual([1, 1]);
    expect(svg).toContain('<circle');
    expect(svg).not.toContain('NaN');
  });

  it('skips NaN and Infinity losses and says how many', () => {
    const svg = lossCurveSvg([...points.slice(0, 10), { step: 110, loss: NaN }, { step: 120, loss: Infinity }, { step: 130, loss: 2.5 }]);
    checkWellFormed(svg);
    expect(polylinePointCounts(svg)).toEqual([11, 11]);
    expect(svg).toContain('2 points with NaN/Infinity loss skipped');
    expect(svg).not.toMatch(/NaN,|,NaN|Infinity,/);
    const none = lossCurveSvg([{ step: 1, loss: NaN }]);
    checkWellFormed(none);
    expect(none).toContain('no data yet');
    expect(none).toContain('1 point with NaN/Infinity loss skipped');
  });
});
