#!/usr/bin/env node
/**
 * lvs-controller: plans every node's LVS work from VirtualServices, RealServers and Nodes, runs the agent
 * DaemonSets, and reports status.
 *
 *   lvs-controller [--kubeconfig FILE] [--namespace NS] [--config FILE] [--leader-elect]
 *                  [--metrics-address HOST:PORT] [--health-address HOST:PORT] [--no-daemonsets]
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { createLogger } from '../util/log.ts';
import { runMain, untilTerminated } from '../util/process.ts';
import { loadKubeConfig, inClusterNamespace } from '../kube/kubeconfig.ts';
import { LeaderElector, keepAliveLeaseApi } from '../kube/leader.ts';
import { EventRecorder, eventsV1Sink } from '../kube/events.ts';
import { parseListenAddress, startMetricsServer } from '../agent/metrics/server.ts';
import { loadConfig } from './config.ts';
import { Controller } from './controller.ts';

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      kubeconfig: { type: 'string' },
      namespace: { type: 'string' },
      config: { type: 'string' },
      'leader-elect': { type: 'boolean', default: false },
      'metrics-address': { type: 'string', default: '0.0.0.0:8080' },
      'health-address': { type: 'string', default: '0.0.0.0:8081' },
      'no-daemonsets': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log('usage: lvs-controller [--kubeconfig FILE] [--namespace NS] [--config FILE] [--leader-elect] [--metrics-address HOST:PORT] [--no-daemonsets]');
    return 0;
  }
  const log = createLogger('controller');
  const { kc } = loadKubeConfig(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {});
  const namespace = values.namespace ?? inClusterNamespace() ?? 'lvs-system';
  const config = loadConfig(values.config);
  const identity = process.env.POD_NAME ?? `${os.hostname()}-${process.pid}`;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const events = new EventRecorder({ sink: eventsV1Sink(kc, { logger: log }), reportingInstance: identity, logger: log });
  const controller = new Controller({ kc, namespace, config, log, events, registry, manageDaemonSets: !values['no-daemonsets'] });

  // Metrics and probes on separate ports, as the chart expects (8080 metrics, 8081 /healthz and /readyz).
  const listen = (address: string) => {
    return startMetricsServer({
      ...parseListenAddress(address),
      registry,
      healthz: () => true,
      readyz: () => controller.vs.hasSynced() && controller.plans.hasSynced(),
      log,
    });
  };
  const servers = [await listen(values['metrics-address']), await listen(values['health-address'])];

  await controller.start();
  log.info({ namespace, identity }, 'caches synced');
  let elector: LeaderElector | undefined;
  if (values['leader-elect']) {
    elector = new LeaderElector({
      api: keepAliveLeaseApi(kc, 'lvs-controller'),
      namespace,
      name: 'lvs-operator-controller',
      identity,
      logger: log,
      onStartedLeading: () => {
        log.info('leading');
        controller.setLeading(true);
      },
      onStoppedLeading: () => {
        log.warn('lost leadership');
        controller.setLeading(false);
      },
    });
    elector.start();
  } else {
    controller.setLeading(true);
  }

  await untilTerminated();
  log.info('stopping');
  controller.setLeading(false);
  await elector?.stop({ release: true });
  await controller.stop();
  await events.close();
  await Promise.all(servers.map((s) => s.close()));
  return 0;
}

runMain(main);
