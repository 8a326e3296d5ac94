// VM lab harness: boots a Debian kernel that has IPVS under QEMU (TCG, no network) with the host's root
// filesystem shared read-only over 9p, and runs one command inside it.
//
// Layout of the VM (see initScript() below):
//   /            overlayfs: lower = host `/` over 9p (read-only, never written), upper = tmpfs. Everything is
//                writable inside the VM; nothing written there reaches the host.
//   /tmp /run /var/lib/lvs-operator /dev/shm   fresh tmpfs
//   /lib/modules/<kver>   bind mount of the cached, extracted kernel package (plain `modprobe` works, and the
//                kernel's module autoload goes through the same tree)
//   shares        extra 9p shares (RunInVmOptions.shares / outDir), read-write unless asked otherwise
// Exit status comes back through a per-run control directory shared read-write (file `exit-code`), with a
// console marker line as a fallback.
//
// Host requirements (Debian): qemu-system-x86 busybox-static kmod (depmod, modprobe) dpkg (dpkg-deb) apt
// (apt-get download), plus ipvsadm iproute2 for the kernel suites (the guest runs the host's binaries).
// Cache (${LVS_CACHE_DIR:-$HOME/.cache/lvs-operator}/vm/):
//   <kernel-version>/             extracted linux-image-<kver>-unsigned (+ depmod output, .ready marker)
//   <kernel-version>/initramfs-<hash>.cpio.gz
//   runs/<pid>-<rand>/            per-run control share (removed after the run)
//   jest-cache/                   see run-kernel-suites.ts
// The repo, the cache and Node must not live under /tmp, /run, /var/lib/lvs-operator (tmpfs in the guest).
// Environment knobs: LVS_VM_KERNEL=<kver> pins the kernel; LVS_VM_CPU=<qemu -cpu model> (default max).
// KVM is never used (-accel tcg): /dev/kvm exists on the build machines but hangs.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { gzipSync } from 'node:zlib';

/** Modules loaded from the initramfs (with their dependencies) before the host root can be mounted. */
const STAGE1_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay'];
/** Modules preloaded once the root is mounted (the kernel autoloads anything else on demand). */
export const PRELOAD_MODULES = [
  'nf_conntrack', 'ip_vs',
  ...['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh'].map((s) => `ip_vs_${s}`),
  'ipip', 'veth', 'bridge', 'dummy', 'tun',
];
/** Paths that are fresh tmpfs inside the VM: host files below them are invisible to the guest. */
const GUEST_TMPFS = ['/tmp', '/run', '/var/lib/lvs-operator', '/dev', '/proc', '/sys'];
const DEFAULT_KERNEL_SERIES = '6.1.0';
const EXIT_MARKER = 'LVS-VM-EXIT=';
const START_MARKER = 'LVS-VM-START';

export interface KernelInfo {
  /** e.g. "6.1.0-56-amd64" (= `uname -r` in the VM). */
  version: string;
  /** Extraction root of the kernel package (holds boot/ and lib/modules/<version>/). */
  dir: string;
  vmlinuz: string;
  modulesDir: string;
}

export interface VmShare {
  /** Host directory (created if missing). */
  hostPath: string;
  /** Absolute mount point inside the VM (created if missing). */
  guestPath: string;
  readOnly?: boolean;
}

/**
 * A TCP port on the host's loopback that guest processes may reach: QEMU's user-mode network with
 * `restrict=on` (no route out of the VM) and one `guestfwd` per entry, so guest connections to
 * GUEST_FORWARD_ADDRESS:guestPort are relayed to 127.0.0.1:hostPort on the host. Nothing else leaves the VM.
 */
export interface HostForward {
  guestPort: number;
  hostPort: number;
}

/** Guest side of HostForward: the address guest processes connect to (slirp's virtual network). */
export const GUEST_FORWARD_ADDRESS = '10.0.2.100';
/** The VM's own address on that network (interface `hostfwd0` in the root netns). */
export const GUEST_FORWARD_LOCAL = '10.0.2.15/24';

export interface RunInVmOptions {
  /** argv of the command; argv[0] is looked up in the guest PATH. */
  command: string[];
  /** Extra environment. The guest starts from a clean environment: PATH (this Node first), HOME=/root,
   *  LANG, TERM=dumb, CI=true, LVS_VM=1, NODE_OPTIONS (guest-node.mjs preloaded), LVS_VM_OUT (when outDir is
   *  given), then these; a NODE_OPTIONS given here is appended to the guest's. */
  env?: Record<string, string>;
  /** Working directory inside the VM (default: process.cwd(); host paths are visible read-only). */
  cwd?: string;
  /** Hard limit for the whole run, boot included. QEMU is killed when it expires (VmTimeoutError). */
  timeoutMs: number;
  memoryMiB?: number;
  cpus?: number;
  /** Host directory shared read-write; its guest mount point is passed as $LVS_VM_OUT (default /run/lvs-vm/out). */
  outDir?: string;
  outGuestPath?: string;
  /** More 9p shares (read-write unless readOnly). */
  shares?: VmShare[];
  /** Host loopback ports reachable from the guest (see HostForward). Default none: the VM has no NIC at all. */
  hostForwards?: HostForward[];
  /** Called with every chunk of console output (marker lines removed). */
  onOutput?: (text: string) => void;
  /** Echo console output to process.stdout as it arrives. */
  stream?: boolean;
  /** Drop `quiet` from the kernel command line (boot log on the console). */
  verboseKernel?: boolean;
  log?: (msg: string) => void;
}

export interface RunInVmResult {
  exitCode: number;
  /** Output of the command (what it wrote to stdout/stderr, CRs removed). */
  output: string;
  /** Whole console log, kernel messages included. */
  console: string;
  /** Wall time of the whole run (QEMU start to exit). */
  durationMs: number;
  /** QEMU start until the command was started inside the VM. */
  bootMs: number;
  /** Guest clock seconds per host second while the command ran (should be ~1; NaN if unknown). */
  guestClockRatio: number;
  /** Kernel messages of level warning or worse logged while the command ran ("[uptime] text"). */
  kernelWarnings: string[];
  /** The whole kernel log (dmesg -r format: "<level>[uptime] text"). */
  kernelLog: string;
}

export class VmTimeoutError extends Error {
  readonly console: string;
  constructor(message: string, consoleLog: string) {
    super(message);
    this.name = 'VmTimeoutError';
    this.console = consoleLog;
  }
}

export function cacheRoot(): string {
  return process.env.LVS_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'lvs-operator');
}

export function vmCacheDir(): string {
  return path.join(cacheRoot(), 'vm');
}

const noop = (): void => {};

function which(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin'])) {
    if (!dir) continue;
    const p = path.join(dir, bin);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

function requireTool(bin: string, pkg: string): string {
  const p = which(bin);
  if (!p) throw new Error(`VM lab: '${bin}' not found on this host: install ${pkg} (apt-get install -y ${pkg})`);
  return p;
}

function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`VM lab: cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`VM lab: ${cmd} ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr || r.stdout).trim()}`);
  }
  return r.stdout;
}

function isUnder(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/** Host paths the guest must read (repo, cache, Node) may not live where the guest mounts tmpfs. */
function assertGuestVisible(p: string, what: string): void {
  const real = fs.realpathSync(p);
  for (const t of GUEST_TMPFS) {
    if (isUnder(real, t)) {
      throw new Error(`VM lab: ${what} (${real}) is under ${t}, which is a tmpfs inside the VM; move it elsewhere`
        + ' (e.g. set LVS_CACHE_DIR)');
    }
  }
}

function compareDebVersions(a: string, b: string): number {
  const r = spawnSync('dpkg', ['--compare-versions', a, 'lt', b]);
  return r.status === 0 ? -1 : a === b ? 0 : 1;
}

function newestCachedKernel(): string | undefined {
  let names: string[] = [];
  try {
    names = fs.readdirSync(vmCacheDir()).filter((n) => fs.existsSync(path.join(vmCacheDir(), n, '.ready')));
  } catch {
    return undefined;
  }
  return names.sort(compareDebVersions).at(-1);
}

/** Picks the newest linux-image-<series>-N-amd64-unsigned known to apt (local metadata only). */
function newestAptKernel(series: string): string | undefined {
  const r = spawnSync('apt-cache', ['search', '--names-only', `^linux-image-${series.replaceAll('.', '\\.')}-[0-9]+-amd64-unsigned$`],
    { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const versions = r.stdout.split('\n')
    .map((l) => /^linux-image-(\S+-amd64)-unsigned\s/.exec(l)?.[1])
    .filter((v): v is string => v !== undefined);
  return versions.sort(compareDebVersions).at(-1);
}

/**
 * Makes sure a kernel with IPVS is extracted in the cache and returns where.
 * Version: $LVS_VM_KERNEL (e.g. 6.1.0-56-amd64) if set, else the newest linux-image-6.1.0-*-amd64-unsigned that
 * apt knows about, else the newest already cached. A cached version is never downloaded again.
 */
export function ensureKernel(log: (msg: string) => void = noop): KernelInfo {
  const wanted = process.env.LVS_VM_KERNEL ?? newestAptKernel(DEFAULT_KERNEL_SERIES) ?? newestCachedKernel();
  if (!wanted) {
    throw new Error(`VM lab: no linux-image-${DEFAULT_KERNEL_SERIES}-*-amd64-unsigned known to apt and none cached;`
      + ' run apt-get update (Debian 12 bookworm main/security) or set LVS_VM_KERNEL');
  }
  const dir = path.join(vmCacheDir(), wanted);
  const info: KernelInfo = {
    version: wanted,
    dir,
    vmlinuz: path.join(dir, 'boot', `vmlinuz-${wanted}`),
    modulesDir: path.join(dir, 'lib', 'modules', wanted),
  };
  if (fs.existsSync(path.join(dir, '.ready'))) return info;

  requireTool('apt-get', 'apt');
  requireTool('dpkg-deb', 'dpkg');
  const depmod = requireTool('depmod', 'kmod');
  fs.mkdirSync(vmCacheDir(), { recursive: true });
  assertGuestVisible(vmCacheDir(), 'the VM cache directory');
  const work = fs.mkdtempSync(path.join(vmCacheDir(), `.download-${wanted}-`));
  try {
    const pkg = `linux-image-${wanted}-unsigned`;
    log(`downloading ${pkg} with apt-get`);
    const t0 = Date.now();
    // Sandbox user root: the download directory is not accessible to _apt.
    sh('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', pkg], { cwd: work });
    const deb = fs.readdirSync(work).find((n) => n.endsWith('.deb'));
    if (!deb) throw new Error(`VM lab: apt-get download ${pkg} produced no .deb`);
    const tree = path.join(work, 'tree');
    log(`extracting ${deb}`);
    sh('dpkg-deb', ['-x', path.join(work, deb), tree]);
    sh(depmod, ['-b', tree, wanted]);
    if (!fs.existsSync(path.join(tree, 'boot', `vmlinuz-${wanted}`))) throw new Error(`VM lab: ${deb} has no vmlinuz`);
    fs.writeFileSync(path.join(tree, '.ready'), `${deb}\n`);
    try {
      fs.renameSync(tree, dir);
    } catch (e) {
      // Another process won the race (or a stale partial dir exists).
      if (!fs.existsSync(path.join(dir, '.ready'))) {
        fs.rmSync(dir, { recursive: true, force: true });
        fs.renameSync(tree, dir);
      } else if ((e as NodeJS.ErrnoException).code !== 'ENOTEMPTY' && (e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw e;
      }
    }
    log(`kernel ${wanted} cached in ${dir} (${Date.now() - t0} ms)`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return info;
}

/** Module files of `names` and all their dependencies, in load order (dependencies first). */
export function moduleLoadOrder(kernel: KernelInfo, names: string[]): string[] {
  const dep = new Map<string, string[]>();
  const byName = new Map<string, string>();
  for (const line of fs.readFileSync(path.join(kernel.modulesDir, 'modules.dep'), 'utf8').split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (!m?.[1]) continue;
    const file = m[1];
    dep.set(file, (m[2] ?? '').split(/\s+/).filter(Boolean));
    byName.set(path.basename(file).replace(/\.ko(\.\w+)?$/, '').replaceAll('-', '_'), file);
  }
  const order: string[] = [];
  const visit = (file: string): void => {
    if (order.includes(file)) return;
    for (const d of dep.get(file) ?? []) visit(d);
    order.push(file);
  };
  for (const n of names) {
    const file = byName.get(n.replaceAll('-', '_'));
    if (!file) throw new Error(`VM lab: module ${n} not found in ${kernel.modulesDir} (built in? then drop it)`);
    visit(file);
  }
  return order;
}

function initScript(kernel: KernelInfo): string {
  // Runs as PID 1 under busybox sh. The per-run control share (tag lvsctl) holds `mounts` (extra shares:
  // "<tag> <ro|rw> <guest path>" per line) and `run.sh` (the command, executed chrooted in the new root).
  return `#!/bin/busybox sh
# generated by test/vm/lab.ts
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin
die() {
  echo "lvs-vm init: $*"
  echo "${EXIT_MARKER}125"
  echo 125 > /ctl/exit-code 2>/dev/null
  poweroff -f
  echo o > /proc/sysrq-trigger
  sleep 60
}
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in /modules/*.ko; do insmod "$m" || die "insmod $m failed"; done
P9=trans=virtio,version=9p2000.L,msize=512000
mkdir -p /lower /upper /ctl
mount -t 9p -o "$P9,cache=none" lvsctl /ctl || die "cannot mount the control share"
# Guest-side watchdog: powers off even if the host harness died and cannot kill QEMU any more.
if [ -f /ctl/deadline ]; then
  (sleep "$(cat /ctl/deadline)"; echo "lvs-vm init: watchdog expired"; poweroff -f) &
fi
# cache=loose: the host tree is read-only and must not change during a run; it makes repeated reads (node,
# node_modules) page-cache hits. (cache=mmap/none measured 2-4x slower for jest start-up.)
mount -t 9p -o "$P9,ro,cache=loose" hostroot /lower || die "cannot mount the host root over 9p"
mount -t tmpfs -o mode=0755 upper /upper
mkdir -p /upper/data /upper/work /newroot
mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay /newroot || die "overlay mount failed"
R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
mount -t tmpfs -o mode=1777 tmpfs $R/tmp
mount -t tmpfs -o mode=0755 tmpfs $R/run
mkdir -p $R/var/lib/lvs-operator && mount -t tmpfs -o mode=0755 tmpfs $R/var/lib/lvs-operator
mkdir -p $R/run/lvs-vm/ctl && mount --bind /ctl $R/run/lvs-vm/ctl
KVER=${kernel.version}
mkdir -p $R/lib/modules/$KVER && mount --bind "/lower${kernel.modulesDir}" $R/lib/modules/$KVER || die "cannot bind the module tree"
# Kernel module autoload (request_module) runs in the initramfs root: hand it to the guest's modprobe.
printf '#!/bin/sh\\nexec /bin/chroot /newroot /sbin/modprobe "$@"\\n' > /bin/lvs-modprobe
chmod 755 /bin/lvs-modprobe
echo /bin/lvs-modprobe > /proc/sys/kernel/modprobe
chroot $R /sbin/modprobe -a ${PRELOAD_MODULES.join(' ')} || die "modprobe of the IPVS modules failed"
chroot $R /sbin/ip link set lo up
hostname lvs-vm
# Optional: the user-mode NIC that only carries guestfwd connections to host loopback ports (restrict=on).
if [ -f /ctl/hostfwd ]; then
  chroot $R /sbin/modprobe virtio_net || die "modprobe virtio_net failed"
  nic=""
  for d in /sys/class/net/*; do
    n=\${d##*/}
    [ "$n" = lo ] || { nic=$n; break; }
  done
  [ -n "$nic" ] || die "no NIC for the host forwards"
  chroot $R /sbin/ip link set "$nic" name hostfwd0 || die "cannot rename $nic"
  chroot $R /sbin/ip addr add ${GUEST_FORWARD_LOCAL} dev hostfwd0 || die "cannot address hostfwd0"
  chroot $R /sbin/ip link set hostfwd0 up || die "cannot bring hostfwd0 up"
fi
if [ -f /ctl/mounts ]; then
  while read -r tag mode dir; do
    [ -n "$tag" ] || continue
    mkdir -p "$R$dir" && mount -t 9p -o "$P9,$mode,cache=none" "$tag" "$R$dir" || die "cannot mount share $tag on $dir"
  done < /ctl/mounts
fi
# Keep kernel messages off the console while the command runs (they would interleave with its output);
# they are handed to the host in /ctl/dmesg instead. Panics still reach the console.
[ -f /ctl/quiet-console ] && dmesg -n 1
echo "${START_MARKER} $(cut -d' ' -f1 /proc/uptime)"
# stdout/stderr are a pipe, not the console tty: tools behave as in CI (no tty tricks), colours via FORCE_COLOR.
set -o pipefail
chroot $R /bin/sh /run/lvs-vm/ctl/run.sh < /dev/null 2>&1 | cat
rc=$?
dmesg -r > /ctl/dmesg
echo $rc > /ctl/exit-code
sync
echo "${EXIT_MARKER}$rc $(cut -d' ' -f1 /proc/uptime)"
poweroff -f
echo o > /proc/sysrq-trigger
sleep 60
`;
}

// --- cpio (newc) writer: no external cpio and no root needed for the device node -----------------------

interface CpioEntry {
  name: string;
  mode: number;
  data?: Buffer;
  rdevMajor?: number;
  rdevMinor?: number;
}

function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const pad4 = (n: number): Buffer => Buffer.alloc((4 - (n % 4)) % 4);
  const hex = (n: number): string => n.toString(16).padStart(8, '0');
  let ino = 1;
  for (const e of [...entries, { name: 'TRAILER!!!', mode: 0 }] as CpioEntry[]) {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(`${e.name}\0`);
    const header = Buffer.from('070701' + [
      e.name === 'TRAILER!!!' ? 0 : ino++, e.mode, 0, 0, (e.mode & 0o170000) === 0o040000 ? 2 : 1, 0,
      data.length, 0, 0, e.rdevMajor ?? 0, e.rdevMinor ?? 0, name.length, 0,
    ].map(hex).join(''));
    parts.push(header, name, pad4(header.length + name.length), data, pad4(data.length));
  }
  return Buffer.concat(parts);
}

/** True if the ELF64 image has a PT_INTERP program header (i.e. it is dynamically linked). */
function hasElfInterpreter(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2) return false;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    if (elf.readUInt32LE(phoff + i * phentsize) === 3) return true;
  }
  return false;
}

/**
 * Builds (or reuses) the initramfs for `kernel`: busybox-static, the stage-1 modules and /init.
 * Cached as vm/<kver>/initramfs-<hash>.cpio.gz; the hash covers every input, so it is rebuilt when any changes.
 */
export function buildInitramfs(kernel: KernelInfo = ensureKernel(), log: (msg: string) => void = noop): string {
  const busyboxPath = fs.realpathSync(requireTool('busybox', 'busybox-static'));
  const busybox = fs.readFileSync(busyboxPath);
  if (hasElfInterpreter(busybox)) {
    throw new Error(`VM lab: ${busyboxPath} is dynamically linked: install busybox-static (not busybox)`);
  }
  const modules = moduleLoadOrder(kernel, STAGE1_MODULES);
  const init = initScript(kernel);
  const hash = createHash('sha256');
  hash.update(init).update(busybox);
  const modData = modules.map((m) => {
    const data = fs.readFileSync(path.join(kernel.modulesDir, m));
    hash.update(m).update(data);
    return { name: path.basename(m), data };
  });
  const digest = hash.digest('hex').slice(0, 16);
  const out = path.join(kernel.dir, `initramfs-${digest}.cpio.gz`);
  if (fs.existsSync(out)) return out;

  const t0 = Date.now();
  const entries: CpioEntry[] = [];
  for (const d of ['bin', 'dev', 'proc', 'sys', 'modules', 'newroot', 'lower', 'upper', 'ctl', 'tmp']) {
    entries.push({ name: d, mode: 0o040755 });
  }
  entries.push({ name: 'dev/console', mode: 0o020600, rdevMajor: 5, rdevMinor: 1 });
  entries.push({ name: 'dev/null', mode: 0o020666, rdevMajor: 1, rdevMinor: 3 });
  entries.push({ name: 'bin/busybox', mode: 0o100755, data: busybox });
  entries.push({ name: 'bin/sh', mode: 0o120777, data: Buffer.from('busybox') });
  entries.push({ name: 'init', mode: 0o100755, data: Buffer.from(init) });
  modData.forEach((m, i) => entries.push({ name: `modules/${String(i).padStart(2, '0')}-${m.name}`, mode: 0o100644, data: m.data }));
  const tmp = `${out}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, gzipSync(cpioNewc(entries), { level: 6 }));
  fs.renameSync(tmp, out);
  // Drop stale images, but only old ones: a concurrent run may be about to boot with a different one.
  for (const n of fs.readdirSync(kernel.dir)) {
    const p = path.join(kernel.dir, n);
    if (/^initramfs-[0-9a-f]{16}\.cpio\.gz$/.test(n) && p !== out && Date.now() - fs.statSync(p).mtimeMs > 86_400_000) {
      fs.rmSync(p, { force: true });
    }
  }
  log(`initramfs built: ${out} (${Date.now() - t0} ms)`);
  return out;
}

/** POSIX-sh single quoting. */
export function shQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/** Every Node process in the guest: WebAssembly without tier-up (why: guest-node.mjs). */
const GUEST_NODE_OPTIONS = `--import=${path.join(import.meta.dirname, 'guest-node.mjs')}`;

function defaultGuestEnv(): Record<string, string> {
  const env: Record<string, string> = {
    PATH: `${path.dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOME: '/root',
    LANG: 'C.UTF-8',
    TERM: 'dumb',
    CI: 'true',
    TMPDIR: '/tmp',
    LVS_VM: '1',
    NODE_OPTIONS: GUEST_NODE_OPTIONS,
  };
  for (const k of ['FORCE_COLOR', 'NO_COLOR', 'LVS_LOG_LEVEL']) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  if (env.FORCE_COLOR === undefined && env.NO_COLOR === undefined && process.stdout.isTTY) env.FORCE_COLOR = '1';
  return env;
}

let qemuChecked = false;

/** Boots the lab VM, runs `command` in it and returns its exit code and output. */
export async function runInVm(opts: RunInVmOptions): Promise<RunInVmResult> {
  const log = opts.log ?? noop;
  if (opts.command.length === 0) throw new Error('runInVm: empty command');
  const qemu = which('qemu-system-x86_64');
  if (!qemu) throw new Error('VM lab: qemu-system-x86_64 not found: install qemu-system-x86 (apt-get install -y qemu-system-x86)');
  if (!qemuChecked) {
    const r = spawnSync(qemu, ['-virtfs', 'help'], { encoding: 'utf8' });
    if (r.error) throw new Error(`VM lab: cannot run ${qemu}: ${r.error.message}`);
    qemuChecked = true;
  }
  const kernel = ensureKernel(log);
  const initrd = buildInitramfs(kernel, log);
  const cwd = path.resolve(opts.cwd ?? process.cwd());
  assertGuestVisible(cwd, 'the working directory');
  assertGuestVisible(process.execPath, 'the Node binary');
  assertGuestVisible(kernel.dir, 'the kernel cache');

  const runsDir = path.join(vmCacheDir(), 'runs');
  fs.mkdirSync(runsDir, { recursive: true });
  for (const n of fs.readdirSync(runsDir)) {
    // Leftovers of harness processes that were killed hard (a live run refreshes nothing, so use a wide margin).
    const p = path.join(runsDir, n);
    if (Date.now() - fs.statSync(p).mtimeMs > 2 * 86_400_000) fs.rmSync(p, { recursive: true, force: true });
  }
  const ctl = fs.mkdtempSync(path.join(runsDir, `${process.pid}-`));
  const cleanupCtl = (): void => fs.rmSync(ctl, { recursive: true, force: true });
  process.once('exit', cleanupCtl);

  const shares: VmShare[] = [...(opts.shares ?? [])];
  const env = { ...defaultGuestEnv() };
  if (opts.outDir) {
    const guest = opts.outGuestPath ?? '/run/lvs-vm/out';
    shares.push({ hostPath: opts.outDir, guestPath: guest });
    env.LVS_VM_OUT = guest;
  }
  Object.assign(env, opts.env ?? {});
  if (opts.env?.NODE_OPTIONS !== undefined) env.NODE_OPTIONS = `${GUEST_NODE_OPTIONS} ${opts.env.NODE_OPTIONS}`;

  const qemuArgs = [
    '-nodefaults', '-no-user-config', '-no-reboot',
    '-machine', 'q35', '-accel', 'tcg,thread=multi', '-cpu', process.env.LVS_VM_CPU ?? 'max',
    '-smp', String(opts.cpus ?? 2), '-m', String(opts.memoryMiB ?? 4096),
    '-nic', 'none', '-display', 'none', '-monitor', 'none', '-serial', 'stdio',
    '-kernel', kernel.vmlinuz, '-initrd', initrd,
    '-append', ['console=ttyS0', opts.verboseKernel ? '' : 'quiet', 'panic=-1', 'rdinit=/init', 'random.trust_cpu=on',
      // No tsc=reliable: under TCG on a loaded host the TSC calibration can be far off (seen: guest uptime
      // 79 s after 32 s of wall time); the kernel then falls back to HPET, which keeps guest time right (clock
      // reads cost about the same under TCG). RunInVmResult.guestClockRatio reports the measured rate.
      'mitigations=off'].filter(Boolean).join(' '),
    '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap,id=hostroot',
    '-virtfs', `local,path=${ctl},mount_tag=lvsctl,security_model=none,multidevs=remap,id=lvsctl`,
  ];
  const mounts: string[] = [];
  shares.forEach((s, i) => {
    if (!path.isAbsolute(s.guestPath) || /[\s,]/.test(s.guestPath) || /,/.test(s.hostPath)) {
      throw new Error(`runInVm: bad share ${s.hostPath} -> ${s.guestPath} (absolute paths without spaces or commas)`);
    }
    fs.mkdirSync(s.hostPath, { recursive: true });
    const tag = `share${i}`;
    qemuArgs.push('-virtfs', `local,path=${fs.realpathSync(s.hostPath)},mount_tag=${tag},security_model=none,`
      + `multidevs=remap,id=${tag}${s.readOnly ? ',readonly=on' : ''}`);
    mounts.push(`${tag} ${s.readOnly ? 'ro' : 'rw'} ${s.guestPath}`);
  });
  if (opts.hostForwards?.length) {
    const busybox = which('busybox');
    if (!busybox || /[\s,]/.test(busybox)) throw new Error('VM lab: host forwards need busybox (apt-get install -y busybox-static)');
    const fwd = opts.hostForwards.map((f) => {
      for (const p of [f.guestPort, f.hostPort]) {
        if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`runInVm: bad forwarded port ${p}`);
      }
      // cmd: QEMU spawns the command for EACH guest connection (a chardev target would carry one connection
      // only, opened at start-up); busybox-static's nc relays it to the host's loopback port.
      return `guestfwd=tcp:${GUEST_FORWARD_ADDRESS}:${f.guestPort}-cmd:${busybox} nc 127.0.0.1 ${f.hostPort}`;
    });
    // restrict=on: the guest cannot reach the host or anything beyond it; only the guestfwd rules connect.
    qemuArgs.push('-netdev', ['user', 'id=hostfwd', 'restrict=on', 'ipv6=off', 'net=10.0.2.0/24', ...fwd].join(','),
      '-device', 'virtio-net-pci,netdev=hostfwd');
    fs.writeFileSync(path.join(ctl, 'hostfwd'), '');
  }
  if (!opts.verboseKernel) fs.writeFileSync(path.join(ctl, 'quiet-console'), '');
  fs.writeFileSync(path.join(ctl, 'deadline'), `${Math.ceil(opts.timeoutMs / 1000) + 30}\n`);
  fs.writeFileSync(path.join(ctl, 'mounts'), mounts.map((m) => `${m}\n`).join(''));
  for (const k of Object.keys(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`runInVm: bad environment variable name ${k}`);
  }
  fs.writeFileSync(path.join(ctl, 'run.sh'), [
    '# generated by test/vm/lab.ts',
    `cd ${shQuote(cwd)} || exit 126`,
    `exec /usr/bin/env -i ${Object.entries(env).map(([k, v]) => shQuote(`${k}=${v}`)).join(' ')} \\`,
    `  ${opts.command.map(shQuote).join(' ')}`,
    '',
  ].join('\n'));

  const t0 = Date.now();
  let bootMs = -1;
  let consoleLog = '';
  let commandOut = '';
  let pending = '';
  let started = false;
  let markerExit: number | undefined;
  let clockStart: [number, number] | undefined;
  let clockEnd: [number, number] | undefined;
  const decoder = new StringDecoder('utf8');
  const emit = (text: string): void => {
    if (!text) return;
    if (started) commandOut += text;
    // After the exit marker only the kernel's power-off message follows: keep it in the console log only.
    else if (markerExit !== undefined && !opts.verboseKernel) return;
    opts.onOutput?.(text);
    if (opts.stream) process.stdout.write(text);
  };
  // Line-buffered filter: hides the marker lines, forwards everything else as soon as a line is complete.
  const onData = (buf: Buffer): void => {
    const text = decoder.write(buf).replaceAll('\r', '');
    consoleLog += text;
    pending += text;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl + 1);
      pending = pending.slice(nl + 1);
      const trimmed = line.trimEnd();
      const s = new RegExp(`^${START_MARKER} ([0-9.]+)$`).exec(trimmed);
      if (s?.[1]) {
        started = true;
        bootMs = Date.now() - t0;
        clockStart = [Date.now(), Number(s[1])];
        continue;
      }
      // Also matches when the command's last output line had no newline ("partial<marker>").
      const m = new RegExp(`^(.*)${EXIT_MARKER}(\\d+) ([0-9.]+)$`).exec(trimmed);
      if (m?.[2] && m[3]) {
        if (m[1]) emit(`${m[1]}\n`);
        markerExit = Number(m[2]);
        clockEnd = [Date.now(), Number(m[3])];
        started = false;
        continue;
      }
      emit(line);
    }
    // Forward a partial line (output without newline) at once, holding back whatever may start a marker.
    let keep = pending.length;
    for (const mk of [START_MARKER, EXIT_MARKER]) {
      const at = pending.indexOf(mk);
      if (at >= 0) keep = Math.min(keep, at);
      for (let k = Math.min(mk.length - 1, pending.length); k > 0; k--) {
        if (pending.endsWith(mk.slice(0, k))) {
          keep = Math.min(keep, pending.length - k);
          break;
        }
      }
    }
    if (keep > 0) {
      emit(pending.slice(0, keep));
      pending = pending.slice(keep);
    }
  };

  log(`booting ${kernel.version} (${opts.memoryMiB ?? 4096} MiB, ${opts.cpus ?? 2} vCPU, TCG): ${opts.command.join(' ')}`);
  const child = spawn(qemu, qemuArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stdout.on('data', onData);
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString('utf8');
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutMs);
  const onSignal = (): void => {
    child.kill('SIGKILL');
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const status = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.once('error', (e) => reject(new Error(`VM lab: cannot start ${qemu}: ${e.message}`)));
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    if (pending) emit(pending);
    const durationMs = Date.now() - t0;
    if (timedOut) {
      throw new VmTimeoutError(`VM lab: timed out after ${opts.timeoutMs} ms (QEMU killed); last console output:\n`
        + consoleLog.slice(-4000), consoleLog);
    }
    let exitCode: number | undefined;
    try {
      exitCode = Number(fs.readFileSync(path.join(ctl, 'exit-code'), 'utf8').trim());
    } catch {
      exitCode = markerExit;
    }
    if (exitCode === undefined || Number.isNaN(exitCode)) {
      throw new Error(`VM lab: the VM stopped without reporting an exit code (QEMU exit ${status.code ?? status.signal}).`
        + `${stderr ? `\nQEMU stderr: ${stderr.trim()}` : ''}\nlast console output:\n${consoleLog.slice(-4000)}`);
    }
    let guestClockRatio = Number.NaN;
    if (clockStart && clockEnd && clockEnd[0] - clockStart[0] >= 5000) {
      guestClockRatio = (clockEnd[1] - clockStart[1]) / ((clockEnd[0] - clockStart[0]) / 1000);
      if (Math.abs(guestClockRatio - 1) > 0.15) {
        log(`WARNING: the guest clock ran at ${guestClockRatio.toFixed(2)}x real time: timeouts inside the VM are off`);
      }
    }
    let kernelLog = '';
    try {
      kernelLog = fs.readFileSync(path.join(ctl, 'dmesg'), 'utf8');
    } catch {
      // the VM died before writing it
    }
    const kernelWarnings: string[] = [];
    for (const line of kernelLog.split('\n')) {
      const k = /^<(\d+)>\[\s*([0-9.]+)\] (.*)$/.exec(line);
      if (k?.[1] && k[2] && k[3] !== undefined && (Number(k[1]) & 7) <= 4 && Number(k[2]) >= (clockStart?.[1] ?? 0)) {
        kernelWarnings.push(`[${k[2]}] ${k[3]}`);
      }
    }
    return {
      exitCode, output: commandOut, console: consoleLog, durationMs, bootMs, guestClockRatio, kernelWarnings, kernelLog,
    };
  } finally {
    clearTimeout(timer);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    cleanupCtl();
    process.removeListener('exit', cleanupCtl);
  }
}
