// Netlink framing, pure and allocation-light: a writer that builds one complete message
// (nlmsghdr + genlmsghdr + attributes) into a single Buffer, and bounds-checked readers that throw
// only IpvsDecodeError. Layout rules follow the verified images of the reference doc §5.1/§5.5:
// padding goes *before* an attribute, so a nest's length excludes its last child's padding and a
// message's nlmsg_len excludes trailing padding.

import { endianness } from 'node:os';
import { GENL_HDRLEN, NLA_HDRLEN, NLA_TYPE_MASK, NLMSG_HDRLEN } from './constants.ts';
import { IpvsDecodeError } from './errors.ts';

/** Host byte order decides how "u16/u32/u64" fields are laid out (netlink is host-endian). */
export const LE = endianness() === 'LE';

export const align4 = (n: number): number => (n + 3) & ~3;

export class MessageWriter {
  private buf: Buffer;
  /** End of written data, excluding padding owed to the next attribute. */
  private len: number;

  constructor(type: number, flags: number, cmd: number, version: number, initialSize = 256) {
    // From Node's buffer pool (a fresh zero-filled ArrayBuffer per message costs more than the
    // message): every byte up to `len` is written below or zeroed as padding in header().
    this.buf = Buffer.allocUnsafe(initialSize);
    this.buf.fill(0, 0, NLMSG_HDRLEN + GENL_HDRLEN);
    this.writeU16At(4, type);
    this.writeU16At(6, flags);
    this.buf[NLMSG_HDRLEN] = cmd;
    this.buf[NLMSG_HDRLEN + 1] = version;
    this.len = NLMSG_HDRLEN + GENL_HDRLEN;
  }

  private writeU16At(off: number, v: number): void {
    if (LE) this.buf.writeUInt16LE(v, off);
    else this.buf.writeUInt16BE(v, off);
  }

  private writeU32At(off: number, v: number): void {
    if (LE) this.buf.writeUInt32LE(v >>> 0, off);
    else this.buf.writeUInt32BE(v >>> 0, off);
  }

  private ensure(extra: number): void {
    const need = align4(this.len) + extra;
    if (need <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  /** Starts an attribute with `payloadLen` bytes; returns the payload offset. */
  private header(type: number, payloadLen: number): number {
    this.ensure(NLA_HDRLEN + payloadLen);
    const start = align4(this.len);
    for (let i = this.len; i < start; i++) this.buf[i] = 0; // padding before the attribute
    this.writeU16At(start, NLA_HDRLEN + payloadLen);
    this.writeU16At(start + 2, type);
    this.len = start + NLA_HDRLEN + payloadLen;
    return start + NLA_HDRLEN;
  }

  u8(type: number, v: number): this {
    this.buf[this.header(type, 1)] = v & 0xff;
    return this;
  }

  u16(type: number, v: number): this {
    this.writeU16At(this.header(type, 2), v & 0xffff);
    return this;
  }

  u16be(type: number, v: number): this {
    this.buf.writeUInt16BE(v & 0xffff, this.header(type, 2));
    return this;
  }

  u32(type: number, v: number): this {
    this.writeU32At(this.header(type, 4), v);
    return this;
  }

  u32be(type: number, v: number): this {
    this.buf.writeUInt32BE(v >>> 0, this.header(type, 4));
    return this;
  }

  bytes(type: number, data: Uint8Array): this {
    const off = this.header(type, data.length);
    this.buf.set(data, off);
    return this;
  }

  /** NUL-terminated string (NLA_NUL_STRING). */
  string(type: number, s: string): this {
    const data = Buffer.from(s, 'utf8');
    const off = this.header(type, data.length + 1);
    data.copy(this.buf, off);
    this.buf[off + data.length] = 0;
    return this;
  }

  /** struct ip_vs_flags { u32 flags; u32 mask; } in host order. */
  flagsMask(type: number, flags: number, mask: number): this {
    const off = this.header(type, 8);
    this.writeU32At(off, flags);
    this.writeU32At(off + 4, mask);
    return this;
  }

  nest(type: number, body: (w: this) => void): this {
    const start = this.header(type, 0);
    body(this);
    this.writeU16At(start - NLA_HDRLEN, this.len - (start - NLA_HDRLEN));
    return this;
  }

  /** The finished message: nlmsg_len excludes trailing padding; seq and portid are 0 until patched. */
  finish(seq = 0, port = 0): Buffer {
    const out = this.buf.subarray(0, this.len);
    this.writeU32At(0, this.len);
    this.writeU32At(8, seq);
    this.writeU32At(12, port);
    return out;
  }
}

export function patchSeqPort(msg: Buffer, seq: number, port: number): void {
  if (LE) {
    msg.writeUInt32LE(seq >>> 0, 8);
    msg.writeUInt32LE(port >>> 0, 12);
  } else {
    msg.writeUInt32BE(seq >>> 0, 8);
    msg.writeUInt32BE(port >>> 0, 12);
  }
}

export function readFlags(msg: Buffer): number {
  return LE ? msg.readUInt16LE(6) : msg.readUInt16BE(6);
}

export function patchFlags(msg: Buffer, flags: number): void {
  if (LE) msg.writeUInt16LE(flags & 0xffff, 6);
  else msg.writeUInt16BE(flags & 0xffff, 6);
}

// ------------------------------------------------------------------------------------------------
// Readers

export const readU16 = (b: Buffer, off: number): number => (LE ? b.readUInt16LE(off) : b.readUInt16BE(off));
export const readU32 = (b: Buffer, off: number): number => (LE ? b.readUInt32LE(off) : b.readUInt32BE(off));
export const readI32 = (b: Buffer, off: number): number => (LE ? b.readInt32LE(off) : b.readInt32BE(off));
/** u64 as bigint; one BigInt allocation when the high half is 0 (the common case for counters). */
export function readU64(b: Buffer, off: number): bigint {
  const lo = LE ? b.readUInt32LE(off) : b.readUInt32BE(off + 4);
  const hi = LE ? b.readUInt32LE(off + 4) : b.readUInt32BE(off);
  return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
}

export interface NetlinkMessage {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly port: number;
  /** Everything after the 16-byte nlmsghdr. */
  readonly payload: Buffer;
}

/** Splits a received datagram into netlink messages (a datagram may carry many, e.g. dump parts). */
export function parseNetlinkMessages(buf: Buffer): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  let off = 0;
  while (buf.length - off >= NLMSG_HDRLEN) {
    const len = readU32(buf, off);
    if (len < NLMSG_HDRLEN || len > buf.length - off) {
      throw new IpvsDecodeError(`netlink message at offset ${off}: length ${len} outside 16..${buf.length - off}`);
    }
    out.push({
      type: readU16(buf, off + 4),
      flags: readU16(buf, off + 6),
      seq: readU32(buf, off + 8),
      port: readU32(buf, off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  if (off < buf.length && buf.subarray(off).some((b) => b !== 0)) {
    throw new IpvsDecodeError(`netlink datagram: ${buf.length - off} trailing bytes`);
  }
  return out;
}

/** The errno carried by an NLMSG_ERROR (0 = ACK); positive. */
export function parseErrorPayload(payload: Buffer): number {
  if (payload.length < 4) throw new IpvsDecodeError(`NLMSG_ERROR payload of ${payload.length} bytes`);
  return Math.abs(readI32(payload, 0));
}

export interface Attr {
  readonly type: number;
  readonly data: Buffer;
}

/** Parses a TLV attribute stream into a list (for tools and tests; decoders use AttrTable). */
export function parseAttrs(buf: Buffer, what: string): Attr[] {
  const out: Attr[] = [];
  forEachAttr(buf, 0, buf.length, what, (type, off, len) => out.push({ type, data: buf.subarray(off, off + len) }));
  return out;
}

function forEachAttr(buf: Buffer, start: number, end: number, what: string, fn: (type: number, off: number, len: number) => void): void {
  let off = start;
  while (end - off >= NLA_HDRLEN) {
    const len = readU16(buf, off);
    if (len < NLA_HDRLEN || len > end - off) {
      throw new IpvsDecodeError(`${what}: attribute at offset ${off - start} has length ${len}, ${end - off} bytes left`);
    }
    fn(readU16(buf, off + 2) & NLA_TYPE_MASK, off + NLA_HDRLEN, len - NLA_HDRLEN);
    off += align4(len);
  }
}

/**
 * Single-pass reader over one attribute stream (or nest): `next()` steps to the next attribute and
 * exposes its type/offset/length; typed getters read the current one with a length check. Used by
 * the hot decoders (destinations, services, stats) because it allocates nothing per attribute.
 */
export class AttrCursor {
  readonly buf: Buffer;
  type = 0;
  off = 0;
  len = 0;
  private pos: number;
  private readonly end: number;
  private readonly name: string;
  private readonly parent: AttrCursor | undefined;

  constructor(buf: Buffer, start: number, end: number, name: string, parent?: AttrCursor) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.name = name;
    this.parent = parent;
  }

  /** Path for error messages, built only when one is thrown. */
  private get what(): string {
    return this.parent ? `${this.parent.what}.${this.name}` : this.name;
  }

  /** Cursor over the payload of the current attribute (a nest). */
  nest(name: string): AttrCursor {
    return new AttrCursor(this.buf, this.off, this.off + this.len, name, this);
  }

  next(): boolean {
    const rem = this.end - this.pos;
    if (rem < NLA_HDRLEN) return false;
    const len = readU16(this.buf, this.pos);
    if (len < NLA_HDRLEN || len > rem) {
      throw new IpvsDecodeError(`${this.what}: attribute of length ${len} with ${rem} bytes left`);
    }
    this.type = readU16(this.buf, this.pos + 2) & NLA_TYPE_MASK;
    this.off = this.pos + NLA_HDRLEN;
    this.len = len - NLA_HDRLEN;
    this.pos += align4(len);
    return true;
  }

  private need(n: number, name: string): number {
    if (this.len < n) throw new IpvsDecodeError(`${this.what}: ${name} has ${this.len} bytes, expected at least ${n}`);
    return this.off;
  }

  u8(name: string): number {
    return this.buf[this.need(1, name)] as number;
  }

  u16(name: string): number {
    return readU16(this.buf, this.need(2, name));
  }

  u16be(name: string): number {
    return this.buf.readUInt16BE(this.need(2, name));
  }

  u32(name: string): number {
    return readU32(this.buf, this.need(4, name));
  }

  u32be(name: string): number {
    return this.buf.readUInt32BE(this.need(4, name));
  }

  u64(name: string): bigint {
    return readU64(this.buf, this.need(8, name));
  }

  /** Offset of the current payload, checking it has at least `n` bytes. */
  bytesAt(n: number, name: string): number {
    return this.need(n, name);
  }

  string(): string {
    const end = this.off + this.len;
    const nul = this.buf.indexOf(0, this.off);
    return this.buf.toString('utf8', this.off, nul === -1 || nul > end ? end : nul);
  }

  fail(message: string): never {
    throw new IpvsDecodeError(`${this.what}: ${message}`);
  }
}
