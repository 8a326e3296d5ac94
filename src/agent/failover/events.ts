/**
 * Kubernetes Events for VIP failovers, on the VirtualService (the agent may create Events anywhere but
 * cannot read VirtualServices: a reference by kind, namespace and name is enough for `kubectl describe`).
 */
import { API_VERSION } from '../../api/v1alpha1/meta.ts';
import type { ObjectReference } from '../../kube/events.ts';
import type { FailoverEvent } from './director-failover.ts';
import type { TakeoverCause } from './election.ts';

/** The part of EventRecorder used here. */
export interface FailoverEventSink {
  normal(regarding: ObjectReference, reason: string, note: string, action?: string): void;
}

export const REASON_TAKEN_OVER = 'VIPTakenOver';
export const REASON_RELEASED = 'VIPReleased';

export function virtualServiceRef(service: string): ObjectReference {
  const slash = service.indexOf('/');
  return { apiVersion: API_VERSION, kind: 'VirtualService', namespace: service.slice(0, slash), name: service.slice(slash + 1) };
}

/**
 * One Event per hold or release and per VirtualService on the VIP (the Lease is per VIP, the Events stay on
 * each service), with its cause: who held the VIP before and why we could take it, or why it was given up.
 */
export function recordFailoverEvent(sink: FailoverEventSink, node: string, ev: FailoverEvent): void {
  const note = ev.type === 'hold' ? `director ${node} holds VIP ${ev.vip} (won its Lease ${holdCause(ev.previousHolder, ev.cause)})` : `director ${node} released VIP ${ev.vip}: ${ev.cause}`;
  for (const service of ev.services) sink.normal(virtualServiceRef(service), ev.type === 'hold' ? REASON_TAKEN_OVER : REASON_RELEASED, note, 'Failover');
}

function holdCause(previous: string | undefined, cause: TakeoverCause): string {
  if (!previous) return 'with no previous holder';
  if (cause === 'released') return `from ${previous}, which released it`;
  if (cause === 'expired') return `from ${previous}, which stopped renewing it`;
  return `from ${previous}`;
}
