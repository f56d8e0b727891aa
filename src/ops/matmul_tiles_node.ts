// Node's matmul tile cache: a JSON file under the user's cache folder; importing this module (src/index.ts and the CLI do) makes it the store.
//
// The file is $WEBGPU_LM_CACHE_DIR/matmul-tiles.json when that variable is set (tests point it at a temporary
// folder), else $XDG_CACHE_HOME/webgpu-lm/matmul-tiles.json, else ~/.cache/webgpu-lm/matmul-tiles.json. The
// variables are read at each use. The format and how an entry is chosen: ops/matmul_tiles.ts.

import { mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { atomicWriteFile } from '../io/fs.js';
import { setTileStore, type TileStore } from './matmul_tiles.js';

/** The cache file for this process's environment. */
export function tileCacheFile(): string {
  const env = process.env;
  // The XDG spec has relative paths in XDG_CACHE_HOME ignored.
  const xdg = env.XDG_CACHE_HOME && isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(env.WEBGPU_LM_CACHE_DIR || join(xdg, 'webgpu-lm'), 'matmul-tiles.json');
}

const fileStore: TileStore = {
  where: tileCacheFile,
  read() {
    try {
      return readFileSync(tileCacheFile(), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  },
  async write(text) {
    const file = tileCacheFile();
    mkdirSync(dirname(file), { recursive: true });
    // A temporary file renamed over the old one: a crash or a concurrent reader never sees half a document.
    await atomicWriteFile(file, text);
  },
};

setTileStore(fileStore);
