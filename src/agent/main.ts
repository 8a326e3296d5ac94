#!/usr/bin/env node
/**
 * lvs-agent: programs IPVS, VIPs and sysctls on one node.
 *
 *   lvs-agent --cluster --node NAME [--kubeconfig FILE] [--interface IF] [--state-dir DIR] ...
 *             [--vip-election [--namespace NS] [--failover-lease-seconds 2] [--failover-renew-ms 500] [--sync-id 1]
 *                             [--failover-heartbeat-ms 100|0] [--failover-heartbeat-group 224.0.0.83:7838]]
 *   lvs-agent --config DIR --node NAME [--director] [--interface IF] [--state-dir DIR]
 *             [--metrics-address HOST:PORT|none] [--resync SECONDS] [--status-file FILE] [--once]
 *   lvs-agent teardown [--state-dir DIR]      remove everything the agent added, restore sysctls
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger, logEventLoopStalls, logLongGcPauses } from '../util/log.ts';
import { runMain, untilTerminated } from '../util/process.ts';
import { IpvsClient } from '../ipvs/client.ts';
import { RtNetif } from '../netif/rtnetlink.ts';
import { BackgroundAnnouncer, CommandArpAnnouncer, CommandVipConflictProbe } from '../netif/arp.ts';
import { SysctlManager } from '../sysctl/manager.ts';
import { FileLedgerStore } from '../sysctl/ledger.ts';
import { HealthChecker } from './health/checker.ts';
import { FileStateStore } from './state.ts';
import { DirectorReconciler } from './director/reconciler.ts';
import { RealServerReconciler } from './realserver/reconciler.ts';
import { Agent, failedCount } from './agent.ts';
import { createReportSink } from './report.ts';
import { loadConfigDir, planStandalone } from './standalone.ts';
import { defaultRouteInterface } from './hostinfo.ts';
import { createLvsMetrics } from './metrics/registry.ts';
import { parseListenAddress, startMetricsServer } from './metrics/server.ts';
import { yieldTakenOverVips } from './failover/startup.ts';
import { HEARTBEAT_GROUP, HEARTBEAT_PORT, UdpHeartbeatTransport, parseHeartbeatGroup } from './failover/heartbeat.ts';
import { ipvsSnapshotReader } from './metrics/snapshot.ts';
import type { ClusterSource } from './cluster.ts';
import type { DirectorFailover } from './failover/director-failover.ts';
import type { V1Lease } from '@kubernetes/client-node';

const USAGE = `usage: lvs-agent --cluster --node NAME [--kubeconfig FILE] [--interface IF] [--state-dir DIR]
                 [--metrics-address HOST:PORT|none] [--resync SECONDS] [--status-file FILE]
                 [--vip-election [--namespace NS] [--failover-lease-seconds N] [--failover-renew-ms MS] [--sync-id ID]
                                 [--failover-heartbeat-ms MS|0] [--failover-heartbeat-group ADDR:PORT]]
       lvs-agent --config DIR --node NAME [--director] [--interface IF] [--state-dir DIR]
                 [--metrics-address HOST:PORT|none] [--resync SECONDS] [--status-file FILE] [--once]
       lvs-agent teardown [--state-dir DIR]`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      cluster: { type: 'boolean', default: false },
      kubeconfig: { type: 'string' },
      namespace: { type: 'string' },
      node: { type: 'string' },
      director: { type: 'boolean', default: false },
      interface: { type: 'string' },
      'state-dir': { type: 'string', default: '/var/lib/lvs-operator' },
      resync: { type: 'string', default: '10' },
      'metrics-address': { type: 'string', default: '0.0.0.0:9120' },
      'status-file': { type: 'string' },
      once: { type: 'boolean', default: false },
      // Director failover (cluster mode): VIP holder elected on a Lease per VIP, plan holdVip = preference.
      // The controller's director DaemonSet passes these (chart values failover.*).
      'vip-election': { type: 'boolean', default: false },
      'failover-lease-seconds': { type: 'string', default: '2' },
      'failover-renew-ms': { type: 'string', default: '500' },
      'sync-id': { type: 'string', default: '1' },
      // Director heartbeats (multicast UDP on the VIPs' segments): early takeover of a silent holder's Lease.
      'failover-heartbeat-ms': { type: 'string', default: '100' },
      'failover-heartbeat-group': { type: 'string', default: `${HEARTBEAT_GROUP}:${HEARTBEAT_PORT}` },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const command = positionals[0] ?? 'run';
  const node = values.node ?? (await import('node:os')).hostname();
  const log = createLogger('agent').child({ node });
  const stopGcLog = logLongGcPauses(log);
  const stopStallLog = logEventLoopStalls(log);
  const stateDir = values['state-dir'];
  const ipvs = new IpvsClient({ logger: log });
  const netif = new RtNetif();
  const sysctl = new SysctlManager({ ledger: new FileLedgerStore(path.join(stateDir, 'sysctl-ledger.json')), logger: log });
  const state = new FileStateStore(path.join(stateDir, 'agent-state.json'));
  const defaultInterface = values.interface ? async (): Promise<string> => values.interface as string : defaultRouteInterface;
  const health = new HealthChecker({ log: log.child({ component: 'health' }) });
  const metrics = createLvsMetrics({ readSnapshot: ipvsSnapshotReader(ipvs, state), log });
  let cluster: ClusterSource | undefined;
  let failover: DirectorFailover | undefined;
  let failoverEvents: { close(): Promise<void> } | undefined;
  let leaseWatch: { stop(): Promise<void> } | undefined;
  const reports = createReportSink({ metrics, statusFile: values['status-file'], also: (run) => cluster?.report(run) });
  const agent = new Agent({
    node,
    log,
    health,
    resyncSeconds: Number(values.resync),
    director: new DirectorReconciler({
      ipvs, netif, sysctl, state, log, defaultInterface,
      arp: new BackgroundAnnouncer(new CommandArpAnnouncer(), {
        onError: (err, ifname, vip) => log.warn({ vip, interface: ifname, errno: err.errno, err: err.message }, 'VIP announcement failed: neighbours keep the old MAC until their entry ages out'),
      }),
      holdsVip: (s) => (failover ? failover.holdsVip(s) : s.holdVip),
      vipLifetimeSeconds: (s) => failover?.vipLifetimeSeconds(s),
    }),
    realServer: new RealServerReconciler({ netif, sysctl, state, log, defaultInterface }),
    onReport: reports.onReport,
    onError: () => metrics.recordReconcile(0, 'exception'),
    onPlan: (plan) => {
      failover?.setPlan(plan.director).catch((e: unknown) => log.error({ err: (e as Error).message }, 'VIP elections not updated'));
    },
  });

  let server: { close(): Promise<void> } | undefined;
  const close = async (): Promise<void> => {
    if (failover) {
      // Hand the Leases over (a standby takes over within a retry) and unbind our VIPs before exiting.
      await failover.stop({ release: true });
      await leaseWatch?.stop();
      await agent.resync().catch(() => undefined);
      await failoverEvents?.close();
    }
    agent.stop();
    await cluster?.stop();
    await server?.close();
    state.flush();
    reports.flush();
    ipvs.close();
    netif.close();
    stopGcLog();
    stopStallLog();
  };

  if (command === 'teardown') {
    const run = await agent.teardown();
    await close();
    const failed = failedCount(run) > 0;
    log.info({ failed }, 'teardown done');
    return failed ? 1 : 0;
  }
  if (command !== 'run') {
    console.error(`unknown command "${command}"\n${USAGE}`);
    return 2;
  }
  if (values.cluster) {
    // Before the Kubernetes client loads (seconds on a slow node): give up VIPs taken over while we were down.
    const conflictProbe = new CommandVipConflictProbe();
    const yielded = values['vip-election'] ? yieldTakenOverVips({ vips: state.load().vips, probe: conflictProbe, netif, log: log.child({ component: 'failover' }) }) : Promise.resolve(new Set<string>());
    // Loaded only here: the Kubernetes client is large, and standalone agents never need it.
    const [{ ClusterSource: Source }, { loadKubeConfig }] = await Promise.all([import('./cluster.ts'), import('../kube/kubeconfig.ts')]);
    const kc = loadKubeConfig(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}).kc;
    if (values['vip-election']) {
      const [{ DirectorFailover: Failover, directorVipsBound }, { SyncDaemons }, { keepAliveLeaseApi, leaseObject }, { EventRecorder, eventsV1Sink }, { recordFailoverEvent }, { Informer }] = await Promise.all([
        import('./failover/director-failover.ts'), import('./failover/syncd.ts'), import('../kube/leader.ts'), import('../kube/events.ts'), import('./failover/events.ts'),
        import('../kube/informer.ts'),
      ]);
      const events = new EventRecorder({ sink: eventsV1Sink(kc, { logger: log }), reportingController: 'lvs.operator.dev/agent', reportingInstance: node, logger: log });
      failoverEvents = events;
      // VIPs this agent had bound as a director before a restart (or an upgrade from per-service Leases):
      // their elections start 'retained' (no drop, no hand-over), unless the start-up check gave them up.
      const given = await yielded;
      const boundAtStart = directorVipsBound(state.load().vips);
      for (const vip of given) boundAtStart.delete(vip);
      const vipInterface = async (vip: string): Promise<string> => state.load().vips.find((v) => v.vip === vip)?.ifname ?? (await defaultInterface());
      const namespace = values.namespace ?? process.env['POD_NAMESPACE'] ?? 'lvs-system';
      const heartbeatMs = Number(values['failover-heartbeat-ms']);
      if (!(heartbeatMs >= 0)) throw new Error(`--failover-heartbeat-ms must be a number of milliseconds ≥ 0 (0: off), got "${values['failover-heartbeat-ms']}"`);
      const heartbeatGroup = parseHeartbeatGroup(values['failover-heartbeat-group']);
      const elections = new Failover({
        // Renewals every renewIntervalMilliseconds for every VIP: over kept-alive connections, not a TLS handshake each.
        api: keepAliveLeaseApi(kc, `lvs-agent/${node}`),
        namespace,
        node,
        settings: { leaseDurationSeconds: Number(values['failover-lease-seconds']), renewIntervalMilliseconds: Number(values['failover-renew-ms']) },
        log: log.child({ component: 'failover' }),
        heldAtStart: (vip) => boundAtStart.delete(vip), // once: a later election for the VIP starts as a standby
        conflictProbe: async (vip, signal) => conflictProbe.answeredBy(await vipInterface(vip), vip, signal),
        // Where each VIP was bound (the state file), one address dump per interface per round.
        refreshVipLifetimes: async (vips, lifetimeSeconds) => {
          // One pass over the state file, not a search per VIP (this runs every renew interval).
          const bound = new Map(state.load().vips.map((v) => [v.vip, v.ifname]));
          const byIf = new Map<string, string[]>();
          for (const vip of vips) {
            const ifname = bound.get(vip) ?? (await defaultInterface());
            const list = byIf.get(ifname);
            if (list) list.push(vip);
            else byIf.set(ifname, [vip]);
          }
          for (const [ifname, list] of byIf) await netif.setVipLifetimes(ifname, list, lifetimeSeconds);
        },
        metrics,
        ...(heartbeatMs > 0
          ? {
            heartbeat: {
              transport: new UdpHeartbeatTransport({ ...heartbeatGroup, log: log.child({ component: 'heartbeat' }) }),
              intervalMs: heartbeatMs,
              interfaceOf: async (s) => s.interface ?? (await defaultInterface()),
            },
          }
          : {}),
        syncDaemons: new SyncDaemons({ ops: ipvs, interface: defaultInterface, syncId: Number(values['sync-id']), log }),
        // A VIP taken (bind + gratuitous ARP through the reconciler) or given up (unbind): its services again.
        onChange: (ev) => {
          const t0 = performance.now();
          return agent.touch(ev.services).then(
            (run) => log.info({ vip: ev.vip, change: ev.type, ms: Math.round(performance.now() - t0), runMs: Math.round(run.durationMs) }, ev.type === 'hold' ? 'VIP bound and announced after the takeover' : 'VIP unbound after the release'),
            (e: unknown) => log.error({ vip: ev.vip, err: (e as Error).message }, 'reconcile after failover failed'),
          ).finally(() => {
            // The Event (an API write) after the VIP: nothing of it runs before the bind.
            recordFailoverEvent(events, node, ev);
          });
        },
      });
      failover = elections;
      // Lease renewals as they happen (a watch) besides each election's polls: a standby counts the holder's
      // lease duration from the renewal itself, not from its next poll up to a retry period later.
      const leases = new Informer<V1Lease>(kc, { path: `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`, name: 'leases', logger: log.child({ component: 'failover' }) });
      const seen = (l: V1Lease): void => {
        const name = l.metadata?.name;
        if (name?.startsWith('lvs-vip-')) elections.elections.observe(name, leaseObject(l));
      };
      leases.on('add', seen);
      leases.on('update', seen);
      leases.start().catch((e: unknown) => log.warn({ err: (e as Error).message }, 'Lease watch stopped'));
      leaseWatch = leases;
    }
    cluster = new Source({ kc, node, agent, log });
    await cluster.start();
  } else if (!values.config) {
    console.error(`--config DIR or --cluster is required\n${USAGE}`);
    return 2;
  }
  const configDir = values.config;
  const load = (): void => {
    if (!configDir) return;
    const config = loadConfigDir(configDir);
    for (const p of config.problems) log.error({ file: p.file, document: p.document }, p.message);
    const { nodePlan } = planStandalone(config, { node, director: values.director });
    agent.setPlan(nodePlan);
  };
  log.info({ mode: values.cluster ? 'cluster' : 'standalone', config: configDir }, 'lvs-agent started');
  load();
  if (values.once) {
    const run = await agent.reconcile();
    await close();
    return failedCount(run) === 0 ? 0 : 1;
  }
  agent.start();
  const metricsAddress = values['metrics-address'];
  if (metricsAddress !== 'none') {
    server = await startMetricsServer({ ...parseListenAddress(metricsAddress), registry: metrics.registry, healthz: () => agent.lastReport !== undefined, log });
  }
  let debounce: NodeJS.Timeout | undefined;
  if (configDir) fs.watch(configDir, () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      try {
        load();
      } catch (e) {
        log.error({ err: (e as Error).message }, 'reloading config failed');
      }
    }, 200);
  });
  process.on('SIGHUP', load);
  await untilTerminated();
  // Leave the kernel as it is: a restarted agent adopts its objects without dropping traffic.
  log.info('stopping (kernel state left in place)');
  await close();
  return 0;
}

runMain(main);
