// Director heartbeats (src/agent/failover/heartbeat.ts) on the lab VM's real kernel: UdpHeartbeatTransport +
// HeartbeatMonitor in child Node processes in three netns. Two directors on one bridge hear each other and
// never themselves; a node on another bridge hears nothing (TTL 1, link-local group); a director whose main
// thread is blocked for 2 s (a slow netlink request) is still heard (the sender is a worker thread); when a
// director's link goes down the other judges it down within `missed` intervals, and up again once it is back.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab, assertInLabVm, exec, type BackgroundProcess, type Link } from '../vm/netns.ts';

assertInLabVm();
jest.setTimeout(180_000);

const repo = path.resolve(import.meta.dirname, '..', '..');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A director in a netns: sends every 100 ms on eth0, prints every peer state change and its view each 200 ms;
 * with `blockAtMs`, blocks its main thread for 2 s that long after it is ready.
 */
const CHILD = (node: string, blockAtMs?: number): string => `
import { HeartbeatMonitor, UdpHeartbeatTransport } from ${JSON.stringify(path.join(repo, 'src/agent/failover/heartbeat.ts'))};
import { createLogger } from ${JSON.stringify(path.join(repo, 'src/util/log.ts'))};
const log = createLogger('hb', 'silent');
const transport = new UdpHeartbeatTransport({ log });
const m = new HeartbeatMonitor({ node: ${JSON.stringify(node)}, transport, intervalMs: 100, missed: 5, log,
  onDown: (n) => console.log(JSON.stringify({ k: 'down', t: Date.now(), peer: n })) });
await m.setInterfaces(['eth0']);
console.log(JSON.stringify({ k: 'ready', t: Date.now() }));
${blockAtMs === undefined ? '' : `setTimeout(() => {
  const from = Date.now();
  while (Date.now() - from < 2000) { /* a main thread stuck in a slow syscall */ }
  console.log(JSON.stringify({ k: 'blocked', from, to: Date.now() }));
}, ${blockAtMs});`}
setInterval(() => console.log(JSON.stringify({ k: 'view', t: Date.now(), peers: Object.fromEntries([...m.peers()].map(([n, ago]) => [n, { ago: Math.round(ago), down: m.isDown(n) }])) })), 200);
setInterval(() => undefined, 1 << 30);
`;

interface View { t: number; peers: Record<string, { ago: number; down: boolean }> }

function lines<T>(p: BackgroundProcess, kind: string): T[] {
  return p.output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as T & { k: string }).filter((o) => o.k === kind);
}

describe('director heartbeats between netns (UdpHeartbeatTransport, multicast on a bridge)', () => {
  const lab = new NetLab('hb');
  const procs: Record<string, BackgroundProcess> = {};
  let linkA: Link;

  beforeAll(async () => {
    const br = await lab.addBridge('hbbr');
    const other = await lab.addBridge('hbbr2');
    const a = await lab.addNetns('hba');
    const b = await lab.addNetns('hbb');
    const c = await lab.addNetns('hbc');
    linkA = await lab.connect(a, br, { addresses: ['203.0.113.11/24'] });
    await lab.connect(b, br, { addresses: ['203.0.113.12/24'] });
    await lab.connect(c, other, { addresses: ['203.0.113.13/24'] });
    for (const [ns, node] of [[a, 'director-a'], [b, 'director-b'], [c, 'elsewhere']] as const) {
      const file = path.join(tmpdir(), `hb-${node}-${process.pid}.mts`);
      writeFileSync(file, CHILD(node, node === 'director-b' ? 4_000 : undefined));
      procs[node] = lab.spawn(ns, [process.execPath, '--disable-warning=ExperimentalWarning', file], { label: node });
    }
    for (const p of Object.values(procs)) await p.waitForOutput(/"k":"ready"/, 120_000);
  }, 180_000);
  afterAll(async () => {
    for (const p of Object.values(procs)) await p.stop('SIGKILL').catch(() => undefined);
    await lab.destroy();
  });

  const last = (node: string): View => lines<View>(procs[node]!, 'view').at(-1)!;

  it('two directors on one segment hear each other (not themselves), also while one\'s main thread is blocked; a node on another segment hears nobody', async () => {
    let blocked: { from: number; to: number } | undefined;
    for (let i = 0; i < 200 && !blocked; i++) {
      await sleep(100);
      blocked = lines<{ from: number; to: number }>(procs['director-b']!, 'blocked')[0];
    }
    expect(blocked).toBeDefined();
    await sleep(1_000);
    // director-a watched throughout director-b's 2 s block: never judged it down.
    expect(lines<{ peer: string }>(procs['director-a']!, 'down')).toEqual([]);
    const during = lines<View>(procs['director-a']!, 'view').filter((v) => v.t > blocked!.from + 600 && v.t < blocked!.to);
    expect(during.length).toBeGreaterThan(0);
    for (const v of during) expect(v.peers['director-b']).toMatchObject({ down: false });
    const a = last('director-a');
    const b = last('director-b');
    expect(Object.keys(a.peers)).toEqual(['director-b']);
    expect(Object.keys(b.peers)).toEqual(['director-a']);
    expect(a.peers['director-b']!.down).toBe(false);
    expect(b.peers['director-a']!.down).toBe(false);
    expect(last('elsewhere').peers).toEqual({});
  });

  it('a cut link: the other director judges it down within 5 intervals (+ scheduling), and up once it is back', async () => {
    const t0 = Date.now();
    await exec(null, ['ip', 'link', 'set', linkA.peer, 'down']);
    let downAt: number | undefined;
    for (let i = 0; i < 100 && downAt === undefined; i++) {
      await sleep(100);
      downAt = lines<{ t: number; peer: string }>(procs['director-b']!, 'down').find((d) => d.peer === 'director-a' && d.t >= t0)?.t;
    }
    expect(downAt).toBeDefined();
    // 500 ms of silence, checked every 100 ms; the VM is emulated, so allow for its scheduling.
    expect(downAt! - t0).toBeGreaterThanOrEqual(400);
    expect(downAt! - t0).toBeLessThan(3_000);
    await exec(null, ['ip', 'link', 'set', linkA.peer, 'up']);
    const back = Date.now();
    for (let i = 0; i < 100; i++) {
      await sleep(100);
      const v = last('director-b');
      if (v.t > back && v.peers['director-a']?.down === false) break;
    }
    expect(last('director-b').peers['director-a']!.down).toBe(false);
  });
});
