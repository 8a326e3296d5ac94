// Netlink framing, pure and allocation-light: a writer that builds one complete message
// (nlmsghdr + genlmsghdr + attributes) into a single Buffer, and bounds-checked readers that throw
// only IpvsDecodeError. Layout rules follow the verified images of the reference doc §5.1/§5.5:
// padding goes *before* an attribute, so a nest's length excludes its last child's padding and a
// message's nlmsg_len excludes trailing padding.

import { endianness } from 'node:os';
import { GENL_HDRLEN, NLA_HDRLEN, NLA_TYPE_MASK, NLMSG_HDRLEN } from './constants.ts';
import { IpvsDecodeError } from './errors.ts';

/** Host byte order decides how "u16/u32/u64" fields are laid out (netlink is host-endian). */
const LE = endianness() === 'LE';

export const align4 = (n: number): number => (n + 3) & ~3;

export class MessageWriter {
  private buf: Buffer;
  /** End of written data, excluding padding owed to the next attribute. */
  private len: number;

  constructor(type: number, flags: number, cmd: number, version: number, initialSize = 256) {
    this.buf = Buffer.alloc(initialSize);
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
    const next = Buffer.alloc(Math.max(need, this.buf.length * 2));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  /** Starts an attribute with `payloadLen` bytes; returns the payload offset. */
  private header(type: number, payloadLen: number): number {
    this.ensure(NLA_HDRLEN + payloadLen);
    const start = align4(this.len); // buffer is zero-filled, so the pad bytes are already 0
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
 * The attributes of one stream (or nest) indexed by type, as offsets into the received buffer:
 * no per-attribute Buffer objects, which matters when decoding 100k destinations. Types above
 * `maxType` are ignored (newer kernels add attributes); a later duplicate wins, as in the kernel.
 * Getters check the length (too short = IpvsDecodeError, like the kernel's minimum-length policy).
 */
export class AttrTable {
  readonly buf: Buffer;
  private readonly name: string;
  private readonly parent: AttrTable | undefined;
  private readonly at: Int32Array;

  constructor(buf: Buffer, start: number, end: number, maxType: number, name: string, parent?: AttrTable) {
    this.buf = buf;
    this.name = name;
    this.parent = parent;
    const at = new Int32Array((maxType + 1) * 2).fill(-1);
    let off = start;
    while (end - off >= NLA_HDRLEN) {
      const len = readU16(buf, off);
      if (len < NLA_HDRLEN || len > end - off) {
        throw new IpvsDecodeError(`${this.what}: attribute at offset ${off - start} has length ${len}, ${end - off} bytes left`);
      }
      const type = readU16(buf, off + 2) & NLA_TYPE_MASK;
      if (type <= maxType) {
        at[type * 2] = off + NLA_HDRLEN;
        at[type * 2 + 1] = len - NLA_HDRLEN;
      }
      off += align4(len);
    }
    this.at = at;
  }

  /** Path for error messages, e.g. "destination reply.destination.stats64" (built only on error). */
  private get what(): string {
    return this.parent ? `${this.parent.what}.${this.name}` : this.name;
  }

  /** Table of the attributes after the genl header of a message payload. */
  static ofGenl(payload: Buffer, maxType: number, what: string): AttrTable {
    if (payload.length < GENL_HDRLEN) throw new IpvsDecodeError(`${what}: generic netlink payload of ${payload.length} bytes`);
    return new AttrTable(payload, GENL_HDRLEN, payload.length, maxType, what);
  }

  has(type: number): boolean {
    return (this.at[type * 2] ?? -1) >= 0;
  }

  /** Offset of the payload of `type`, checking it has at least `n` bytes. */
  private off(type: number, n: number, name: string): number {
    const off = this.at[type * 2] ?? -1;
    if (off < 0) throw new IpvsDecodeError(`${this.what}: missing ${name} (attribute ${type})`);
    const len = this.at[type * 2 + 1] as number;
    if (len < n) throw new IpvsDecodeError(`${this.what}: ${name} has ${len} bytes, expected at least ${n}`);
    return off;
  }

  length(type: number): number {
    return this.at[type * 2 + 1] ?? -1;
  }

  u8(type: number, name: string): number {
    return this.buf[this.off(type, 1, name)] as number;
  }

  u16(type: number, name: string): number {
    return readU16(this.buf, this.off(type, 2, name));
  }

  u16be(type: number, name: string): number {
    return this.buf.readUInt16BE(this.off(type, 2, name));
  }

  u32(type: number, name: string): number {
    return readU32(this.buf, this.off(type, 4, name));
  }

  u32be(type: number, name: string): number {
    return this.buf.readUInt32BE(this.off(type, 4, name));
  }

  u64(type: number, name: string): bigint {
    return readU64(this.buf, this.off(type, 8, name));
  }

  /** Optional u32/u16/u8 with a default when absent. */
  optU32(type: number, name: string, dflt = 0): number {
    return this.has(type) ? this.u32(type, name) : dflt;
  }

  /** NUL-terminated (or, leniently, unterminated) string. */
  string(type: number, name: string): string {
    const off = this.off(type, 0, name);
    const end = off + (this.at[type * 2 + 1] as number);
    const nul = this.buf.indexOf(0, off);
    return this.buf.toString('utf8', off, nul === -1 || nul > end ? end : nul);
  }

  /** Offset of a fixed-size binary payload (e.g. a 16-byte address), length-checked. */
  bytesAt(type: number, n: number, name: string): number {
    return this.off(type, n, name);
  }

  nested(type: number, maxType: number, name: string): AttrTable {
    const off = this.off(type, 0, name);
    return new AttrTable(this.buf, off, off + (this.at[type * 2 + 1] as number), maxType, name, this);
  }
}
