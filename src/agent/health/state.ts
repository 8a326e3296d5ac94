/**
 * keepalived's rise/fall hysteresis for one target. A new target starts healthy (keepalived with `alpha`
 * off): a freshly added realserver takes traffic at once instead of waiting `rise` intervals, and a
 * dead one is quiesced after `fall` failed checks.
 */
export class RiseFall {
  healthy = true;
  /** Consecutive results that contradict the current state; reset by a result that confirms it. */
  private streak = 0;

  /** Feeds one check result; returns true when the state flipped. */
  record(ok: boolean, rise: number, fall: number): boolean {
    if (ok === this.healthy) {
      this.streak = 0;
      return false;
    }
    this.streak++;
    if (this.streak < (ok ? rise : fall)) return false;
    this.healthy = ok;
    this.streak = 0;
    return true;
  }
}
