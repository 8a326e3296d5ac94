/** The thin Kubernetes layer shared by the controller and the agent. */
export * from './backoff.ts';
export * from './clock.ts';
export * from './errors.ts';
export * from './events.ts';
export * from './http.ts';
export * from './informer.ts';
export * from './kubeconfig.ts';
export * from './leader.ts';
export * from './request.ts';
export { CustomObjects } from './status.ts';
export type { ApplyConfiguration, CustomResource, CustomObjectsOptions, ObjectKey, CustomObject } from './status.ts';
export * from './workqueue.ts';
