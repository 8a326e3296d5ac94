import { describe, expect, it } from '@jest/globals';
import { NetifError, errnoOf, toNetifError } from '../../../src/netif/errors.ts';

describe('NetifError', () => {
  it('names errno, operation and object', () => {
    const e = new NetifError('EEXIST', 'add', '192.168.56.40/32 dev eth0');
    expect(e.message).toBe('EEXIST: add 192.168.56.40/32 dev eth0');
    expect(e).toMatchObject({ name: 'NetifError', errno: 'EEXIST', op: 'add', object: '192.168.56.40/32 dev eth0' });
    expect(new NetifError('ENODEV', 'get', 'dev eth9', 'no such interface').message).toBe('ENODEV: get dev eth9 (no such interface)');
  });
});

describe('errnoOf', () => {
  it.each([
    [new Error('Request rejected: EADDRNOTAVAIL'), 'EADDRNOTAVAIL'],
    [Object.assign(new Error('socket'), { code: 'EPERM' }), 'EPERM'],
    [new Error('Timeout has been reached'), undefined],
    ['EEXIST', undefined],
  ])('%p → %p', (err, errno) => {
    expect(errnoOf(err)).toBe(errno);
  });
});

describe('toNetifError', () => {
  it('keeps the errno of a netlink rejection', () => {
    const e = toNetifError(new Error('Request rejected: EPERM'), 'add', '2001:db8::40/128 dev lo');
    expect(e.message).toBe('EPERM: add 2001:db8::40/128 dev lo');
    expect(e.cause).toBeInstanceOf(Error);
  });

  it('keeps the text of anything else', () => {
    expect(toNetifError(new Error('boom'), 'up', 'dev eth0').message).toBe('EUNKNOWN: up dev eth0 (boom)');
  });

  it('passes NetifErrors through', () => {
    const e = new NetifError('ENODEV', 'get', 'dev x');
    expect(toNetifError(e, 'add', 'y')).toBe(e);
  });
});
