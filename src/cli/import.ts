/**
 * `kubectl lvs import`: ipvsadm rules (`ipvsadm-save`, `ipvsadm -Sn`, or an `ipvsadm -R` file) into
 * VirtualService and RealServer manifests. Pure: text in, objects and per-line issues out.
 *
 * Mapping: each virtual service (-A) becomes one VirtualService, each realserver (-a) one RealServer that
 * carries the label SERVICE_LABEL=<VirtualService name>, which the VirtualService selects. Names are derived
 * from the rule itself (protocol, address, port), so importing the same rules twice gives the same names.
 * What the API cannot express is reported with its line number and left out; never dropped silently.
 */
import { API_VERSION } from '../api/v1alpha1/meta.ts';
import { SCHEDULERS, type ForwardingMethod, type Protocol, type SchedulerFlag, type VirtualService, type VirtualServiceSpec } from '../api/v1alpha1/virtualservice.ts';
import type { RealServer, RealServerSpec } from '../api/v1alpha1/realserver.ts';
import { validateObject, ValidationError, type KubeObject } from '../api/validate.ts';
import { SvcFlag } from '../ipvs/constants.ts';
import { formatIPv4Netmask } from '../ipvs/addr.ts';
import { applyIpvsadmRules, parseIpvsadmRules, schedFlagNames, type ParseRulesOptions, type TableService } from '../ipvs/ipvsadm.ts';
import type { Destination, Service } from '../ipvs/types.ts';

/** The label that ties an imported RealServer to its VirtualService. */
export const SERVICE_LABEL = 'lvs.operator.dev/virtual-service';

export type IssueKind = 'error' | 'unsupported';

export interface ImportIssue {
  line: number;
  text: string;
  kind: IssueKind;
  message: string;
}

export interface ImportOptions extends ParseRulesOptions {
  /** metadata.namespace of every object; left out when absent (kubectl apply -n decides). */
  namespace?: string;
  /** Prepended to every name, e.g. "legacy-". */
  prefix?: string;
  /**
   * Health check of the imported services. ipvsadm rules have none, so the default is None (what
   * ipvsadm did); TCP adds a connect check, which a UDP service's realservers may fail.
   */
  healthCheck?: 'None' | 'TCP';
}

export interface ImportedObject {
  /** The rule lines the object comes from (comments in the YAML output). */
  source: Array<{ line: number; text: string }>;
  object: VirtualService | RealServer;
}

export interface ImportResult {
  objects: ImportedObject[];
  issues: ImportIssue[];
}

const PROTOCOL: Record<NonNullable<Service['protocol']>, Protocol> = { tcp: 'TCP', udp: 'UDP', sctp: 'SCTP' };
const FORWARDING: Record<Destination['forwarding'], ForwardingMethod> = { droute: 'DirectRouting', local: 'DirectRouting', masq: 'NAT', tunnel: 'Tunnel' };
const SWITCH: Record<ForwardingMethod, string> = { DirectRouting: '-g', NAT: '-m', Tunnel: '-i' };

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** An address as a name part: 192.168.56.40 → 192-168-56-40, 2001:db8::1 → 2001-db8--1 (canonical text). */
export const addressPart = (address: string): string => address.toLowerCase().replaceAll('.', '-').replaceAll(':', '-');

/** tcp-192-168-56-40-80: a DNS-1123 label (≤ 49 characters without prefix, so it also fits a label value). */
export function serviceName(s: Service, prefix = ''): string {
  return `${prefix}${s.protocol ?? 'fwm'}-${addressPart(s.address ?? String(s.fwmark))}-${s.port ?? 0}`;
}

/** <service name>-192-168-56-37-80: a DNS-1123 subdomain (≤ 113 characters). */
export function realServerName(service: string, d: Destination): string {
  return `${service}-${addressPart(d.address)}-${d.port}`;
}

function validate(obj: KubeObject): string[] {
  try {
    validateObject(obj);
    return [];
  } catch (e) {
    if (e instanceof ValidationError) return e.causes;
    throw e;
  }
}

/** Why the API cannot express this service, or undefined when it can. */
function unsupportedService(s: Service): string | undefined {
  if (s.fwmark !== undefined) return `firewall-mark services (-f ${s.fwmark}) are not supported: a VirtualService is one VIP, port and protocol`;
  if (s.port === 0) return 'port 0 (every port of the VIP, used with persistence) is not supported: a VirtualService has one port, 1-65535';
  if (!(SCHEDULERS as readonly string[]).includes(s.scheduler)) return `scheduler "${s.scheduler}" is not supported (one of ${SCHEDULERS.join(' ')})`;
  if (s.pe) return `persistence engine --pe ${s.pe} is not supported`;
  const hashFlags = s.scheduler === 'sh' || s.scheduler === 'mh';
  const schedBits = s.flags & (SvcFlag.SCHED1 | SvcFlag.SCHED2 | SvcFlag.SCHED3);
  if (schedBits && (!hashFlags || s.flags & SvcFlag.SCHED3)) {
    return `scheduler flags ${schedFlagNames(s.scheduler, schedBits).join(',')} are not supported: only sh-fallback/sh-port with sh and mh-fallback/mh-port with mh`;
  }
  return undefined;
}

function serviceSpec(s: Service, forwarding: ForwardingMethod, name: string, opts: ImportOptions): VirtualServiceSpec {
  const spec: VirtualServiceSpec = {
    vip: s.address as string,
    port: s.port as number,
    protocol: PROTOCOL[s.protocol as NonNullable<Service['protocol']>],
    scheduler: s.scheduler as VirtualServiceSpec['scheduler'],
    forwarding,
    realServerSelector: { matchLabels: { [SERVICE_LABEL]: name } },
  };
  const flags = schedFlagNames(s.scheduler, s.flags & (SvcFlag.SCHED1 | SvcFlag.SCHED2));
  if (flags.length) spec.schedulerFlags = flags as SchedulerFlag[];
  if (s.flags & SvcFlag.ONEPACKET) spec.onePacket = true;
  if (s.flags & SvcFlag.PERSISTENT) {
    spec.persistence = { timeoutSeconds: s.timeout };
    const full = s.af === 'ipv4' ? 0xffffffff : 128;
    if (s.netmask >>> 0 !== full) spec.persistence.netmask = s.af === 'ipv4' ? formatIPv4Netmask(s.netmask) : String(s.netmask);
  }
  spec.healthCheck = { type: opts.healthCheck ?? 'None' } as VirtualServiceSpec['healthCheck'];
  return spec;
}

function realServerSpec(s: Service, d: Destination): RealServerSpec {
  const spec: RealServerSpec = { address: d.address, weight: d.weight };
  if (d.port !== s.port) spec.port = d.port;
  if (d.upperThreshold) spec.upperThreshold = d.upperThreshold;
  if (d.lowerThreshold) spec.lowerThreshold = d.lowerThreshold;
  return spec;
}

const metadata = (name: string, opts: ImportOptions, labels?: Record<string, string>): VirtualService['metadata'] => ({
  name,
  ...(opts.namespace ? { namespace: opts.namespace } : {}),
  ...(labels ? { labels } : {}),
});

export function importRules(text: string, opts: ImportOptions = {}): ImportResult {
  const prefix = opts.prefix ?? '';
  if (prefix && !/^[a-z0-9]([-a-z0-9]{0,12}[-a-z0-9])?$/.test(prefix)) throw new Error(`--prefix "${prefix}" must be at most 14 lower-case letters, digits and dashes, starting with a letter or digit`);
  const issues: ImportIssue[] = [];
  const issue = (line: number, text: string, kind: IssueKind, message: string): void => void issues.push({ line, text, kind, message });

  const parsed = parseIpvsadmRules(text, opts);
  for (const p of parsed.problems) issue(p.line, p.text, 'error', p.message);
  for (const r of parsed.rules) {
    if (r.command === 'other') issue(r.line, r.text, 'unsupported', `ipvsadm ${r.option} is not supported: it is global kernel configuration, not a virtual service`);
  }
  const table = applyIpvsadmRules(parsed.rules);
  for (const p of table.problems) issue(p.line, p.text, 'error', p.message);
  const lineText = new Map(parsed.rules.map((r) => [r.line, r.text]));

  const objects: ImportedObject[] = [];
  for (const entry of table.services) objects.push(...importService(entry, opts, prefix, lineText, issue));
  issues.sort((a, b) => a.line - b.line);
  return { objects, issues };
}

function importService(
  entry: TableService,
  opts: ImportOptions,
  prefix: string,
  lineText: Map<number, string>,
  issue: (line: number, text: string, kind: IssueKind, message: string) => void,
): ImportedObject[] {
  const s = entry.service;
  const svcText = lineText.get(entry.line) ?? '';
  const dropDestinations = (why: string): void => {
    for (const d of entry.destinations) issue(d.line, lineText.get(d.line) ?? '', 'unsupported', `realserver of the service on line ${entry.line}, which is not imported (${why})`);
  };
  const why = unsupportedService(s);
  if (why) {
    issue(entry.line, svcText, 'unsupported', why);
    dropDestinations('not supported');
    return [];
  }
  // One forwarding method per VirtualService: the first realserver's (ipvsadm's default -g without any).
  const first = entry.destinations[0]?.destination.forwarding;
  const forwarding = first ? FORWARDING[first] : 'DirectRouting';
  const name = serviceName(s, prefix);
  const vs: VirtualService = { apiVersion: API_VERSION, kind: 'VirtualService', metadata: metadata(name, opts), spec: serviceSpec(s, forwarding, name, opts) };
  const vsProblems = validate(vs as unknown as KubeObject);
  if (vsProblems.length) {
    issue(entry.line, svcText, 'unsupported', `not a valid VirtualService: ${vsProblems.join('; ')}`);
    dropDestinations('invalid');
    return [];
  }
  const out: ImportedObject[] = [{ source: [{ line: entry.line, text: svcText }], object: vs }];
  for (const { destination: d, line } of entry.destinations) {
    const text = lineText.get(line) ?? '';
    if (FORWARDING[d.forwarding] !== forwarding) {
      issue(line, text, 'unsupported', `${SWITCH[FORWARDING[d.forwarding]]} (${FORWARDING[d.forwarding]}) differs from this service's first realserver (${SWITCH[forwarding]}, ${forwarding}): a VirtualService has one forwarding method for all its realservers`);
      continue;
    }
    if (d.forwarding === 'tunnel' && d.tunnelType !== 'ipip') {
      issue(line, text, 'unsupported', `--tun-type ${d.tunnelType} is not supported: Tunnel forwarding is IPIP`);
      continue;
    }
    const rs: RealServer = {
      apiVersion: API_VERSION,
      kind: 'RealServer',
      metadata: metadata(realServerName(name, d), opts, { [SERVICE_LABEL]: name }),
      spec: realServerSpec(s, d),
    };
    const rsProblems = validate(rs as unknown as KubeObject);
    if (rsProblems.length) {
      issue(line, text, 'unsupported', `not a valid RealServer: ${rsProblems.join('; ')}`);
      continue;
    }
    out.push({ source: [{ line, text }], object: rs });
  }
  if (!DNS_LABEL.test(name)) throw new Error(`internal: generated name ${name} is not a DNS-1123 label`);
  return out;
}
