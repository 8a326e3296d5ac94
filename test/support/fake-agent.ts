// An agent over in-memory fakes (IPVS, interfaces with eth0 up, sysctls, state), every run it reports kept:
// the setup the agent's unit tests share. `director` builds the director reconciler (a subclass that slows or
// logs its runs, say); `agent` adds or overrides Agent options.
import { FakeIpvs } from '../../src/ipvs/fake.ts';
import { FakeNetif } from '../../src/netif/fake.ts';
import { FakeSysctl, defaultSysctls } from '../../src/sysctl/fake.ts';
import { MemoryStateStore } from '../../src/agent/state.ts';
import { DirectorReconciler, type DirectorDeps } from '../../src/agent/director/reconciler.ts';
import { RealServerReconciler } from '../../src/agent/realserver/reconciler.ts';
import { HealthChecker } from '../../src/agent/health/checker.ts';
import { Agent, type AgentOptions, type AgentRun } from '../../src/agent/agent.ts';
import { createLogger } from '../../src/util/log.ts';

export function fakeAgent<D extends DirectorReconciler = DirectorReconciler>(opts: {
  director?: (deps: DirectorDeps) => D;
  agent?: Partial<AgentOptions>;
} = {}) {
  const log = createLogger('test', 'silent');
  const ipvs = new FakeIpvs();
  const netif = new FakeNetif();
  netif.addLink('eth0', { up: true });
  const sysctl = new FakeSysctl(defaultSysctls(['eth0']));
  const state = new MemoryStateStore();
  const runs: AgentRun[] = [];
  const deps: DirectorDeps = { ipvs, netif, sysctl, state, log, defaultInterface: async () => 'eth0' };
  const director = opts.director ? opts.director(deps) : (new DirectorReconciler(deps) as D);
  const agent = new Agent({
    node: 'n1', log,
    health: new HealthChecker({ probe: async () => ({ ok: true, reason: 'connected' }), log }),
    director,
    realServer: new RealServerReconciler({ netif, sysctl, state, log, defaultInterface: async () => 'eth0' }),
    onReport: (r) => runs.push(r),
    ...opts.agent,
  });
  return { ipvs, netif, sysctl, state, runs, director, agent };
}
