// The agent DaemonSets the controller writes: the director agents run the VIP election with the failover
// settings of the controller config (the chart's `failover` values); the realserver agents never do.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig, loadConfig } from '../../../src/controller/config.ts';
import { agentDaemonSet, failoverArgs } from '../../../src/controller/daemonsets.ts';

const argsOf = (ds: ReturnType<typeof agentDaemonSet>): string[] => ds.spec!.template.spec!.containers[0]!.args!;

function configFile(json: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), 'lvs-config-')), 'config.json');
  writeFileSync(file, JSON.stringify(json));
  return file;
}

describe('agent DaemonSets and failover', () => {
  it('director agents elect the VIP holder by default; realserver agents hold no VIP and do not', () => {
    const cfg = defaultConfig();
    expect(argsOf(agentDaemonSet('director', 'lvs-system', cfg.agent))).toEqual([
      '--cluster', '--node', '$(NODE_NAME)', '--namespace', '$(POD_NAMESPACE)', '--metrics-address', '0.0.0.0:9120',
      '--vip-election', '--failover-lease-seconds', '2', '--failover-renew-ms', '500', '--sync-id', '1',
    ]);
    expect(argsOf(agentDaemonSet('realserver', 'lvs-system', cfg.agent))).not.toContain('--vip-election');
  });

  it('passes the configured settings, and none when failover is off', () => {
    const cfg = loadConfig(configFile({ failover: { leaseDurationSeconds: 4, renewIntervalMilliseconds: 750, syncId: 9 } }));
    expect(cfg.failover).toEqual({ enabled: true, leaseDurationSeconds: 4, renewIntervalMilliseconds: 750, syncId: 9 });
    expect(cfg.agent.failover).toEqual(cfg.failover);
    const args = argsOf(agentDaemonSet('director', 'lvs-system', cfg.agent));
    expect(args.slice(args.indexOf('--vip-election'))).toEqual(['--vip-election', '--failover-lease-seconds', '4', '--failover-renew-ms', '750', '--sync-id', '9']);
    const off = loadConfig(configFile({ failover: { enabled: false } }));
    expect(argsOf(agentDaemonSet('director', 'lvs-system', off.agent)).filter((a) => a.startsWith('--') && /vip|failover|sync/.test(a))).toEqual([]);
    expect(failoverArgs('director', undefined)).toEqual([]);
  });

  it('passes the director heartbeat interval when set (0: off), the agent default when not (null from old values)', () => {
    const on = loadConfig(configFile({ failover: { heartbeatIntervalMilliseconds: 200 } }));
    expect(failoverArgs('director', on.failover)).toEqual(expect.arrayContaining(['--failover-heartbeat-ms', '200']));
    const off = loadConfig(configFile({ failover: { heartbeatIntervalMilliseconds: 0 } }));
    expect(failoverArgs('director', off.failover)).toEqual(expect.arrayContaining(['--failover-heartbeat-ms', '0']));
    const old = loadConfig(configFile({ failover: { heartbeatIntervalMilliseconds: null } }));
    expect(old.failover).not.toHaveProperty('heartbeatIntervalMilliseconds');
    expect(failoverArgs('director', old.failover)).not.toContain('--failover-heartbeat-ms');
  });

  it.each([
    [{ leaseDurationSeconds: 1, renewIntervalMilliseconds: 500 }, /failover\.renewIntervalMilliseconds: 500 must be .* less than half of leaseDurationSeconds \(1 s\)/],
    [{ leaseDurationSeconds: 0 }, /failover\.leaseDurationSeconds: 0 is not a whole number/],
    [{ leaseDurationSeconds: 2.5 }, /failover\.leaseDurationSeconds: 2\.5/],
    [{ syncId: 0 }, /failover\.syncId: 0 is not 1\.\.255/],
    [{ enabled: 'yes' }, /failover\.enabled: "yes" is not a boolean/],
    [{ heartbeatIntervalMilliseconds: 401 }, /failover\.heartbeatIntervalMilliseconds: 401 must be 0 \(off\) or a positive whole number of at most a fifth of leaseDurationSeconds \(2 s\)/],
    [{ heartbeatIntervalMilliseconds: -1 }, /failover\.heartbeatIntervalMilliseconds: -1/],
  ])('refuses failover %j at start-up, with the file and the setting', (failover, message) => {
    const file = configFile({ failover });
    expect(() => loadConfig(file)).toThrow(message);
    expect(() => loadConfig(file)).toThrow(file);
  });
});
