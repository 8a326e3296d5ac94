// The round trip: `kubectl lvs import FILE | kubectl lvs export -f -` gives rules equivalent to FILE —
// the same services and realservers with the same attributes, order and spelling aside — for every fixture.
// For a fixture with lines the API cannot express, the result equals FILE without exactly those lines.
import { describe, expect, it } from '@jest/globals';
import { applyIpvsadmRules, parseIpvsadmRules } from '../../../src/ipvs/ipvsadm.ts';
import { canonicalRules, canonicalTable } from '../../../src/cli/export.ts';
import { cli, fixture, fixturePath, RULE_FIXTURES } from './fixtures.ts';

/** The input's canonical rules without the lines `import` reported. */
function expectedRules(text: string, skipped: Set<number>): string[] {
  const table = applyIpvsadmRules(parseIpvsadmRules(text).rules).services
    .filter((s) => !skipped.has(s.line))
    .map((s) => ({ ...s, destinations: s.destinations.filter((d) => !skipped.has(d.line)) }));
  return canonicalTable(table);
}

const FULLY_SUPPORTED = RULE_FIXTURES.filter((f) => f !== 'unsupported' && f !== 'fwmark');

describe('import | export round trip', () => {
  it.each(RULE_FIXTURES)('%s.rules', async (name) => {
    const imported = await cli(['import', '--skip-unsupported', fixturePath(`${name}.rules`)]);
    expect(imported.code).toBe(0);
    const skipped = new Set([...imported.stderr.matchAll(/\.rules:(\d+): unsupported:/g)].map((m) => Number(m[1])));
    if (FULLY_SUPPORTED.includes(name)) expect(skipped.size).toBe(0);
    else expect(skipped.size).toBeGreaterThan(0);

    const exported = await cli(['export', '-f', '-'], imported.stdout);
    expect(exported).toMatchObject({ code: 0, stderr: '' });
    const back = canonicalRules(exported.stdout);
    expect(back.problems).toEqual([]);
    expect(back.lines).toEqual(expectedRules(fixture(`${name}.rules`), skipped));
    // Export writes only -A and -a lines (ipvsadm -R rejects comments).
    for (const line of exported.stdout.trimEnd().split('\n')) expect(line).toMatch(/^-[Aa] /);
  });

  it('names.rules comes back numeric, equal to ipvsadm -Sn of the same table', async () => {
    const imported = await cli(['import', fixturePath('names.rules')]);
    const exported = await cli(['export', '-f', '-'], imported.stdout);
    expect(canonicalRules(exported.stdout).lines).toEqual(canonicalRules(fixture('names.saved')).lines);
  });

  it('a changed attribute breaks the equivalence (the comparison is not vacuous)', async () => {
    const imported = await cli(['import', fixturePath('persistence.rules')]);
    const exported = await cli(['export', '-f', '-'], imported.stdout.replace('timeoutSeconds: 600', 'timeoutSeconds: 601'));
    expect(canonicalRules(exported.stdout).lines).not.toEqual(canonicalRules(fixture('persistence.rules')).lines);
  });
});
