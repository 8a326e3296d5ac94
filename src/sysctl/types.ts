import type { SysctlKey } from './keys.ts';

/** One sysctl a role needs: the exact value, and why (kept for logs and the RealServer status). */
export interface SysctlSetting {
  readonly key: SysctlKey;
  readonly value: string;
  readonly reason: string;
}

/**
 * Claims on sysctls by owners (e.g. one per VirtualService on this node). A value is set on the first claim,
 * its original recorded; it is restored when the last claimant releases it.
 */
export interface SysctlOps {
  /** Current value (normalized); SysctlError ENOENT when the sysctl does not exist. */
  read(key: SysctlKey): Promise<string>;
  /**
   * Makes `owner`'s claims exactly `settings` (declarative: keys the owner claimed before and no longer lists
   * are released). Re-applies a claimed value that drifted. SysctlError EBUSY when another owner holds a
   * key at a different value; ENOENT (before anything is changed) when a key does not exist.
   */
  claim(owner: string, settings: readonly SysctlSetting[]): Promise<void>;
  /** Drops all claims of `owner`, restoring every sysctl nobody claims any more. */
  release(owner: string): Promise<void>;
  /** Releases every owner, restoring every original (agent uninstall). */
  releaseAll(): Promise<void>;
  /** Owners with claims, including those recorded by a previous run of the agent (to garbage-collect). */
  owners(): Promise<string[]>;
}
