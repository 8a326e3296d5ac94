// The controller benchmark runs the controller under the chart's memory limit: quantities parse as Kubernetes
// reads them, and the heap Node gets is the one it picks in a Pod with that limit (a memory cgroup where this
// host lets us make one; else flags that must come out the same).
import path from 'node:path';
import { chartMemoryLimit, memoryLimit, memoryQuantityBytes } from '../../../bench/memory-limit.ts';

const REPO = path.resolve(import.meta.dirname, '..', '..', '..');

describe('memoryQuantityBytes', () => {
  it('reads binary and decimal suffixes and plain bytes', () => {
    expect(memoryQuantityBytes('768Mi')).toBe(768 * 2 ** 20);
    expect(memoryQuantityBytes('1Gi')).toBe(2 ** 30);
    expect(memoryQuantityBytes('500M')).toBe(500e6);
    expect(memoryQuantityBytes('1.5Gi')).toBe(1.5 * 2 ** 30);
    expect(memoryQuantityBytes('1048576')).toBe(2 ** 20);
    expect(memoryQuantityBytes(4096)).toBe(4096);
  });
  it('rejects what is not a quantity, naming it', () => {
    expect(() => memoryQuantityBytes('768 MiB')).toThrow("not a memory quantity: '768 MiB'");
    expect(() => memoryQuantityBytes('lots')).toThrow(/lots/);
  });
});

describe('memoryLimit', () => {
  it("reads the chart's controller limit", () => {
    expect(memoryQuantityBytes(chartMemoryLimit(path.join(REPO, 'charts', 'lvs-operator'), 'controller'))).toBeGreaterThan(0);
  });

  it.each([true, false])('gives Node the heap it picks under a 768Mi limit: 384 MiB old + 48 MiB young generation (cgroup wanted: %s)', (cgroup) => {
    const limit = memoryLimit(`lvs-test-${process.pid}`, '768Mi', { cgroup });
    if (!cgroup) expect(limit.how).toBe('node flags');
    try {
      expect(limit.bytes).toBe(768 * 2 ** 20);
      expect(limit.heapLimitMiB).toBe(432);
      expect(limit.oomKills()).toBe(0);
    } finally {
      limit.remove();
    }
  });
});
