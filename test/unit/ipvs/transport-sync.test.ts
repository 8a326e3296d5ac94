// The synchronous dump path (NetlinkTransport.dumpSync over SyncIo, as listServices() uses it)
// against the scripted fake kernel: multi-datagram dumps, EAGAIN (the rest through the event
// loop), errors and socket failures mid-dump, strays, truncation, the fallback without SyncIo,
// and the /proc lookup of the binding's descriptor.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { IpvsClient } from '../../../src/ipvs/client.ts';
import { encodeRequest } from '../../../src/ipvs/codec.ts';
import { Cmd, NETLINK_GENERIC, NLM_F_ACK, NLM_F_DUMP } from '../../../src/ipvs/constants.ts';
import { IpvsDecodeError, IpvsError } from '../../../src/ipvs/errors.ts';
import { netlinkFd, NetlinkTransport, openGenericNetlinkSocket } from '../../../src/ipvs/transport.ts';
import type { Destination, Service } from '../../../src/ipvs/types.ts';
import { destination } from '../../../src/ipvs/types.ts';
import { datagram, destReply, doneMessage, errnoError, errorMessage, FAMILY, FakeNetlink, familyReply, serviceReply, withSeq, type SentRequest } from './replies.ts';

const svc: Service = { af: 'ipv4', protocol: 'tcp', address: '192.168.56.40', port: 80, scheduler: 'rr', flags: 2, timeout: 0, netmask: 0xffffffff };
const services = Array.from({ length: 20 }, (_, i): Service => ({ ...svc, port: 3000 + i }));
/** Service i has i % 4 + 1 destinations, with weights encoding (service, destination). */
const destsOf = (port: number): Destination[] => Array.from({ length: ((port - 3000) % 4) + 1 }, (_, j) => ({ ...destination(`10.0.${j}.1`, port), weight: (port - 3000) * 10 + j }));

/** The port of the service a GET_DEST request names (SvcAttr.PORT, be16). */
const portOf = (r: SentRequest): number => r.payload.readUInt16BE(r.payload.indexOf(Buffer.from('06000400', 'hex')) + 4);

/**
 * A kernel holding `services`: the service dump comes 3 entries per datagram, each destination
 * dump one entry per datagram, DONE alone at the end (as netlink_dump sends them).
 */
function tableKernel(nl: FakeNetlink, extra: (r: SentRequest) => Buffer[] | undefined = () => undefined): void {
  nl.handler = (r) => {
    const custom = extra(r);
    if (custom) return custom;
    if (r.type === 16) return [datagram(familyReply(FAMILY, { seq: r.seq }), errorMessage(r.seq, 0))];
    if (r.cmd === Cmd.GET_SERVICE) {
      const out: Buffer[] = [];
      for (let i = 0; i < services.length; i += 3) out.push(datagram(...services.slice(i, i + 3).map((s) => withSeq(serviceReply(s), r.seq))));
      return [...out, doneMessage(r.seq)];
    }
    if (r.cmd === Cmd.GET_DEST) return [...destsOf(portOf(r)).map((d) => withSeq(destReply(d), r.seq)), doneMessage(r.seq)];
    if (r.flags & NLM_F_DUMP) return [doneMessage(r.seq)];
    return r.flags & NLM_F_ACK ? [errorMessage(r.seq, 0)] : [];
  };
}

/** Runs `fn`, counting the turns of the event loop (its check phases) that pass until it resolves. */
async function countingTurns<T>(fn: () => Promise<T>): Promise<{ value: T; turns: number }> {
  let turns = 0;
  let counting = true;
  const count = (): void => {
    if (!counting) return;
    turns++;
    setImmediate(count);
  };
  setImmediate(count);
  try {
    return { value: await fn(), turns };
  } finally {
    counting = false;
  }
}

/** The transport closes a discarded socket on the next turn of the event loop. */
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const weights = (list: Awaited<ReturnType<IpvsClient['listServices']>>): number[][] => list.map((s) => s.destinations.map((d) => d.destination.weight));
const expectedWeights = services.map((_, i) => destsOf(3000 + i).map((d) => d.weight));

describe('dumps read synchronously (SyncIo)', () => {
  let nl: FakeNetlink;
  let client: IpvsClient;
  beforeEach(() => {
    nl = new FakeNetlink();
    nl.syncIo = true;
    client = new IpvsClient({ socketFactory: nl.factory, timeoutMs: 200 });
  });
  afterEach(() => client.close());

  it('listServices: every dump written and read over SyncIo, multi-datagram replies complete and in order, two sockets', async () => {
    tableKernel(nl);
    const list = await client.listServices();
    expect(list.map((s) => s.service.port)).toEqual(services.map((s) => s.port));
    expect(weights(list)).toEqual(expectedWeights);
    // Only the family lookup went through the binding; 1 service dump + 20 destination dumps were written directly.
    expect(nl.sendCalls).toBe(1);
    expect(nl.syncWrites).toBe(21);
    // Every datagram was read: 7 + DONE for the services, (n + DONE) per service.
    expect(nl.syncReads).toBe(8 + expectedWeights.reduce((a, w) => a + w.length + 1, 0));
    expect(new Set(nl.sent.filter((r) => r.cmd === Cmd.GET_DEST).map((r) => r.socket))).toEqual(new Set([1]));
    await tick();
    expect(nl.closed).toBe(0);
    expect(client.requestCounts).toMatchObject({ GETFAMILY: 1, GET_SERVICE: 1, GET_DEST: 20 });
    // The sockets stay usable by the binding's path: a change, then another synchronous dump.
    await client.updateDestination(services[2] as Service, { ...(destsOf(3002)[0] as Destination), weight: 9 });
    expect(nl.sendCalls).toBe(2);
    expect((await client.dumpServices()).map((s) => s.service.port)).toEqual(services.map((s) => s.port));
  });

  it('EAGAIN before DONE: the rest of that dump arrives through the event loop, nothing is lost or reset', async () => {
    tableKernel(nl);
    let reads = 0;
    let deferred = 0;
    // The service dump's 3rd read and the destination dump of the 5th service (4 entries + DONE) find nothing queued yet.
    nl.onSyncRead = (socket, queue) => {
      reads++;
      const defer = (socket === 0 && reads === 3) || (socket === 1 && queue.length === 3 && nl.sent.filter((r) => r.cmd === Cmd.GET_DEST).length === 4);
      if (defer) deferred++;
      return defer ? 'defer' : undefined;
    };
    const list = await client.listServices();
    expect(list.map((s) => s.service.port)).toEqual(services.map((s) => s.port));
    expect(weights(list)).toEqual(expectedWeights);
    await tick();
    expect(nl.closed).toBe(0);
    expect(deferred).toBe(2);
    // The synchronous path resumes after a continued dump.
    expect(nl.syncWrites).toBe(21);
    expect(nl.sendCalls).toBe(1);
  });

  it('EAGAIN and nothing ever comes: ETIMEDOUT with the object, socket discarded, the next call works', async () => {
    tableKernel(nl, (r) => (r.cmd === Cmd.GET_DEST && portOf(r) === 3001 ? [withSeq(destReply(destsOf(3001)[0] as Destination), r.seq)] : undefined));
    const err = (await client.listServices().catch((e: unknown) => e)) as IpvsError;
    expect(err).toBeInstanceOf(IpvsError);
    expect(err.code).toBe('ETIMEDOUT');
    expect(err.message).toContain('192.168.56.40:3001');
    await tick();
    expect(nl.closed).toBe(1);
    tableKernel(nl);
    expect(weights(await client.listServices())).toEqual(expectedWeights);
  });

  it('an errno in DONE after some entries rejects with it; the socket stays (the dump ended cleanly)', async () => {
    tableKernel(nl, (r) =>
      r.cmd === Cmd.GET_DEST && portOf(r) === 3003 ? [withSeq(destReply(destsOf(3003)[0] as Destination), r.seq), doneMessage(r.seq, 12 /* ENOMEM */)] : undefined,
    );
    const err = (await client.listServices().catch((e: unknown) => e)) as IpvsError;
    expect(err).toBeInstanceOf(IpvsError);
    expect(err.code).toBe('ENOMEM');
    expect(err.command).toBe('GET_DEST');
    expect(err.message).toContain('192.168.56.40:3003');
    await tick();
    expect(nl.closed).toBe(0);
    tableKernel(nl);
    expect(weights(await client.listServices())).toEqual(expectedWeights);
  });

  it('NLMSG_ERROR instead of a dump (it did not start) rejects with that errno, and the socket stays', async () => {
    tableKernel(nl, (r) => (r.cmd === Cmd.GET_SERVICE ? [errorMessage(r.seq, 22 /* EINVAL */)] : undefined));
    await expect(client.dumpServices()).rejects.toMatchObject({ code: 'EINVAL', command: 'GET_SERVICE' });
    await tick();
    expect(nl.closed).toBe(0);
  });

  it('a socket error mid-dump (ENOBUFS from read) fails with that errno and discards the socket', async () => {
    tableKernel(nl);
    let reads = 0;
    nl.onSyncRead = (socket) => (socket === 0 && ++reads === 2 ? errnoError('ENOBUFS', 105) : undefined);
    await expect(client.listServices()).rejects.toMatchObject({ code: 'ENOBUFS', command: 'GET_SERVICE' });
    await tick();
    expect(nl.closed).toBe(1);
    // The leftover of the abandoned dump is gone with its socket; a fresh one answers in full.
    expect(weights(await client.listServices())).toEqual(expectedWeights);
    expect(nl.sockets).toBe(3);
  });

  it('strays and control messages in a datagram are skipped, data beside DONE is kept', async () => {
    tableKernel(nl, (r) =>
      r.cmd === Cmd.GET_SERVICE
        ? [
            datagram(withSeq(serviceReply({ ...svc, port: 1 }), r.seq + 1000), withSeq(serviceReply(services[0] as Service), r.seq)),
            datagram(withSeq(serviceReply(services[1] as Service), r.seq), doneMessage(r.seq), withSeq(serviceReply({ ...svc, port: 2 }), r.seq)),
          ]
        : undefined,
    );
    expect((await client.dumpServices()).map((s) => s.service.port)).toEqual([3000, 3001]);
    await tick();
    expect(nl.closed).toBe(0);
  });

  it('an undecodable datagram (a message longer than the read: truncated) is EBADMSG and discards the socket', async () => {
    const big = Array.from({ length: 200 }, (_, i) => ({ ...svc, port: 5000 + i }));
    tableKernel(nl, (r) => (r.cmd === Cmd.GET_SERVICE ? [datagram(...big.map((s) => withSeq(serviceReply(s), r.seq))), doneMessage(r.seq)] : undefined));
    // ~60 KiB in one datagram, read with 32 KiB: cut inside a message.
    await expect(client.dumpServices()).rejects.toMatchObject({ code: 'EBADMSG', command: 'GET_SERVICE' });
    await tick();
    expect(nl.closed).toBe(1);
  });

  it('an entry that does not decode throws IpvsDecodeError and discards the socket (its reply was not read to the end)', async () => {
    const broken = Buffer.from(serviceReply(services[1] as Service));
    broken.writeUInt16LE(0xffff, 16 + 4); // the SERVICE nest claims more than the message holds
    tableKernel(nl, (r) => (r.cmd === Cmd.GET_SERVICE ? [withSeq(serviceReply(services[0] as Service), r.seq), withSeq(broken, r.seq), doneMessage(r.seq)] : undefined));
    await expect(client.dumpServices()).rejects.toBeInstanceOf(IpvsDecodeError);
    await tick();
    expect(nl.closed).toBe(1);
  });

  it('a dump that outlasts its budget goes on through the event loop: complete, in order, the loop ran in between', async () => {
    client.close();
    client = new IpvsClient({ socketFactory: nl.factory, timeoutMs: 200, sliceMs: 0 });
    tableKernel(nl);
    const { value: list, turns } = await countingTurns(() => client.dumpServices());
    expect(list.map((s) => s.service.port)).toEqual(services.map((s) => s.port));
    // One datagram read directly, the other 6 and DONE by the binding's callback, and handed on one per turn.
    expect(nl.syncReads).toBe(1);
    expect(turns).toBeGreaterThanOrEqual(7);
    await tick();
    expect(nl.closed).toBe(0);
    // The socket is clean: the next dump is read in full again.
    expect((await client.dumpServices()).map((s) => s.service.port)).toEqual(services.map((s) => s.port));
  });

  it('dumpServices waits for no queued call, on a socket of its own', async () => {
    tableKernel(nl, (r) => (r.cmd === Cmd.NEW_SERVICE ? [] : undefined)); // never answered: times out after 200 ms
    const order: string[] = [];
    const stuck = client.addService(svc).then(() => order.push('add'), (e: unknown) => order.push(`add ${(e as IpvsError).code}`));
    const list = await client.dumpServices();
    order.push('dump');
    expect(list).toHaveLength(20);
    await stuck;
    expect(order).toEqual(['dump', 'add ETIMEDOUT']);
    const sockets = (cmd: number): number[] => [...new Set(nl.sent.filter((r) => r.cmd === cmd).map((r) => r.socket))];
    expect(sockets(Cmd.GET_SERVICE)).not.toEqual(sockets(Cmd.NEW_SERVICE));
  });

  it('listDestinations and dumpServices use the synchronous path too', async () => {
    tableKernel(nl);
    expect((await client.listDestinations(services[3] as Service)).map((d) => d.destination.weight)).toEqual(expectedWeights[3]);
    expect(await client.dumpServices()).toHaveLength(20);
    expect(nl.syncWrites).toBe(2);
  });
});

describe('NetlinkTransport.dumpSync guards', () => {
  it('never reads while a request is in flight (its reply belongs to the binding): returns false, sends nothing', async () => {
    const nl = new FakeNetlink();
    nl.syncIo = true;
    tableKernel(nl);
    const t = new NetlinkTransport({ socketFactory: nl.factory, timeoutMs: 200 });
    const pending = t.request({ buf: encodeRequest({ cmd: 'SET_SERVICE', service: svc }, { familyId: FAMILY }), command: 'SET_SERVICE', target: undefined }, false);
    expect(t.inFlight).toBe(1);
    expect(t.canSync()).toBe(false);
    expect(t.dumpSync({ buf: encodeRequest({ cmd: 'GET_SERVICE' }, { familyId: FAMILY }), command: 'GET_SERVICE', target: undefined }, () => {})).toBe(false);
    expect(nl.syncWrites).toBe(0);
    await pending;
    expect(t.canSync()).toBe(true);
    t.close();
  });

  it('dumpEach: synchronous where it can be, through the binding where not; parts in order, handed in turns of the budget', async () => {
    for (const syncIo of [true, false]) {
      const nl = new FakeNetlink();
      nl.syncIo = syncIo;
      tableKernel(nl);
      const t = new NetlinkTransport({ socketFactory: nl.factory, timeoutMs: 200 });
      const parts: number[] = [];
      const dump = (budgetMs?: number): Promise<void> =>
        t.dumpEach({ buf: encodeRequest({ cmd: 'GET_SERVICE' }, { familyId: FAMILY }), command: 'GET_SERVICE', target: undefined }, (p) => parts.push(p.length), budgetMs);
      const sliced = await countingTurns(() => dump(0));
      expect(parts).toHaveLength(7); // 20 services, 3 per datagram
      expect(nl.syncReads).toBe(syncIo ? 1 : 0);
      expect(sliced.turns).toBeGreaterThanOrEqual(6);
      // Without a budget it is one turn when read synchronously.
      const whole = await countingTurns(() => dump());
      expect(parts).toHaveLength(14);
      if (syncIo) expect(whole.turns).toBe(0);
      t.close();
    }
  });

  it('without SyncIo (no /proc): canSync is false and listServices falls back to parallel sockets through the binding', async () => {
    const nl = new FakeNetlink();
    tableKernel(nl);
    const client = new IpvsClient({ socketFactory: nl.factory, timeoutMs: 200, dumpConcurrency: 4 });
    const list = await client.listServices();
    expect(weights(list)).toEqual(expectedWeights);
    expect(nl.syncWrites + nl.syncReads).toBe(0);
    expect(new Set(nl.sent.filter((r) => r.cmd === Cmd.GET_DEST).map((r) => r.socket)).size).toBe(4);
    client.close();
  });

  it('a write error is reported with errno and object; the socket is kept (nothing was sent)', async () => {
    const nl = new FakeNetlink();
    nl.syncIo = true;
    tableKernel(nl);
    const factory = nl.factory;
    const client = new IpvsClient({
      socketFactory: () => {
        const s = factory();
        const io = s.sync;
        return {
          ...s,
          sync: io && {
            read: io.read,
            write: () => {
              throw errnoError('ECONNREFUSED', 111);
            },
          },
        };
      },
      timeoutMs: 200,
    });
    await expect(client.dumpServices()).rejects.toMatchObject({ code: 'ECONNREFUSED', command: 'GET_SERVICE' });
    await tick();
    expect(nl.closed).toBe(0);
    expect(nl.syncReads).toBe(0);
    client.close();
  });
});

describe('netlinkFd (the binding descriptor through /proc)', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvs-proc-'));
    fs.mkdirSync(path.join(dir, 'net'));
    fs.mkdirSync(path.join(dir, 'fd'));
    fs.mkdirSync(path.join(dir, 'fdinfo'));
    fs.writeFileSync(
      path.join(dir, 'net', 'netlink'),
      [
        'sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode',
        '0000000000000000 0   4242       00000000 0        0        0     2        0        111',
        '0000000000000000 16  4242       00000000 0        0        0     2        0        222',
        '0000000000000000 16  77         00000000 0        0        0     2        0        333',
        '',
      ].join('\n'),
    );
    const fdEntry = (fd: number, link: string, flags: string): void => {
      fs.symlinkSync(link, path.join(dir, 'fd', String(fd)));
      fs.writeFileSync(path.join(dir, 'fdinfo', String(fd)), `pos:\t0\nflags:\t${flags}\nmnt_id:\t8\nino:\t1\n`);
    };
    fdEntry(3, 'socket:[111]', '02004002');
    fdEntry(17, 'socket:[222]', '02004002');
    fdEntry(18, 'socket:[333]', '02000002');
    fdEntry(19, '/dev/null', '0100000');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('finds the descriptor by protocol and port, only when it is non-blocking', () => {
    expect(netlinkFd(NETLINK_GENERIC, 4242, dir)).toBe(17);
    expect(netlinkFd(NETLINK_GENERIC, 77, dir)).toBeUndefined(); // blocking: a read could hang
    expect(netlinkFd(NETLINK_GENERIC, 5, dir)).toBeUndefined();
  });

  it('no /proc: undefined, no throw', () => {
    expect(netlinkFd(NETLINK_GENERIC, 4242, path.join(dir, 'missing'))).toBeUndefined();
  });

  it('the real socket of this process (when /proc is there): the same inode as its port', () => {
    let sock;
    try {
      sock = openGenericNetlinkSocket();
    } catch {
      return; // no netlink in this sandbox: nothing to compare against
    }
    try {
      const fd = netlinkFd(NETLINK_GENERIC, sock.port);
      if (fd === undefined) return; // no /proc
      expect(fs.fstatSync(fd).isSocket()).toBe(true);
      expect(sock.sync).toBeDefined();
    } finally {
      sock.close();
    }
    expect(sock.sync).toBeUndefined(); // closed: its descriptor number may be reused
  });
});
