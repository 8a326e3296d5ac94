/**
 * Kubernetes Events for VIP failovers, on the VirtualService (the agent may create Events anywhere but
 * cannot read VirtualServices: a reference by kind, namespace and name is enough for `kubectl describe`).
 */
import { API_VERSION } from '../../api/v1alpha1/meta.ts';
import type { ObjectReference } from '../../kube/events.ts';
import type { FailoverEvent } from './director-failover.ts';

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

/** One Event per hold or release, with its cause: who held the VIP before, or why it was given up. */
export function recordFailoverEvent(sink: FailoverEventSink, node: string, ev: FailoverEvent): void {
  const ref = virtualServiceRef(ev.service);
  if (ev.type === 'hold') {
    const prev = ev.previousHolder ? `from ${ev.previousHolder}` : 'with no previous holder';
    sink.normal(ref, REASON_TAKEN_OVER, `director ${node} holds VIP ${ev.vip} (won its Lease ${prev})`, 'Failover');
  } else {
    sink.normal(ref, REASON_RELEASED, `director ${node} released VIP ${ev.vip}: ${ev.cause}`, 'Failover');
  }
}
