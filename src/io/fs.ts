// Node-only file helpers for weights, checkpoints and bundled data; the one file in src/io that imports node:*.

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The package root: the nearest folder above this file that holds package.json. The same code runs from
 * the TS sources (src/io/fs.ts under vitest) and from the build (dist/src/io/fs.js), and bundled data
 * (tokenizers/data, datasets/data) is found from here in both cases.
 */
export function packageRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (let dir = here; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`webgpu-lm: cannot find the package root (a folder with package.json) above ${here}`);
  }
}

/** Reads a whole file as a plain Uint8Array (not a Buffer, whose slice() is a view where Uint8Array's copies). */
export async function readBytes(path: string): Promise<Uint8Array> {
  const buf = await readFile(path);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Replaces `path` all at once: a reader (or a crash) sees the old file or the new one, never half of one.
 * The data goes to a temporary file in the same directory (rename is only atomic within one file system),
 * is fsynced so its bytes are on disk before the rename makes them visible, then renamed over the target.
 * On any failure the temporary file is removed and the target is untouched.
 */
export async function atomicWriteFile(path: string, data: Uint8Array | string): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(tmp, 'wx');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await syncDirectory(dir);
}

/**
 * Makes the rename itself durable: on POSIX the new directory entry survives a power cut only once the
 * directory is fsynced. Windows cannot open a directory for this and needs no such step, so failures are ignored.
 */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Not possible on this platform (Windows); the rename is as durable as it gets there.
  }
}
