export * from './meta.ts';
export * from './virtualservice.ts';
export * from './realserver.ts';
export * from './conditions.ts';
export * from './resources.ts';
export * from './nodeplan.ts';
export * from './vippool.ts';
