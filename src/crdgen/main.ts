/**
 * `npm run generate`: writes the CRDs generated from src/api to crds/ and to the chart's crds/.
 * `--check` fails (exit 1) instead of writing when the committed files differ from a fresh generation.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateCrds, type CustomResourceDefinition } from './crd.ts';
import { renderYaml } from './render.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CRD_DIRS = [path.join(ROOT, 'crds'), path.join(ROOT, 'charts', 'lvs-operator', 'crds')];

export function renderedCrds(): Map<string, string> {
  const out = new Map<string, string>();
  for (const crd of generateCrds() as CustomResourceDefinition[]) {
    out.set(`${crd.metadata.name}.yaml`, renderYaml(crd));
  }
  return out;
}

function main(): void {
  const check = process.argv.includes('--check');
  const files = renderedCrds();
  let stale = 0;
  for (const dir of CRD_DIRS) {
    fs.mkdirSync(dir, { recursive: true });
    for (const [name, text] of files) {
      const file = path.join(dir, name);
      const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
      if (current === text) continue;
      stale++;
      if (check) console.error(`stale: ${path.relative(ROOT, file)} (run npm run generate)`);
      else fs.writeFileSync(file, text);
    }
    for (const name of fs.readdirSync(dir)) {
      if (name.endsWith('.yaml') && !files.has(name)) {
        stale++;
        if (check) console.error(`orphan: ${path.relative(ROOT, path.join(dir, name))}`);
        else fs.rmSync(path.join(dir, name));
      }
    }
  }
  if (check && stale > 0) process.exit(1);
  if (!check) console.log(`generated ${files.size} CRDs into ${CRD_DIRS.map((d) => path.relative(ROOT, d)).join(', ')}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) main();
