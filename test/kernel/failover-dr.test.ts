// Director failover end to end (issue #7) in the lab VM: a real kube-apiserver, the chart, the controller and
// lvs-agent --cluster --vip-election on TWO directors (director-a, director-b), two DR realservers and a
// client on one bridge (test/kernel/cluster-failover.ts). For a killed agent (SIGKILL) and for a cut link
// (its lab and management switch ports disabled) it shows: the VIP moves to the standby (kernel, Lease), new connections
// from the client succeed, the client's neighbour entry points at the new director's MAC, long-lived TCP
// connections opened before the fault complete (IPVS sync daemon: master on the holder, backup on the
// standby; the standby's `ipvsadm -Lnc` lists them before the fault), and when the old director comes back
// the VIP stays where it is (no flapping): a killed agent's kernel drops the VIP by itself (its lifetime, which
// only a live agent refreshes) before the agent is back, a director whose link returns yields as soon as the
// new holder answers its ARP probe; broadcast ARP from an observer shows only the holder answering. Times are
// printed; the timing target is bench:failover's, not asserted here.
import { jest } from '@jest/globals';
import { NetLab, assertInLabVm } from '../vm/netns.ts';
import { eventually, sleep } from './agent-lab.ts';
import { kubectlOut } from './cluster-lab.ts';
import {
  APP_NS, AddressWatch, ClientProbe, Streams, VIP, arpProbe, boundOn, clientNeighbour, fail, leaseHolders, restore, startHaStack, vipBound, waitSynced,
} from './cluster-failover.ts';
import type { Director, Fault, HaStack } from './cluster-failover.ts';
import { trackedSteps } from './steps.ts';

assertInLabVm();
jest.setTimeout(600_000);

const log = (msg: string): void => {
  process.stderr.write(`[failover-dr] ${msg}\n`);
};

const { step, someFailed } = trackedSteps();

describe('director failover (two directors, VIP election, sync daemons, DR lab)', () => {
  const lab = new NetLab();
  let stack: HaStack;
  let probe: ClientProbe;

  /** The director holding the VIP now (exactly one must), and the other one. */
  const roles = async (): Promise<{ holder: Director; standby: Director }> => {
    const bound = await boundOn(stack);
    expect(bound).toHaveLength(1);
    const holder = stack.directors[bound[0]!];
    const standby = Object.values(stack.directors).find((d) => d !== holder)!;
    return { holder, standby };
  };

  const syncDaemons = async (d: Director): Promise<string> => (await lab.exec(d.ns, ['ipvsadm', '-L', '--daemon'])).stdout;

  beforeAll(async () => {
    // The product's defaults (Lease 2 s, renew 500 ms, VIP lifetime 8 s): Lease requests go over kept-alive
    // connections, so they answer in time through the lab's relay even on a loaded host.
    stack = await startHaStack(lab);
    probe = await ClientProbe.start(stack);
  }, 2_400_000);

  afterAll(async () => {
    stack?.dumpLogs(someFailed());
    await probe?.stop().catch(() => undefined);
    await stack?.stop();
    await lab.destroy();
  }, 600_000);

  step('exactly one director holds the VIP: kernel, Lease, client ARP entry and sync daemons agree', async () => {
    const { holder, standby } = await roles();
    await eventually('one Lease holder, the director with the VIP', async () => {
      const holders = (await leaseHolders()).filter(Boolean);
      return holders.length === 1 && holders[0] === holder.name;
    }, 120_000, 1000);
    expect(await lab.httpGet(stack.client, `http://${VIP}/`, { timeoutSec: 10 })).toMatch(/^web[12]\n$/);
    expect(await clientNeighbour(stack)).toBe(holder.mac);
    await eventually('sync daemons: master + backup on the holder, backup on the standby', async () => {
      const [h, s] = [await syncDaemons(holder), await syncDaemons(standby)];
      return /master sync daemon/.test(h) && /backup sync daemon/.test(h) && !/master sync daemon/.test(s) && /backup sync daemon/.test(s);
    }, 60_000, 1000);
  });

  const failoverCase = (fault: Fault): void => {
    step(`${fault === 'kill' ? 'holder agent SIGKILLed' : 'holder link cut (lab + management)'}: the VIP moves, new connections work, the client's ARP entry and long-lived connections follow; the old director comes back without flapping and never answers for the VIP next to the new holder`, async () => {
      // An earlier case that failed half-way may have left an agent dead: this case needs both.
      for (const d of Object.values(stack.directors)) if (!d.agent.proc?.running) d.agent.start();
      await eventually('both director agents report', async () => Object.values(stack.directors).every((d) => d.agent.status() !== undefined), 300_000, 1000);
      const { holder, standby } = await eventually('one holder', async () => roles().catch(() => undefined), 60_000, 1000);
      // Long-lived downloads (50 s) through the holder, synced to the standby before the fault.
      const streams = await Streams.open(stack, 3, 200, 250);
      const syncMs = await waitSynced(lab, standby.ns, streams.ports(), 60_000);
      // Which kernels have the VIP: kernel address events on both directors, with their times. Nothing polls
      // during the failover (every process spawned competes with the agents for the two emulated CPUs).
      const watch = { old: await AddressWatch.start(lab, holder.ns), next: await AddressWatch.start(lab, standby.ns) };
      const addr = JSON.parse((await lab.exec(holder.ns, ['ip', '-j', 'addr', 'show', 'dev', 'eth0'])).stdout) as Array<{ addr_info: Array<{ local: string; valid_life_time?: number }> }>;
      const lifetime = addr[0]?.addr_info.find((x) => x.local === VIP)?.valid_life_time;

      const tFault = await fail(stack, holder, fault);
      const tMoved = await eventually('the client ARP entry points at the new holder', async () => probe.movedAt(standby.mac, tFault), 120_000, 100);
      const firstOk = await eventually('a new connection after the move', async () => probe.firstOkAfter(tMoved), 120_000, 100);
      const tBound = watch.next.first('add', tFault);
      log(`${fault}: ${holder.name} -> ${standby.name}: bound +${tBound === undefined ? '?' : tBound - tFault} ms, client ARP moved +${tMoved - tFault} ms, `
        + `first new connection through it +${firstOk.t1 - tFault} ms (streams synced ${syncMs} ms before the fault; the holder's VIP had valid_lft ${lifetime} s)`);
      expect(tBound).toBeDefined();
      // The lifetime of a VIP with a standby: lease duration (2 s) + 6 s, refreshed while the agent lives.
      expect(lifetime).toBeLessThanOrEqual(8);
      await eventually(`${standby.name} holds the Lease`, async () => (await leaseHolders()).includes(standby.name), 120_000, 1000);
      // Loose bound: the target (p50 < 2 s, max < 3 s) is bench:failover's.
      expect(firstOk.t1 - tFault).toBeLessThan(30_000);
      expect(await clientNeighbour(stack)).toBe(standby.mac);
      expect(await lab.httpGet(stack.client, `http://${VIP}/`, { timeoutSec: 10 })).toMatch(/^web[12]\n$/);

      let tRestore = 0;
      if (fault === 'kill') {
        // The dead agent refreshes nothing: its kernel drops the VIP when the lifetime runs out, long before the
        // agent is back; from then on only the new holder answers ARP for it.
        const tGone = await eventually(`${holder.name}'s kernel drops the VIP`, async () => watch.old.first('del', tFault), 60_000, 200);
        const lastRefresh = watch.old.events().filter((e) => e.op === 'add' && e.t <= tFault).at(-1)?.t;
        log(`kill: ${holder.name}'s kernel dropped the VIP +${tGone - tFault} ms after the kill, ${lastRefresh === undefined ? '?' : tGone - lastRefresh} ms after its last refresh`);
        // 8 s after the last refresh, + the kernel's rounding to whole seconds.
        expect(tGone - tFault).toBeLessThan(8_000 + 1_500);
        expect(await vipBound(lab, holder.ns)).toBe(false);
        const arpBeforeRestart = await arpProbe(stack, 4);
        expect([...arpBeforeRestart.keys()]).toEqual([standby.mac]);
        // Restart it now (a minute or more to load under TCG), while the downloads run through the new holder.
        tRestore = await restore(stack, holder, fault);
      }
      const results = await streams.done(180_000);
      log(`${fault}: streams ${JSON.stringify(results)}`);
      expect(results.map((r) => ({ port: r.port, ok: r.ok, err: r.err }))).toEqual(results.map((r) => ({ port: r.port, ok: true, err: undefined })));
      // ...and each of them was still running after the client had moved: it went through the new director.
      expect(results.filter((r) => r.t <= tMoved)).toEqual([]);

      // A cut link comes back now: the old director kept the VIP (retained, by design) and must give it up.
      if (fault === 'link') tRestore = await restore(stack, holder, fault);
      const tReleased = await eventually(`${holder.name} does not have the VIP`, async () => watch.old.first('del', tFault), 240_000, 200);
      if (fault === 'kill') {
        await eventually(`${holder.name}'s agent runs again`, async () => holder.agent.status() !== undefined, 300_000, 1000);
        await holder.agent.renice(0);
      }
      // From here on: one binder only, the new holder, and it stays (no flapping); only its MAC answers ARP.
      const arp = await arpProbe(stack, 8);
      await sleep(2_000);
      await watch.old.stop();
      await watch.next.stop();
      const rebound = watch.old.events().filter((e) => e.op === 'add' && e.t > tReleased);
      const dropped = watch.next.events().filter((e) => e.op === 'del' && e.t > tBound!);
      log(`${fault}: ${holder.name} back at +${tRestore - tFault} ms; both had the VIP from +${tBound! - tFault} to +${tReleased - tFault} ms `
        + `(${fault === 'kill' ? 'the dead kernel\'s lifetime' : `${Math.max(0, tReleased - tRestore)} ms after the link came back`}); `
        + `broadcast ARP replies after that: ${JSON.stringify(Object.fromEntries(arp))}`);
      // The old director never bound the VIP again, the new holder never lost it.
      expect(rebound).toEqual([]);
      expect(dropped).toEqual([]);
      // Kill: gone before the agent came back. Link: the returning director yields at its first ARP probe that the
      // new holder answers or its first Lease read, whichever comes first (1.7–6.1 s in the VM so far).
      if (fault === 'kill') expect(tReleased).toBeLessThan(tRestore);
      else expect(tReleased - tRestore).toBeLessThan(15_000);
      expect([...arp.keys()]).toEqual([standby.mac]);
      expect((await leaseHolders()).filter(Boolean)).toEqual([standby.name]);
      expect(await boundOn(stack)).toEqual([standby.name]);
      // The client never went back to the old director's MAC after the move.
      expect(probe.arp().filter((a) => a.t >= tMoved).map((a) => a.mac)).not.toContain(holder.mac);
      expect(await clientNeighbour(stack)).toBe(standby.mac);
      // Roles of the sync daemons followed: the returning director is a backup only.
      await eventually('sync daemons follow the new roles', async () => {
        const [h, s] = [await syncDaemons(standby), await syncDaemons(holder)];
        return /master sync daemon/.test(h) && !/master sync daemon/.test(s) && /backup sync daemon/.test(s);
      }, 60_000, 1000);
    });
  };
  failoverCase('kill');
  failoverCase('link');

  step('Events record every takeover with the previous holder', async () => {
    const events = JSON.parse(await kubectlOut(['get', 'events.events.k8s.io', '-n', APP_NS, '-o', 'json'])) as {
      items: Array<{ reason?: string; note?: string }>;
    };
    const taken = events.items.filter((e) => e.reason === 'VIPTakenOver').map((e) => e.note ?? '');
    // The first holder (no previous one) and one takeover per failover case, each naming the one before.
    expect(taken.filter((n) => /\bfrom director-[ab]\b/.test(n)).length).toBeGreaterThanOrEqual(2);
  });
});
