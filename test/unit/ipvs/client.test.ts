// IpvsClient + NetlinkTransport against a scripted fake kernel (FakeNetlink): seq matching,
// multipart dumps, serialisation, pipelining with ACK-on-last, timeouts and socket errors.

import { beforeEach, describe, expect, it } from '@jest/globals';
import { IpvsClient } from '../../../src/ipvs/client.ts';
import { Cmd, NLM_F_ACK, NLM_F_DUMP } from '../../../src/ipvs/constants.ts';
import { IpvsError } from '../../../src/ipvs/errors.ts';
import type { IpvsOp } from '../../../src/ipvs/interface.ts';
import type { Destination, Service } from '../../../src/ipvs/types.ts';
import { destination } from '../../../src/ipvs/types.ts';
import {
  configReply,
  daemonReply,
  datagram,
  destReply,
  doneMessage,
  errorMessage,
  FAMILY,
  FakeNetlink,
  familyReply,
  infoReply,
  serviceReply,
  withSeq,
  type SentRequest,
} from './replies.ts';

const svc: Service = { af: 'ipv4', protocol: 'tcp', address: '192.168.56.40', port: 80, scheduler: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff };
const dest: Destination = destination('192.168.56.37', 80);

/** A kernel that knows the family, answers GET_INFO/GET_CONFIG, ACKs everything else. */
function basicKernel(nl: FakeNetlink, extra: (r: SentRequest) => Buffer[] | undefined = () => undefined): void {
  nl.handler = (r) => {
    const custom = extra(r);
    if (custom) return custom;
    if (r.type === 16) return [datagram(familyReply(FAMILY, { seq: r.seq }), errorMessage(r.seq, 0))];
    if (r.cmd === Cmd.GET_INFO) return [datagram(infoReply(0x010201, 4096, { seq: r.seq })), errorMessage(r.seq, 0)];
    if (r.cmd === Cmd.GET_CONFIG) return [datagram(configReply(900, 120, 300, { seq: r.seq })), errorMessage(r.seq, 0)];
    if (r.flags & NLM_F_DUMP) return [doneMessage(r.seq)];
    return r.flags & NLM_F_ACK ? [errorMessage(r.seq, 0)] : [];
  };
}

describe('IpvsClient over a fake kernel', () => {
  let nl: FakeNetlink;
  let client: IpvsClient;
  beforeEach(() => {
    nl = new FakeNetlink();
    client = new IpvsClient({ socketFactory: nl.factory, timeoutMs: 200 });
  });

  it('resolves the family once, then talks to it; info and timeouts decode', async () => {
    basicKernel(nl);
    expect(await client.info()).toEqual({ version: '1.2.1', versionCode: 0x010201, connTableSize: 4096 });
    expect(await client.getTimeouts()).toEqual({ tcp: 900, tcpFin: 120, udp: 300 });
    expect(nl.sent.filter((r) => r.type === 16)).toHaveLength(1);
    expect(nl.sent.filter((r) => r.type === FAMILY).map((r) => r.cmd)).toEqual([Cmd.GET_INFO, Cmd.GET_CONFIG]);
    expect(client.requestCounts).toEqual({ GETFAMILY: 1, GET_INFO: 1, GET_CONFIG: 1 });
  });

  it('maps a NACK to IpvsError with command and object', async () => {
    basicKernel(nl, (r) => (r.cmd === Cmd.NEW_SERVICE ? [errorMessage(r.seq, 17)] : undefined));
    await expect(client.addService(svc)).rejects.toThrow('EEXIST: NEW_SERVICE 192.168.56.40:80/TCP: service already exists');
    await expect(client.addService(svc)).rejects.toMatchObject({ code: 'EEXIST', errno: 17, command: 'NEW_SERVICE', target: '192.168.56.40:80/TCP' });
  });

  it('GETFAMILY ENOENT (ip_vs missing) is a clear error, and is retried on the next call', async () => {
    let missing = true;
    basicKernel(nl, (r) => (r.type === 16 && missing ? [errorMessage(r.seq, 2)] : undefined));
    await expect(client.info()).rejects.toThrow('ENOENT: GETFAMILY IPVS: IPVS generic netlink family not found (ip_vs not loaded?)');
    missing = false;
    expect((await client.info()).version).toBe('1.2.1');
  });

  it('getService: one entry (doit, no DUMP flag), or undefined on ESRCH', async () => {
    basicKernel(nl, (r) => {
      if (r.cmd !== Cmd.GET_SERVICE) return undefined;
      expect(r.flags & NLM_F_DUMP).toBe(0);
      const port = r.payload.readUInt16BE(r.payload.indexOf(Buffer.from('06000400', 'hex')) + 4);
      return port === 80 ? [datagram(serviceReply({ ...svc, flags: 2 }, undefined, { seq: r.seq, flags: 0 })), errorMessage(r.seq, 0)] : [errorMessage(r.seq, 3)];
    });
    expect(await client.getService(svc)).toMatchObject({ service: { ...svc, flags: 2 } });
    expect(await client.getService({ ...svc, port: 81 })).toBeUndefined();
  });

  it('dumps: parts spread over several datagrams, DONE ends them; an errno in DONE rejects', async () => {
    const services = Array.from({ length: 5 }, (_, i): Service => ({ ...svc, port: 1000 + i }));
    let failDone = false;
    basicKernel(nl, (r) => {
      if (r.cmd !== Cmd.GET_SERVICE) return undefined;
      const parts = services.map((s) => withSeq(serviceReply(s), r.seq));
      return [datagram(...parts.slice(0, 2)), datagram(...parts.slice(2)), doneMessage(r.seq, failDone ? 16 : 0)];
    });
    expect((await client.dumpServices()).map((e) => e.service.port)).toEqual([1000, 1001, 1002, 1003, 1004]);
    failDone = true;
    await expect(client.dumpServices()).rejects.toMatchObject({ code: 'EBUSY', command: 'GET_SERVICE' });
  });

  it('serialises: never two requests in flight on the main socket, even when called concurrently', async () => {
    // Per socket, in the order they were opened: the main one first. dumpServices() reads on a socket of its own.
    const outstanding: number[] = [];
    const maxOutstanding: number[] = [];
    const inner = nl.factory;
    nl.factory = () => {
      const s = inner();
      const i = outstanding.push(0) - 1;
      maxOutstanding.push(0);
      return {
        ...s,
        send: (data, cb) => {
          outstanding[i]!++;
          maxOutstanding[i] = Math.max(maxOutstanding[i]!, outstanding[i]!);
          s.send(data, cb);
        },
        onMessage: (fn) => s.onMessage((d) => {
          outstanding[i]!--;
          fn(d);
        }),
      };
    };
    client = new IpvsClient({ socketFactory: nl.factory, timeoutMs: 200 });
    basicKernel(nl, (r) => (r.cmd === Cmd.GET_SERVICE ? [doneMessage(r.seq)] : r.cmd === Cmd.GET_INFO ? [errorMessage(r.seq, 0)] : undefined));
    await Promise.all([client.dumpServices(), client.info().catch(() => undefined), client.addService(svc), client.dumpServices(), client.zero()]);
    const socketsOf = (cmd: number): Set<number> => new Set(nl.sent.filter((r) => r.cmd === cmd).map((r) => r.socket));
    const main = [...socketsOf(Cmd.NEW_SERVICE)];
    expect(main).toHaveLength(1);
    expect([...socketsOf(Cmd.GET_INFO), ...socketsOf(Cmd.ZERO)]).toEqual([main[0], main[0]]);
    expect(maxOutstanding[main[0]!]).toBe(1);
    const dumps = [...socketsOf(Cmd.GET_SERVICE)];
    expect(dumps).toHaveLength(1);
    expect(dumps).not.toContain(main[0]);
    // One family lookup served every call.
    expect(client.requestCounts.GETFAMILY).toBe(1);
  });

  it('a timeout fails the request, discards the socket and re-resolves the family on the next call', async () => {
    let silent = true;
    basicKernel(nl, (r) => (r.cmd === Cmd.GET_INFO && silent ? [] : undefined));
    await expect(client.info()).rejects.toMatchObject({ code: 'ETIMEDOUT', command: 'GET_INFO' });
    await new Promise((r) => setImmediate(r));
    expect(nl.closed).toBe(1);
    silent = false;
    await client.info();
    expect(nl.sockets).toBe(2);
    expect(client.requestCounts.GETFAMILY).toBe(2);
  });

  it('a socket error (ENOBUFS) fails what is in flight with that errno and recovers', async () => {
    basicKernel(nl, (r) => (r.cmd === Cmd.GET_INFO ? [] : undefined));
    const p = client.info();
    await new Promise((r) => setTimeout(r, 20));
    nl.fail(0, Object.assign(new Error('Error when receiving Netlink message'), { errno: -105, code: 'ENOBUFS' }));
    // Not closed from inside the socket's own error callback (that aborts netlink@0.3.0's native code).
    expect(nl.closed).toBe(0);
    await expect(p).rejects.toMatchObject({ code: 'ENOBUFS', command: 'GET_INFO' });
    await new Promise((r) => setImmediate(r));
    expect(nl.closed).toBe(1);
    basicKernel(nl);
    await client.info();
    expect(nl.sockets).toBe(2);
  });

  it('ignores stray replies and NOOPs; an undecodable datagram resets the socket (EBADMSG)', async () => {
    let garbage = false;
    basicKernel(nl, (r) => {
      if (r.cmd !== Cmd.GET_INFO) return undefined;
      if (garbage) return [Buffer.from('ffff0000', 'hex')];
      return [errorMessage(r.seq + 1000, 0), datagram(infoReply(0x010201, 4096, { seq: r.seq })), errorMessage(r.seq, 0)];
    });
    expect((await client.info()).connTableSize).toBe(4096);
    garbage = true;
    await expect(client.info()).rejects.toMatchObject({ code: 'EBADMSG' });
  });

  it('apply: several requests per sendmsg, ACK only on the last of each, errors matched by seq', async () => {
    const ops: IpvsOp[] = [];
    for (let i = 0; i < 300; i++) {
      const s = { ...svc, port: 2000 + i };
      ops.push({ op: 'addService', service: s }, { op: 'addDestination', service: s, destination: dest });
    }
    const failing = new Set<number>();
    let ipvsIndex = 0;
    basicKernel(nl, (r) => {
      if (r.type !== FAMILY) return undefined;
      const i = ipvsIndex++;
      if (i === 5 || i === 255 || i === 599) failing.add(r.seq);
      if (failing.has(r.seq)) return [errorMessage(r.seq, i === 5 ? 17 : 3)];
      return r.flags & NLM_F_ACK ? [errorMessage(r.seq, 0)] : [];
    });
    client = new IpvsClient({ socketFactory: nl.factory, timeoutMs: 500, pipelineBatch: 256, pipelineWindow: 512 });
    const results = await client.apply(ops);
    const ipvs = nl.sent.filter((r) => r.type === FAMILY);
    expect(ipvs).toHaveLength(600);
    expect(nl.sendCalls).toBe(1 + 3); // GETFAMILY + ceil(600 / 256)
    expect(ipvs.filter((r) => r.flags & NLM_F_ACK).map((_, k) => k)).toHaveLength(3);
    expect([ipvs[255]?.flags, ipvs[511]?.flags, ipvs[599]?.flags].every((f) => ((f as number) & NLM_F_ACK) !== 0)).toBe(true);
    const failed = results.map((r, i) => (r ? `${i} ${r.code} ${r.command}` : undefined)).filter(Boolean);
    expect(failed).toEqual(['5 EEXIST NEW_DEST', '255 ESRCH NEW_DEST', '599 ESRCH NEW_DEST']);
    expect(results[5]?.message).toBe('EEXIST: NEW_DEST 192.168.56.40:2002/TCP -> 192.168.56.37:80: destination already exists');
    expect(client.requestCounts).toMatchObject({ NEW_SERVICE: 300, NEW_DEST: 300 });
  });

  it('apply: ops that cannot be encoded fail alone, the rest is sent', async () => {
    basicKernel(nl);
    const res = await client.apply([
      { op: 'addService', service: svc },
      { op: 'addService', service: { ...svc, port: 99999 } },
      { op: 'deleteService', service: svc },
    ]);
    expect(res.map((r) => r?.code)).toEqual([undefined, 'EINVAL', undefined]);
    expect(nl.sent.filter((r) => r.type === FAMILY)).toHaveLength(2);
  });

  it('apply: a lost socket fails every unconfirmed op with the socket errno', async () => {
    basicKernel(nl, (r) => (r.type === FAMILY ? [] : undefined));
    const res = await client.apply([
      { op: 'addService', service: svc },
      { op: 'addService', service: { ...svc, port: 81 } },
    ]);
    expect(res.map((r) => r?.code)).toEqual(['ETIMEDOUT', 'ETIMEDOUT']);
  });

  it('listServices: one service dump, then destination dumps on parallel sockets, results in order', async () => {
    const services = Array.from({ length: 7 }, (_, i): Service => ({ ...svc, port: 3000 + i }));
    basicKernel(nl, (r) => {
      if (r.cmd === Cmd.GET_SERVICE) return [datagram(...services.map((s) => withSeq(serviceReply({ ...s, flags: 2 }), r.seq))), doneMessage(r.seq)];
      if (r.cmd === Cmd.GET_DEST) {
        const port = r.payload.readUInt16BE(r.payload.indexOf(Buffer.from('06000400', 'hex')) + 4);
        return [datagram(withSeq(destReply({ ...dest, port, weight: port - 3000 }), r.seq)), doneMessage(r.seq)];
      }
      return undefined;
    });
    client = new IpvsClient({ socketFactory: nl.factory, dumpConcurrency: 3 });
    const list = await client.listServices();
    expect(list.map((s) => s.service.port)).toEqual(services.map((s) => s.port));
    expect(list.map((s) => s.destinations[0]?.destination.weight)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(new Set(nl.sent.filter((r) => r.cmd === Cmd.GET_DEST).map((r) => r.socket)).size).toBe(3);
    expect(client.requestCounts).toMatchObject({ GET_SERVICE: 1, GET_DEST: 7 });
  });

  it('a weight change at any table size is exactly one request', async () => {
    basicKernel(nl);
    await client.info();
    const before = client.requestCount;
    await client.updateDestination(svc, { ...dest, weight: 9 });
    expect(client.requestCount - before).toBe(1);
    const last = nl.sent[nl.sent.length - 1] as SentRequest;
    expect(last.cmd).toBe(Cmd.SET_DEST);
  });

  it('daemons, zero, flush, close', async () => {
    const d = { role: 'master' as const, interface: 'lo', syncId: 1, maxLen: 1472, group: '224.0.0.81', port: 8848, ttl: 1 };
    basicKernel(nl, (r) => (r.cmd === Cmd.GET_DAEMON ? [datagram(withSeq(daemonReply(d), r.seq)), doneMessage(r.seq)] : undefined));
    await client.startSyncDaemon({ role: 'master', interface: 'lo', syncId: 1 });
    expect(await client.listSyncDaemons()).toEqual([d]);
    await client.stopSyncDaemon('master');
    await client.zero(svc);
    await client.zero();
    await client.flushAllServices();
    await client.setTimeouts({ tcp: 10 });
    expect(nl.sent.filter((r) => r.type === FAMILY).map((r) => r.cmd)).toEqual([
      Cmd.NEW_DAEMON,
      Cmd.GET_DAEMON,
      Cmd.DEL_DAEMON,
      Cmd.ZERO,
      Cmd.ZERO,
      Cmd.FLUSH,
      Cmd.SET_CONFIG,
    ]);
    client.close();
    await expect(client.info()).rejects.toBeInstanceOf(IpvsError);
  });
});
