/**
 * C-ABI struct layouts for Filter Manager message payloads.
 *
 * Describe the C structs a minifilter sends and receives, get their MSVC layout (size, alignment, field
 * offsets) and typed encode/decode:
 *
 * ```ts
 * const ScanRequest = struct('SCAN_REQUEST', { fileId: u64, processId: u32, path: utf16(260) });
 * type ScanRequest = typeof ScanRequest.Type;   // { fileId: bigint; processId: number; path: string }
 * const buf = ScanRequest.encode({ fileId: 1n, processId: 4, path: 'C:\\x' });
 * const req = ScanRequest.decode(buf);
 * ```
 *
 * Layout rules (MSVC, identical for x86, x64 and arm64 except for `ptr`):
 * - every scalar is aligned to its size, including u64/i64/f64 on x86 (MSVC aligns 8-byte members to 8
 *   inside structs on x86; i386 System V gcc would use 4, so do not compare against a Linux i386 build);
 * - `ptr` is 8 bytes on x64/arm64 and 4 on x86;
 * - a struct's alignment is the largest alignment of its members, its size is rounded up to it;
 * - `pack: n` works like `#pragma pack(n)`: each member is aligned to min(n, its alignment);
 * - arrays have the alignment of their element, nested structs keep their own layout.
 * Bit-fields, unions, zero-length/flexible arrays and `__declspec(align)` are not supported.
 *
 * The default arch is x64. Message buffers cross the kernel boundary, so what matters is the layout
 * of the DRIVER's build: a 32-bit (WOW64) client talking to a 64-bit driver must use `arch: 'x64'`.
 * All three targets are little-endian; encode/decode always use little-endian.
 */
import { Buffer } from 'node:buffer';

/** The Windows target whose MSVC layout rules apply: the one the driver is built for. */
export type Arch = 'x64' | 'x86' | 'arm64';
/** A `#pragma pack(n)` value. */
export type Pack = 1 | 2 | 4 | 8 | 16;

/** Options of {@link struct}. */
export interface StructOptions {
  /** Like `#pragma pack(n)`; default: natural alignment (MSVC default packing). */
  readonly pack?: Pack;
  /** Target whose layout is computed; default 'x64' (see the module comment). */
  readonly arch?: Arch;
}

/**
 * Resolved codec of a field type for one arch. Advanced: used by the built-in field types; `write`
 * may assume the destination bytes are already zero, so it never has to clear padding.
 */
export interface FieldCodec {
  /** Bytes the field occupies (sizeof). */
  readonly size: number;
  /** Natural alignment (alignof), before `pack`. */
  readonly alignment: number;
  /** Decodes the field at `offset`. */
  read(buf: Buffer, offset: number): unknown;
  /** Encodes `value` at `offset` (the bytes there are zero). */
  write(buf: Buffer, offset: number, value: unknown): void;
}

/**
 * A field type. `Type` (what decode returns) and `Input` (what encode accepts) are type-only
 * properties for inference (`typeof T.Type`); they are undefined at run time.
 */
export abstract class FieldType<T, I = T> {
  /** Type only: what decode returns for this field (`typeof T.Type`). */
  declare readonly Type: T;
  /** Type only: what encode accepts for this field. */
  declare readonly Input: I;
  /** Short description used in messages, e.g. 'u32', 'utf16(260)', 'struct SCAN_REQUEST'. */
  abstract readonly kind: string;
  /** True when the layout differs between arches (contains a `ptr`). */
  abstract readonly archDependent: boolean;
  /** Throws when this type cannot be used in a layout for `arch`. */
  abstract codec(arch: Arch): FieldCodec;
}

/** Any field type, whatever it decodes to. */
export type AnyFieldType = FieldType<unknown, unknown>;
/** A struct's fields by name, in declaration (= memory) order. */
export type Fields = { readonly [name: string]: AnyFieldType };
/** The object decode returns for fields F. */
export type DecodedOf<F extends Fields> = { -readonly [K in keyof F]: F[K]['Type'] };
/** The object encode accepts for fields F. */
export type InputOf<F extends Fields> = { readonly [K in keyof F]: F[K]['Input'] };

/** Where one field sits in a struct (StructType.fields). */
export interface FieldLayout {
  /** The field's name. */
  readonly name: string;
  /** Its type. */
  readonly type: AnyFieldType;
  /** Byte offset from the start of the struct (offsetof). */
  readonly offset: number;
  /** Bytes it occupies (sizeof). */
  readonly size: number;
  /** Effective alignment inside this struct, i.e. after `pack`. */
  readonly alignment: number;
}

// ---------------------------------------------------------------------------------------------
// Errors: codecs throw FieldValueError with the innermost path segment first; the public entry
// points turn it into a TypeError/RangeError whose message starts with the full field path.

class FieldValueError extends Error {
  readonly segments: string[] = [];
  constructor(
    readonly errorKind: 'type' | 'range',
    readonly detail: string,
  ) {
    super(detail);
  }
}

function fail(kind: 'type' | 'range', detail: string): never {
  throw new FieldValueError(kind, detail);
}

function addSegment(e: unknown, segment: string): void {
  if (e instanceof FieldValueError) e.segments.push(segment);
}

function toPublicError(e: unknown, root: string): unknown {
  if (!(e instanceof FieldValueError)) return e;
  const path = root + e.segments.slice().reverse().join('');
  const message = `${path}: ${e.detail}`;
  return e.errorKind === 'type' ? new TypeError(message) : new RangeError(message);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  switch (typeof v) {
    case 'string':
      return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v)}`;
    case 'number':
    case 'boolean':
      return `${typeof v} ${String(v)}`;
    case 'bigint':
      return `bigint ${v}n`;
    case 'undefined':
      return 'undefined';
    case 'object':
      return v instanceof Uint8Array ? `${v.constructor.name} of length ${v.length}` : 'an object';
    default:
      return typeof v;
  }
}

// ---------------------------------------------------------------------------------------------
// Scalars

class ScalarType<T, I = T> extends FieldType<T, I> {
  readonly archDependent: boolean;
  constructor(
    readonly kind: string,
    private readonly codecs: Readonly<Record<Arch, FieldCodec>>,
  ) {
    super();
    this.archDependent = codecs.x86 !== codecs.x64 || codecs.x64 !== codecs.arm64;
  }
  codec(arch: Arch): FieldCodec {
    return this.codecs[arch];
  }
}

function sameForAllArches(c: FieldCodec): Record<Arch, FieldCodec> {
  return { x64: c, x86: c, arm64: c };
}

function checkInt(v: unknown, min: number, max: number, kind: string): number {
  if (typeof v !== 'number') fail('type', `expected a number (${kind}), got ${describe(v)}`);
  if (!Number.isInteger(v)) fail('range', `expected an integer (${kind}), got ${v}`);
  if (v < min || v > max) fail('range', `${v} is out of range for ${kind} [${min}, ${max}]`);
  return v;
}

function intCodec(kind: string, size: 1 | 2 | 4, signed: boolean): FieldCodec {
  const bits = size * 8;
  const min = signed ? -(2 ** (bits - 1)) : 0;
  const max = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
  const read: (buf: Buffer, off: number) => number =
    size === 1
      ? signed
        ? (b, o) => b.readInt8(o)
        : (b, o) => b[o] as number
      : size === 2
        ? signed
          ? (b, o) => b.readInt16LE(o)
          : (b, o) => b.readUInt16LE(o)
        : signed
          ? (b, o) => b.readInt32LE(o)
          : (b, o) => b.readUInt32LE(o);
  const write: (buf: Buffer, v: number, off: number) => void =
    size === 1
      ? signed
        ? (b, v, o) => {
            b.writeInt8(v, o);
          }
        : (b, v, o) => {
            b[o] = v;
          }
      : size === 2
        ? signed
          ? (b, v, o) => {
              b.writeInt16LE(v, o);
            }
          : (b, v, o) => {
              b.writeUInt16LE(v, o);
            }
        : signed
          ? (b, v, o) => {
              b.writeInt32LE(v, o);
            }
          : (b, v, o) => {
              b.writeUInt32LE(v, o);
            };
  return {
    size,
    alignment: size,
    read,
    write(buf, off, v) {
      write(buf, checkInt(v, min, max, kind), off);
    },
  };
}

function int64Codec(kind: string, size: 4 | 8, signed: boolean): FieldCodec {
  const bits = BigInt(size * 8);
  const min = signed ? -(1n << (bits - 1n)) : 0n;
  const max = signed ? (1n << (bits - 1n)) - 1n : (1n << bits) - 1n;
  const toBig = (v: unknown): bigint => {
    let b: bigint;
    if (typeof v === 'bigint') b = v;
    else if (typeof v === 'number') {
      // Numbers are accepted for convenience, but only where they are exact.
      if (!Number.isSafeInteger(v)) fail('range', `expected a safe integer or a bigint (${kind}), got ${v}`);
      b = BigInt(v);
    } else fail('type', `expected a bigint (${kind}), got ${describe(v)}`);
    if (b < min || b > max) fail('range', `${b} is out of range for ${kind} [${min}, ${max}]`);
    return b;
  };
  if (size === 4) {
    // 32-bit pointer: decoded as bigint too, so `ptr` has one type on every arch.
    return {
      size,
      alignment: size,
      read: (buf, off) => BigInt(buf.readUInt32LE(off)),
      write(buf, off, v) {
        buf.writeUInt32LE(Number(toBig(v)), off);
      },
    };
  }
  return signed
    ? {
        size,
        alignment: size,
        read: (b, o) => b.readBigInt64LE(o),
        write(b, o, v) {
          b.writeBigInt64LE(toBig(v), o);
        },
      }
    : {
        size,
        alignment: size,
        read: (b, o) => b.readBigUInt64LE(o),
        write(b, o, v) {
          b.writeBigUInt64LE(toBig(v), o);
        },
      };
}

const F32_MAX = 3.4028234663852886e38;

const f32Codec: FieldCodec = {
  size: 4,
  alignment: 4,
  read: (b, o) => b.readFloatLE(o),
  write(b, o, v) {
    if (typeof v !== 'number') fail('type', `expected a number (f32), got ${describe(v)}`);
    if (Number.isFinite(v) && Math.abs(Math.fround(v)) > F32_MAX) fail('range', `${v} overflows f32`);
    b.writeFloatLE(v, o);
  },
};

const f64Codec: FieldCodec = {
  size: 8,
  alignment: 8,
  read: (b, o) => b.readDoubleLE(o),
  write(b, o, v) {
    if (typeof v !== 'number') fail('type', `expected a number (f64), got ${describe(v)}`);
    b.writeDoubleLE(v, o);
  },
};

function boolCodec(size: 1 | 4, kind: string): FieldCodec {
  return {
    size,
    alignment: size,
    // Any non-zero value is true, as in C.
    read: size === 1 ? (b, o) => b[o] !== 0 : (b, o) => b.readUInt32LE(o) !== 0,
    write(b, o, v) {
      if (typeof v !== 'boolean') fail('type', `expected a boolean (${kind}), got ${describe(v)}`);
      if (v) b[o] = 1;
    },
  };
}

const wcharCodec: FieldCodec = {
  size: 2,
  alignment: 2,
  read: (b, o) => String.fromCharCode(b.readUInt16LE(o)),
  write(b, o, v) {
    if (typeof v !== 'string') fail('type', `expected a string of one UTF-16 code unit (wchar), got ${describe(v)}`);
    if (v.length !== 1) fail('range', `expected exactly one UTF-16 code unit (wchar), got ${v.length}`);
    b.writeUInt16LE(v.charCodeAt(0), o);
  },
};

/** UCHAR / UINT8 */
export const u8: FieldType<number> = new ScalarType<number>('u8', sameForAllArches(intCodec('u8', 1, false)));
/** USHORT / UINT16 */
export const u16: FieldType<number> = new ScalarType<number>('u16', sameForAllArches(intCodec('u16', 2, false)));
/** ULONG / DWORD / UINT32 */
export const u32: FieldType<number> = new ScalarType<number>('u32', sameForAllArches(intCodec('u32', 4, false)));
/** ULONGLONG / UINT64: decodes to bigint; encode also accepts a safe-integer number. */
export const u64: FieldType<bigint, bigint | number> = new ScalarType<bigint, bigint | number>(
  'u64',
  sameForAllArches(int64Codec('u64', 8, false)),
);
/** CHAR / INT8 */
export const i8: FieldType<number> = new ScalarType<number>('i8', sameForAllArches(intCodec('i8', 1, true)));
/** SHORT / INT16 */
export const i16: FieldType<number> = new ScalarType<number>('i16', sameForAllArches(intCodec('i16', 2, true)));
/** LONG / NTSTATUS / INT32 (an NTSTATUS such as 0xC0000022 must be passed as `0xC0000022 | 0`). */
export const i32: FieldType<number> = new ScalarType<number>('i32', sameForAllArches(intCodec('i32', 4, true)));
/** LONGLONG / LARGE_INTEGER / INT64: decodes to bigint; encode also accepts a safe-integer number. */
export const i64: FieldType<bigint, bigint | number> = new ScalarType<bigint, bigint | number>(
  'i64',
  sameForAllArches(int64Codec('i64', 8, true)),
);
/** float */
export const f32: FieldType<number> = new ScalarType<number>('f32', sameForAllArches(f32Codec));
/** double */
export const f64: FieldType<number> = new ScalarType<number>('f64', sameForAllArches(f64Codec));
/** BOOLEAN (1 byte). */
export const bool8: FieldType<boolean> = new ScalarType<boolean>('bool8', sameForAllArches(boolCodec(1, 'bool8')));
/** BOOL (4 bytes). */
export const bool32: FieldType<boolean> = new ScalarType<boolean>('bool32', sameForAllArches(boolCodec(4, 'bool32')));
/** Pointer / HANDLE / SIZE_T / ULONG_PTR: 8 bytes on x64 and arm64, 4 on x86; always a bigint. */
export const ptr: FieldType<bigint, bigint | number> = new ScalarType<bigint, bigint | number>('ptr', {
  x64: int64Codec('ptr', 8, false),
  arm64: int64Codec('ptr', 8, false),
  x86: int64Codec('ptr', 4, false),
});
/** A single WCHAR, as a one-code-unit string. */
export const wchar: FieldType<string> = new ScalarType<string>('wchar', sameForAllArches(wcharCodec));

// ---------------------------------------------------------------------------------------------
// Fixed-size strings and byte arrays

const MAX_STRUCT_SIZE = 0x7fffffff;

function checkCount(what: string, n: unknown, min: number): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min) {
    throw new RangeError(`${what}: count must be an integer >= ${min}, got ${describe(n)}`);
  }
  return n;
}

/** Options of {@link utf16}. */
export interface Utf16Options {
  /**
   * true (default): the string must leave room for a NUL terminator, i.e. at most n-1 code units,
   * like a C string in WCHAR[n]. false: up to n code units; the NUL is written only when shorter.
   * Decoding always stops at the first NUL or after n code units, so both forms decode.
   */
  readonly nulTerminated?: boolean;
}

class Utf16Type extends FieldType<string> {
  readonly kind: string;
  readonly archDependent = false;
  private readonly c: FieldCodec;
  constructor(
    readonly length: number,
    readonly nulTerminated: boolean,
  ) {
    super();
    this.kind = `utf16(${length})`;
    const n = length;
    const maxLen = nulTerminated ? n - 1 : n;
    const kind = this.kind;
    this.c = {
      size: n * 2,
      alignment: 2,
      read(b, o) {
        let len = 0;
        while (len < n && b.readUInt16LE(o + len * 2) !== 0) len++;
        return b.toString('utf16le', o, o + len * 2);
      },
      write(b, o, v) {
        if (typeof v !== 'string') fail('type', `expected a string (${kind}), got ${describe(v)}`);
        if (v.length > maxLen) {
          fail(
            'range',
            `string of ${v.length} UTF-16 code units does not fit WCHAR[${n}] (max ${maxLen}` +
              `${nulTerminated ? ' plus the NUL terminator' : ''})`,
          );
        }
        // An embedded NUL would silently truncate the string on the other side.
        if (v.includes('\0')) fail('range', `string contains a NUL character at index ${v.indexOf('\0')}`);
        b.write(v, o, v.length * 2, 'utf16le');
      },
    };
  }
  codec(): FieldCodec {
    return this.c;
  }
}

/**
 * WCHAR[n] holding a UTF-16LE string (length counted in UTF-16 code units, as `string.length`).
 * By default the string must be NUL-terminated, so at most n-1 code units fit; pass
 * `{ nulTerminated: false }` to also allow exactly n. Too long: RangeError. Embedded NUL: RangeError.
 */
export function utf16(length: number, options: Utf16Options = {}): FieldType<string> {
  const nul = options.nulTerminated ?? true;
  if (typeof nul !== 'boolean') throw new TypeError('utf16: nulTerminated must be a boolean');
  const n = checkCount('utf16', length, 1);
  if (n * 2 > MAX_STRUCT_SIZE) throw new RangeError(`utf16: ${n} code units is too large`);
  return new Utf16Type(n, nul);
}

class BytesType extends FieldType<Buffer, Uint8Array> {
  readonly kind: string;
  readonly archDependent = false;
  private readonly c: FieldCodec;
  constructor(readonly length: number) {
    super();
    const n = length;
    const kind = (this.kind = `bytes(${length})`);
    this.c = {
      size: n,
      alignment: 1,
      // A copy: message buffers are reused by the receive loop after the handler returns.
      read: (b, o) => Buffer.from(b.subarray(o, o + n)),
      write(b, o, v) {
        if (!(v instanceof Uint8Array)) fail('type', `expected a Uint8Array or Buffer (${kind}), got ${describe(v)}`);
        if (v.length > n) fail('range', `${v.length} bytes do not fit UCHAR[${n}]`);
        b.set(v, o);
      },
    };
  }
  codec(): FieldCodec {
    return this.c;
  }
}

/**
 * UCHAR[n] as raw bytes. Decode returns a copy (Buffer of exactly n bytes); encode accepts a
 * Uint8Array of at most n bytes, the rest is zero-filled.
 */
export function bytes(length: number): FieldType<Buffer, Uint8Array> {
  const n = checkCount('bytes', length, 1);
  if (n > MAX_STRUCT_SIZE) throw new RangeError(`bytes: ${n} bytes is too large`);
  return new BytesType(n);
}

// ---------------------------------------------------------------------------------------------
// Arrays

/** Use {@link array}; exported for introspection (element type and count). */
export class ArrayType<T, I> extends FieldType<T[], readonly I[]> {
  readonly kind: string;
  readonly archDependent: boolean;
  private readonly codecs = new Map<Arch, FieldCodec>();
  /**
   * Use {@link array}.
   * @param element the element type.
   * @param length the element count.
   */
  constructor(
    /** The element type. */
    readonly element: FieldType<T, I>,
    /** The element count. */
    readonly length: number,
  ) {
    super();
    this.kind = `${element.kind}[${length}]`;
    this.archDependent = element.archDependent;
  }
  codec(arch: Arch): FieldCodec {
    let c = this.codecs.get(arch);
    if (c === undefined) {
      c = arrayCodec(this.element.codec(arch), this.length, this.kind);
      this.codecs.set(arch, c);
    }
    return c;
  }
}

function arrayCodec(el: FieldCodec, n: number, kind: string): FieldCodec {
  // Element sizes are always a multiple of their alignment, so the stride is the size.
  const stride = el.size;
  if (stride * n > MAX_STRUCT_SIZE) throw new RangeError(`${kind} is too large (${stride * n} bytes)`);
  return {
    size: stride * n,
    alignment: el.alignment,
    read(b, o) {
      const out: unknown[] = new Array<unknown>(n);
      for (let i = 0; i < n; i++) out[i] = el.read(b, o + i * stride);
      return out;
    },
    write(b, o, v) {
      if (!Array.isArray(v)) fail('type', `expected an array (${kind}), got ${describe(v)}`);
      const arr: readonly unknown[] = v;
      if (arr.length !== n) fail('range', `expected exactly ${n} elements, got ${arr.length}`);
      let i = 0;
      try {
        for (; i < n; i++) el.write(b, o + i * stride, arr[i]);
      } catch (e) {
        addSegment(e, `[${i}]`);
        throw e;
      }
    },
  };
}

/** T[count]: decodes to an array, encode requires exactly `count` elements. */
export function array<T, I>(element: FieldType<T, I>, count: number): FieldType<T[], readonly I[]> {
  if (!(element instanceof FieldType))
    throw new TypeError(`array: element is not a field type (got ${describe(element)})`);
  return new ArrayType(element, checkCount('array', count, 1));
}

// ---------------------------------------------------------------------------------------------
// Structs

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
// Names must work as C member names too (the ABI probe emits them), and as plain JS keys.
const RESERVED = new Set([
  'auto',
  'break',
  'case',
  'char',
  'const',
  'continue',
  'default',
  'do',
  'double',
  'else',
  'enum',
  'extern',
  'float',
  'for',
  'goto',
  'if',
  'inline',
  'int',
  'long',
  'register',
  'restrict',
  'return',
  'short',
  'signed',
  'sizeof',
  'static',
  'struct',
  'switch',
  'typedef',
  'union',
  'unsigned',
  'void',
  'volatile',
  'while',
  '_Alignas',
  '_Alignof',
  '_Atomic',
  '_Bool',
  '_Complex',
  '_Generic',
  '_Imaginary',
  '_Noreturn',
  '_Static_assert',
  '_Thread_local',
  '__proto__',
]);
const ARCHES: readonly Arch[] = ['x64', 'x86', 'arm64'];
const PACKS: readonly number[] = [1, 2, 4, 8, 16];

interface CompiledField {
  readonly name: string;
  readonly offset: number;
  readonly codec: FieldCodec;
}

/** A C struct layout (made by {@link struct}): decode, encode, sizes and offsets for one arch. */
export class StructType<F extends Fields> extends FieldType<DecodedOf<F>, InputOf<F>> {
  readonly kind: string;
  readonly archDependent: boolean;
  /** sizeof, trailing padding included. */
  readonly size: number;
  /** alignof, after `pack`. */
  readonly alignment: number;
  /** The `#pragma pack` in force, or undefined for natural alignment. */
  readonly pack: Pack | undefined;
  /** Fields in declaration (= memory) order. */
  readonly fields: readonly FieldLayout[];
  private readonly byName: ReadonlyMap<string, FieldLayout>;
  private readonly structCodec: FieldCodec;

  /** Use {@link struct}. */
  constructor(
    /** The C name, used in messages. */
    readonly name: string,
    spec: F,
    options: StructOptions = {},
  ) {
    super();
    if (typeof name !== 'string' || !IDENTIFIER.test(name)) {
      throw new TypeError(`struct: name must be a C identifier, got ${describe(name)}`);
    }
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
      throw new TypeError(`struct ${name}: fields must be an object of field types, got ${describe(spec)}`);
    }
    if (typeof options !== 'object' || options === null)
      throw new TypeError(`struct ${name}: options must be an object`);
    for (const k of Object.keys(options)) {
      if (k !== 'pack' && k !== 'arch') throw new TypeError(`struct ${name}: unknown option "${k}"`);
    }
    const arch = options.arch ?? 'x64';
    if (!ARCHES.includes(arch))
      throw new TypeError(`struct ${name}: arch must be one of ${ARCHES.join(', ')}, got ${describe(arch)}`);
    const pack = options.pack;
    if (pack !== undefined && !PACKS.includes(pack)) {
      throw new RangeError(`struct ${name}: pack must be one of ${PACKS.join(', ')}, got ${describe(pack)}`);
    }
    if (Object.getOwnPropertySymbols(spec).length > 0)
      throw new TypeError(`struct ${name}: field names must be strings`);
    const names = Object.keys(spec);
    if (names.length === 0) throw new TypeError(`struct ${name}: a struct needs at least one field`);

    this.kind = `struct ${name}`;
    this.arch = arch;
    this.pack = pack;
    const layouts: FieldLayout[] = [];
    const compiled: CompiledField[] = [];
    let offset = 0;
    let alignment = 1;
    let archDependent = false;
    for (const fname of names) {
      const where = `struct ${name}: field "${fname}"`;
      if (!IDENTIFIER.test(fname)) throw new TypeError(`${where}: name must be a C identifier`);
      if (RESERVED.has(fname)) throw new TypeError(`${where}: name is a reserved word`);
      const type: unknown = spec[fname];
      if (!(type instanceof FieldType)) {
        throw new TypeError(
          `${where}: not a field type (got ${describe(type)}); use u32, utf16(n), array(...), struct(...)...`,
        );
      }
      let codec: FieldCodec;
      try {
        codec = type.codec(arch);
      } catch (e) {
        const message = `${where}: ${e instanceof Error ? e.message : String(e)}`;
        throw e instanceof RangeError ? new RangeError(message) : new TypeError(message);
      }
      archDependent ||= type.archDependent;
      const a = pack === undefined ? codec.alignment : Math.min(pack, codec.alignment);
      offset = alignUp(offset, a);
      layouts.push(Object.freeze({ name: fname, type: type as AnyFieldType, offset, size: codec.size, alignment: a }));
      compiled.push({ name: fname, offset, codec });
      offset += codec.size;
      if (offset > MAX_STRUCT_SIZE) throw new RangeError(`struct ${name} is too large (over ${MAX_STRUCT_SIZE} bytes)`);
      alignment = Math.max(alignment, a);
    }
    this.size = alignUp(offset, alignment);
    this.alignment = alignment;
    this.archDependent = archDependent;
    this.fields = Object.freeze(layouts);
    this.byName = new Map(layouts.map((l) => [l.name, l]));
    this.structCodec = structCodec(compiled, this.size, alignment, this.kind);
    Object.freeze(this);
  }

  /** The target whose layout this is (StructOptions.arch). */
  readonly arch: Arch;

  codec(arch: Arch): FieldCodec {
    // x64 and arm64 layouts are identical; only the pointer size tells arches apart.
    if (this.archDependent && pointerSize(arch) !== pointerSize(this.arch)) {
      throw new Error(
        `struct ${this.name} was laid out for ${this.arch} and contains pointer-sized fields; ` +
          `define it with { arch: '${arch}' } to use it in a ${arch} struct`,
      );
    }
    return this.structCodec;
  }

  /** Byte offset of a top-level field. */
  offsetOf(field: keyof F & string): number {
    return this.field(field).offset;
  }

  /** Layout of a top-level field. */
  field(field: keyof F & string): FieldLayout {
    const l = this.byName.get(field);
    if (l === undefined) throw new TypeError(`struct ${this.name} has no field ${describe(field)}`);
    return l;
  }

  /**
   * A new Buffer of exactly `size` bytes; padding and unused string/byte tails are zero. Like
   * Buffer.from(), a small result may be a slice of Node's shared pool (mind byteOffset if you use .buffer).
   */
  encode(value: InputOf<F>): Buffer {
    // allocUnsafe + fill: small sizes come from Node's pool, which is several times faster than alloc().
    const buf = Buffer.allocUnsafe(this.size).fill(0);
    this.writeChecked(buf, 0, value);
    return buf;
  }

  /**
   * Writes `value` at `offset` (the whole `size` bytes, padding zeroed) and returns offset + size.
   * On a validation error the target range is left partly written.
   */
  encodeInto(target: Uint8Array, offset: number, value: InputOf<F>): number {
    const buf = asBuffer(target, `${this.name}.encodeInto`);
    checkRange(buf, offset, this.size, `${this.name}.encodeInto`);
    buf.fill(0, offset, offset + this.size);
    this.writeChecked(buf, offset, value);
    return offset + this.size;
  }

  /** Reads one struct at `offset` (default 0). RangeError when fewer than `size` bytes remain. */
  decode(source: Uint8Array, offset = 0): DecodedOf<F> {
    const buf = asBuffer(source, `${this.name}.decode`);
    checkRange(buf, offset, this.size, `${this.name}.decode`);
    return this.structCodec.read(buf, offset) as DecodedOf<F>;
  }

  private writeChecked(buf: Buffer, offset: number, value: unknown): void {
    try {
      this.structCodec.write(buf, offset, value);
    } catch (e) {
      throw toPublicError(e, this.name);
    }
  }
}

function structCodec(fields: readonly CompiledField[], size: number, alignment: number, kind: string): FieldCodec {
  const n = fields.length;
  return {
    size,
    alignment,
    read(b, o) {
      const out: Record<string, unknown> = {};
      for (let i = 0; i < n; i++) {
        const f = fields[i] as CompiledField;
        out[f.name] = f.codec.read(b, o + f.offset);
      }
      return out;
    },
    write(b, o, v) {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
        fail('type', `expected an object (${kind}), got ${describe(v)}`);
      }
      const obj = v as Record<string, unknown>;
      let i = 0;
      try {
        for (; i < n; i++) {
          const f = fields[i] as CompiledField;
          f.codec.write(b, o + f.offset, obj[f.name]);
        }
      } catch (e) {
        addSegment(e, `.${(fields[i] as CompiledField).name}`);
        throw e;
      }
    },
  };
}

function pointerSize(arch: Arch): number {
  return arch === 'x86' ? 4 : 8;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function asBuffer(v: unknown, what: string): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new TypeError(`${what}: expected a Buffer or Uint8Array, got ${describe(v)}`);
}

function checkRange(buf: Buffer, offset: unknown, size: number, what: string): void {
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(`${what}: offset must be a non-negative integer, got ${describe(offset)}`);
  }
  if (buf.length - offset < size) {
    throw new RangeError(`${what}: needs ${size} bytes at offset ${offset}, buffer has ${buf.length}`);
  }
}

/**
 * Defines a struct layout. Field order is the object's key order (names must be C identifiers, so
 * JS never reorders them). Throws a TypeError/RangeError for an invalid spec.
 */
export function struct<F extends Fields>(name: string, fields: F, options?: StructOptions): StructType<F> {
  return new StructType(name, fields, options);
}

/** Size in bytes of a field type; `arch` only matters for pointer-sized types (default x64). */
export function sizeof(type: AnyFieldType, arch: Arch = 'x64'): number {
  if (!(type instanceof FieldType)) throw new TypeError(`sizeof: not a field type (got ${describe(type)})`);
  if (type instanceof StructType) return type.size;
  return type.codec(arch).size;
}

/** Natural alignment of a field type (before any `pack`). */
export function alignof(type: AnyFieldType, arch: Arch = 'x64'): number {
  if (!(type instanceof FieldType)) throw new TypeError(`alignof: not a field type (got ${describe(type)})`);
  if (type instanceof StructType) return type.alignment;
  return type.codec(arch).alignment;
}

/** Byte offset of a top-level field of a struct. */
export function offsetof<F extends Fields>(type: StructType<F>, field: keyof F & string): number {
  if (!(type instanceof StructType)) throw new TypeError(`offsetof: not a struct type (got ${describe(type)})`);
  return type.offsetOf(field);
}

// ---------------------------------------------------------------------------------------------
// Protocol headers (fltuserstructures.h). Same layout on x86, x64 and arm64: 4 bytes of padding
// before MessageId; packing them to 12 bytes shifts every later field.

/** FILTER_MESSAGE_HEADER { ULONG ReplyLength; ULONGLONG MessageId; }: size 16. */
export const FILTER_MESSAGE_HEADER = struct('FILTER_MESSAGE_HEADER', {
  /** Reply bytes the minifilter waits for, FILTER_REPLY_HEADER included; 0 = no reply expected. */
  replyLength: u32,
  /** Identifies the message; the reply quotes it. */
  messageId: u64,
});
/** FILTER_REPLY_HEADER { NTSTATUS Status; ULONGLONG MessageId; }: size 16. */
export const FILTER_REPLY_HEADER = struct('FILTER_REPLY_HEADER', {
  /** NTSTATUS the replier sets (fltmgr: `reply(data, { status })`). */
  status: i32,
  /** The MessageId of the message answered. */
  messageId: u64,
});
