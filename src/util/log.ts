import { pino, type Logger } from 'pino';

/** The one structured (JSON, levelled) logger of the product. Children carry context: service, node, errno. */
export type { Logger };

export function createLogger(component: string, level: string = process.env.LVS_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { component }, timestamp: pino.stdTimeFunctions.isoTime });
}
