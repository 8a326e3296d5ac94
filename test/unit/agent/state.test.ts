// The agent's state file: a snapshot plus a journal of changes, so a write costs in proportion to the change.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileStateStore } from '../../../src/agent/state.ts';

const dir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'agent-state-'));

describe('FileStateStore', () => {
  it('a named change is appended as one journal line holding only that change; a restart replays it', () => {
    const file = path.join(dir(), 'agent-state.json');
    const a = new FileStateStore(file);
    const s = a.load();
    for (let i = 0; i < 500; i++) s.services[`10.0.${i >> 8}.${i & 255}:80/TCP`] = `ns/s${i}`;
    a.save(s); // unnamed: a snapshot
    a.flush();
    expect(fs.existsSync(a.journal)).toBe(false);
    s.services['10.9.9.9:80/TCP'] = 'ns/new';
    delete s.services['10.0.0.1:80/TCP'];
    a.save(s, { services: ['10.9.9.9:80/TCP', '10.0.0.1:80/TCP'] });
    a.flush();
    const lines = fs.readFileSync(a.journal, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toEqual({ seq: 2, services: { '10.9.9.9:80/TCP': 'ns/new', '10.0.0.1:80/TCP': null } });
    s.vips.push({ ifname: 'eth0', vip: '10.9.9.9', owners: ['director:ns/new'] });
    s.draining = { '10.0.0.2:80/TCP|10.1.1.1:80': 1000 };
    a.save(s, { vips: true, draining: true });
    a.flush();
    const b = new FileStateStore(file).load();
    expect(b).toEqual(s);
    expect(Object.keys(b.services)).toHaveLength(500);
  });

  it('a torn last line is ignored; lines already in a newer snapshot are not replayed', () => {
    const file = path.join(dir(), 'agent-state.json');
    const a = new FileStateStore(file);
    const s = a.load();
    s.services['10.0.0.1:80/TCP'] = 'ns/a';
    a.save(s, { services: ['10.0.0.1:80/TCP'] });
    a.flush();
    const oldJournal = fs.readFileSync(a.journal, 'utf8');
    // The service goes away and a snapshot is written; a crash before the journal was dropped leaves it.
    delete s.services['10.0.0.1:80/TCP'];
    a.save(s);
    a.flush();
    fs.writeFileSync(a.journal, oldJournal + '{"seq":99,"services":{"10.0.0.7:80/TC');
    expect(new FileStateStore(file).load().services).toEqual({});
  });

  it('compacts the journal into a snapshot after many lines', () => {
    const file = path.join(dir(), 'agent-state.json');
    const a = new FileStateStore(file);
    const s = a.load();
    for (let i = 0; i < 1000; i++) {
      s.services[`k${i}`] = `o${i}`;
      a.save(s, { services: [`k${i}`] });
      a.flush();
    }
    expect(fs.readFileSync(a.journal, 'utf8').trim().split('\n')).toHaveLength(1000);
    s.services.last = 'x';
    a.save(s, { services: ['last'] });
    a.flush();
    expect(fs.existsSync(a.journal)).toBe(false);
    const b = new FileStateStore(file).load();
    expect(Object.keys(b.services)).toHaveLength(1001);
    expect(b.services.last).toBe('x');
  });

  it('a store that only ever journaled (no snapshot yet) loads from the journal alone', () => {
    const file = path.join(dir(), 'agent-state.json');
    const a = new FileStateStore(file);
    const s = a.load();
    s.services['10.0.0.1:80/TCP'] = 'ns/a';
    s.vips.push({ ifname: 'eth0', vip: '10.0.0.1', owners: ['director:ns/a'] });
    a.save(s, { services: ['10.0.0.1:80/TCP'], vips: true });
    a.flush();
    expect(fs.existsSync(file)).toBe(false);
    expect(new FileStateStore(file).load()).toEqual(s);
  });

  it('an older state file without sequence numbers still loads', () => {
    const file = path.join(dir(), 'agent-state.json');
    fs.writeFileSync(file, JSON.stringify({ version: 1, services: { k: 'o' }, vips: [], draining: {} }));
    expect(new FileStateStore(file).load().services).toEqual({ k: 'o' });
  });
});
