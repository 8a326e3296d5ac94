/** Process plumbing shared by the lvs-agent and lvs-controller entry points. */

/** Resolves on the first SIGTERM or SIGINT. */
export function untilTerminated(): Promise<void> {
  return new Promise<void>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => resolve());
  });
}

/** Runs a CLI main and exits with its code; a thrown error becomes one JSON fatal log line and exit 1. */
export function runMain(main: (argv: string[]) => Promise<number>): void {
  // Library timers (backoff, resync) are unref'd and signal handlers do not keep Node alive: without this a
  // main still waiting for its first list (an apiserver answering 429 at start-up, metrics disabled) would
  // find an empty event loop and exit 0, silently.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  main(process.argv.slice(2)).finally(() => clearInterval(keepAlive)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(JSON.stringify({ level: 'fatal', msg: (e as Error).message }));
      process.exit(1);
    },
  );
}
