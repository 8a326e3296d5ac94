/**
 * Reading manifests for offline use (`export -f`): YAML or JSON files, directories of them, or stdin
 * (the parsing and validation is src/api/manifests.ts, shared with lvs-agent --config).
 */
import fs from 'node:fs';
import path from 'node:path';
import { addManifests, emptyManifests, type Manifests } from '../api/manifests.ts';

export type { ManifestProblem, Manifests } from '../api/manifests.ts';

/** Reads files, directories (their *.yaml, *.yml and *.json, sorted; not recursive) and `-` (stdin text). */
export function loadManifests(paths: readonly string[], stdin: () => string = () => fs.readFileSync(0, 'utf8')): Manifests {
  const out = emptyManifests();
  for (const p of paths) {
    if (p === '-') {
      addManifests(out, '<stdin>', stdin());
      continue;
    }
    let stat: fs.Stats;
    try {
      stat = fs.statSync(p);
    } catch (e) {
      throw new Error(`${p}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
    }
    if (stat.isDirectory()) {
      for (const f of fs.readdirSync(p).filter((f) => /\.(ya?ml|json)$/.test(f)).sort()) {
        addManifests(out, path.join(p, f), fs.readFileSync(path.join(p, f), 'utf8'));
      }
    } else {
      addManifests(out, p, fs.readFileSync(p, 'utf8'));
    }
  }
  return out;
}
