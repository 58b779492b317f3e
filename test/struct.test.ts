import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import {
  FILTER_MESSAGE_HEADER,
  FILTER_REPLY_HEADER,
  alignof,
  array,
  bool32,
  bool8,
  bytes,
  f32,
  f64,
  i16,
  i32,
  i64,
  i8,
  offsetof,
  ptr,
  sizeof,
  struct,
  u16,
  u32,
  u64,
  u8,
  utf16,
  wchar,
  type FieldType,
} from '../lib/struct';

// Compile-time type equality: a wrong inferred type fails `npm run typecheck`.
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(_ok: T): void {}

const ScanRequest = struct('SCAN_REQUEST', {
  fileId: u64,
  processId: u32,
  fileSize: i64,
  path: utf16(260),
  contents: bytes(1024),
  flags: array(u16, 4),
});

function scanValue() {
  return {
    fileId: 0x1122334455667788n,
    processId: 4242,
    fileSize: -5n,
    path: 'C:\\dir\\file.txt',
    contents: Buffer.from('MZ'),
    flags: [1, 2, 3, 65535],
  };
}

describe('type inference', () => {
  test('decoded and input types follow the layout', () => {
    type Req = typeof ScanRequest.Type;
    assertType<
      Equal<
        Req,
        {
          fileId: bigint;
          processId: number;
          fileSize: bigint;
          path: string;
          contents: Buffer;
          flags: number[];
        }
      >
    >(true);
    type In = typeof ScanRequest.Input;
    assertType<Equal<In['contents'], Uint8Array>>(true);
    assertType<Equal<In['fileId'], bigint | number>>(true);
    const _Outer = struct('OUTER', {
      h: FILTER_MESSAGE_HEADER,
      arr: array(struct('E', { ok: bool8, c: wchar }), 2),
      d: f64,
    });
    assertType<
      Equal<
        typeof _Outer.Type,
        {
          h: { replyLength: number; messageId: bigint };
          arr: { ok: boolean; c: string }[];
          d: number;
        }
      >
    >(true);
    assertType<Equal<typeof ptr.Type, bigint>>(true);
    // @ts-expect-error processId must be a number
    assert.throws(() => ScanRequest.encode({ ...scanValue(), processId: '1' }), TypeError);
    // @ts-expect-error unknown field name
    assert.throws(() => ScanRequest.offsetOf('nope'), TypeError);
  });
});

describe('layout', () => {
  test('SCAN_REQUEST offsets, size and alignment (x64 default)', () => {
    assert.equal(ScanRequest.arch, 'x64');
    assert.deepEqual(
      ScanRequest.fields.map((f) => [f.name, f.offset, f.size, f.alignment]),
      [
        ['fileId', 0, 8, 8],
        ['processId', 8, 4, 4],
        ['fileSize', 16, 8, 8],
        ['path', 24, 520, 2],
        ['contents', 544, 1024, 1],
        ['flags', 1568, 8, 2],
      ],
    );
    assert.equal(ScanRequest.size, 1576);
    assert.equal(ScanRequest.alignment, 8);
    assert.equal(ScanRequest.offsetOf('path'), 24);
    assert.equal(offsetof(ScanRequest, 'flags'), 1568);
    assert.equal(sizeof(ScanRequest), 1576);
    assert.equal(alignof(ScanRequest), 8);
  });

  test('trailing padding rounds the size up to the alignment', () => {
    const T = struct('T', { a: u64, b: u8 });
    assert.equal(T.size, 16);
    const S = struct('S', { a: u8, b: u16, c: u8 });
    assert.deepEqual([S.size, S.alignment, S.offsetOf('b'), S.offsetOf('c')], [6, 2, 2, 4]);
    const B = struct('B', { a: u8, b: u8, c: u8 });
    assert.deepEqual([B.size, B.alignment], [3, 1]);
  });

  test('64-bit members align to 8 on x86 too (MSVC rule), ptr is 4 on x86 and 8 elsewhere', () => {
    for (const arch of ['x86', 'x64', 'arm64'] as const) {
      const M = struct('M', { a: u8, b: u64, c: u8, d: f64, e: i64 }, { arch });
      assert.deepEqual(
        [M.offsetOf('b'), M.offsetOf('d'), M.offsetOf('e'), M.size, M.alignment],
        [8, 24, 32, 40, 8],
        arch,
      );
    }
    const P86 = struct('P', { a: u8, p: ptr, h: array(ptr, 2) }, { arch: 'x86' });
    assert.deepEqual([P86.offsetOf('p'), P86.offsetOf('h'), P86.size, P86.alignment], [4, 8, 16, 4]);
    const P64 = struct('P', { a: u8, p: ptr, h: array(ptr, 2) }, { arch: 'arm64' });
    assert.deepEqual([P64.offsetOf('p'), P64.offsetOf('h'), P64.size, P64.alignment], [8, 16, 32, 8]);
    assert.equal(sizeof(ptr, 'x86'), 4);
    assert.equal(sizeof(ptr), 8);
    assert.equal(alignof(ptr, 'x86'), 4);
    assert.equal(sizeof(utf16(10)), 20);
    assert.equal(sizeof(array(u32, 3)), 12);
  });

  test('pack works like #pragma pack(n)', () => {
    const f = { a: u8, b: u64, c: u16, d: u32 } as const;
    const sizes = ([1, 2, 4, 8, 16] as const).map((pack) => {
      const S = struct('S', f, { pack });
      return [S.offsetOf('b'), S.offsetOf('c'), S.offsetOf('d'), S.size, S.alignment];
    });
    assert.deepEqual(sizes, [
      [1, 9, 11, 15, 1],
      [2, 10, 12, 16, 2],
      [4, 12, 16, 20, 4],
      [8, 16, 20, 24, 8],
      [8, 16, 20, 24, 8],
    ]);
  });

  test('nested structs keep their own layout; outer pack caps their alignment', () => {
    const Inner = struct('INNER', { x: u8, y: u64 });
    const Outer = struct('OUTER', { a: u8, inner: Inner, b: u8 });
    assert.deepEqual([Outer.offsetOf('inner'), Outer.offsetOf('b'), Outer.size], [8, 24, 32]);
    const Packed = struct('PACKED', { a: u8, inner: Inner, b: u8 }, { pack: 2 });
    assert.deepEqual([Packed.offsetOf('inner'), Packed.offsetOf('b'), Packed.size, Packed.alignment], [2, 18, 20, 2]);
    const P1 = struct('P1', { a: u8, b: u32 }, { pack: 1 });
    const HoldsP1 = struct('H', { a: u8, p: P1, c: array(P1, 2) });
    assert.deepEqual([HoldsP1.offsetOf('p'), HoldsP1.offsetOf('c'), HoldsP1.size, HoldsP1.alignment], [1, 6, 16, 1]);
  });

  test('protocol headers are 16 bytes with MessageId at 8', () => {
    assert.deepEqual([FILTER_MESSAGE_HEADER.size, FILTER_MESSAGE_HEADER.offsetOf('messageId')], [16, 8]);
    assert.deepEqual([FILTER_REPLY_HEADER.size, FILTER_REPLY_HEADER.offsetOf('messageId')], [16, 8]);
    const h = FILTER_MESSAGE_HEADER.encode({ replyLength: 0x11223344, messageId: 0x0102030405060708n });
    assert.equal(h.toString('hex'), '44332211000000000807060504030201');
    const r = FILTER_REPLY_HEADER.encode({ status: 0xc0000022 | 0, messageId: 7 });
    assert.equal(r.toString('hex'), '220000c0000000000700000000000000');
    assert.deepEqual(FILTER_REPLY_HEADER.decode(r), { status: -1073741790, messageId: 7n });
  });

  test('arch-independent structs nest in any arch; pointer-holding ones only in their own', () => {
    const X86 = struct('X86', { h: FILTER_MESSAGE_HEADER, p: ptr }, { arch: 'x86' });
    assert.deepEqual([X86.offsetOf('p'), X86.size], [16, 24]);
    const WithPtr = struct('WITH_PTR', { p: ptr });
    assert.throws(() => struct('OUTER', { w: WithPtr }, { arch: 'x86' }), {
      name: 'TypeError',
      message: /OUTER.*"w".*WITH_PTR was laid out for x64.*arch: 'x86'/,
    });
    assert.throws(() => struct('OUTER', { w: array(WithPtr, 2) }, { arch: 'x86' }), TypeError);
    assert.equal(struct('OUTER', { w: WithPtr }, { arch: 'arm64' }).archDependent, true);
  });
});

describe('definition errors', () => {
  test('invalid names', () => {
    assert.throws(() => struct('bad name', { a: u8 }), { name: 'TypeError', message: /C identifier/ });
    assert.throws(() => struct('', { a: u8 }), TypeError);
    assert.throws(() => struct('1X', { a: u8 }), TypeError);
    for (const field of ['1a', 'my-field', 'a b', '', 'ü', 'int', 'struct', '_Bool']) {
      assert.throws(
        () => struct('S', { [field]: u8 }),
        { name: 'TypeError', message: new RegExp(`S: field "${field}"`) },
        field,
      );
    }
    // Via JSON.parse, __proto__ becomes an own key; it must not be accepted as a field.
    const spec = JSON.parse('{"__proto__": 1}') as Record<string, FieldType<number>>;
    spec.__proto__ = u8;
    assert.throws(() => struct('S', spec), /reserved/);
    assert.throws(() => struct('S', { [Symbol('x')]: u8, a: u8 }), /field names must be strings/);
  });

  test('invalid field types and specs', () => {
    const bad: unknown[] = ['u32', undefined, null, 4, {}, () => 1, [u8]];
    for (const t of bad) {
      assert.throws(() => struct('S', { a: u8, b: t as FieldType<number> }), {
        name: 'TypeError',
        message: /S: field "b": not a field type/,
      });
    }
    assert.throws(() => struct('S', {}), { name: 'TypeError', message: /at least one field/ });
    assert.throws(() => struct('S', null as unknown as { a: FieldType<number> }), TypeError);
    assert.throws(() => struct('S', [u8] as unknown as { a: FieldType<number> }), TypeError);
  });

  test('invalid options', () => {
    for (const pack of [0, 3, 32, '4', 1.5]) {
      assert.throws(() => struct('S', { a: u8 }, { pack: pack as 1 }), {
        name: 'RangeError',
        message: /pack must be one of/,
      });
    }
    assert.throws(() => struct('S', { a: u8 }, { arch: 'arm' as 'x64' }), {
      name: 'TypeError',
      message: /arch must be one of/,
    });
    assert.throws(() => struct('S', { a: u8 }, { packing: 1 } as unknown as { pack: 1 }), /unknown option "packing"/);
  });

  test('invalid counts and sizes', () => {
    for (const n of [0, -1, 1.5, NaN, Infinity, '4']) {
      assert.throws(() => array(u8, n as number), RangeError, String(n));
      assert.throws(() => bytes(n as number), RangeError, String(n));
      assert.throws(() => utf16(n as number), RangeError, String(n));
    }
    assert.throws(() => array('u8' as unknown as FieldType<number>, 2), TypeError);
    assert.throws(() => utf16(4, { nulTerminated: 'no' as unknown as boolean }), TypeError);
    assert.throws(() => struct('HUGE', { a: array(u64, 2 ** 28) }), {
      name: 'RangeError',
      message: /HUGE: field "a": u64\[268435456\] is too large/,
    });
    assert.throws(() => struct('HUGE', { a: bytes(2 ** 30), b: bytes(2 ** 30) }), {
      name: 'RangeError',
      message: /too large/,
    });
  });
});

describe('encode / decode', () => {
  test('round-trips every field type', () => {
    const Elem = struct('ELEM', { ok: bool8, c: wchar });
    const All = struct('ALL', {
      a: u8,
      b: u16,
      c: u32,
      d: u64,
      e: i8,
      f: i16,
      g: i32,
      h: i64,
      i: f32,
      j: f64,
      k: bool8,
      l: bool32,
      m: ptr,
      n: wchar,
      o: utf16(8),
      p: bytes(4),
      q: array(Elem, 2),
      r: array(array(i16, 2), 2),
      s: array(utf16(3), 2),
    });
    const v = {
      a: 255,
      b: 65535,
      c: 4294967295,
      d: 18446744073709551615n,
      e: -128,
      f: -32768,
      g: -2147483648,
      h: -9223372036854775808n,
      i: 1.5,
      j: -Math.PI,
      k: true,
      l: true,
      m: 0xffff_ffff_ffff_fff0n,
      n: '\u20ac',
      o: 'a\u{1F600}\ud800z',
      p: Buffer.from([1, 2, 3, 4]),
      q: [
        { ok: true, c: 'x' },
        { ok: false, c: '\0' },
      ],
      r: [
        [1, -1],
        [32767, -2],
      ],
      s: ['ab', ''],
    };
    const buf = All.encode(v);
    assert.equal(buf.length, All.size);
    assert.deepEqual(All.decode(buf), v);
    const v2 = { ...v, a: 0, d: 0n, h: 9223372036854775807n, i: Number.NaN, j: -Infinity, k: false, l: false, m: 0n };
    assert.deepEqual(All.decode(All.encode(v2)), v2);
  });

  test('numbers are accepted for 64-bit fields when exact', () => {
    const S = struct('S', { a: u64, b: i64, p: ptr });
    assert.deepEqual(S.decode(S.encode({ a: Number.MAX_SAFE_INTEGER, b: -1, p: 4096 })), {
      a: 9007199254740991n,
      b: -1n,
      p: 4096n,
    });
  });

  test('f32 rounds to single precision', () => {
    const S = struct('S', { x: f32 });
    assert.equal(S.decode(S.encode({ x: 0.1 })).x, Math.fround(0.1));
  });

  test('padding and string/byte tails are zero; encodeInto touches only its range', () => {
    const S = struct('S', { a: u8, b: u32, s: utf16(4), t: bytes(3), c: u64 });
    const target = Buffer.alloc(S.size + 8, 0xaa);
    const end = S.encodeInto(target, 4, { a: 1, b: 2, s: 'x', t: new Uint8Array([9]), c: 3n });
    assert.equal(end, 4 + S.size);
    assert.equal(target.subarray(0, 4).toString('hex'), 'aaaaaaaa');
    assert.equal(target.subarray(4 + S.size).toString('hex'), 'aaaaaaaa');
    assert.equal(
      target.subarray(4, 4 + S.size).toString('hex'),
      '01000000' + '02000000' + '7800000000000000' + '090000' + '00000000' + '00' + '0300000000000000',
    );
    assert.deepEqual(S.encode({ a: 1, b: 2, s: 'x', t: new Uint8Array([9]), c: 3n }), target.subarray(4, 4 + S.size));
  });

  test('encodeInto and decode accept a plain Uint8Array view', () => {
    const backing = new Uint8Array(64);
    const view = new Uint8Array(backing.buffer, 8, 40);
    FILTER_MESSAGE_HEADER.encodeInto(view, 4, { replyLength: 5, messageId: 6n });
    assert.equal(backing[12], 5);
    assert.equal(backing[20], 6);
    assert.deepEqual(FILTER_MESSAGE_HEADER.decode(view, 4), { replyLength: 5, messageId: 6n });
  });

  test('decode at an offset and of a larger buffer', () => {
    const buf = Buffer.concat([Buffer.alloc(3, 0xff), ScanRequest.encode(scanValue()), Buffer.alloc(10, 0xff)]);
    assert.deepEqual(ScanRequest.decode(buf, 3), {
      ...scanValue(),
      contents: Buffer.concat([Buffer.from('MZ'), Buffer.alloc(1022)]),
    });
  });

  test('utf16: stops at the first NUL; an unterminated full buffer decodes whole', () => {
    const S = struct('S', { s: utf16(4) });
    assert.equal(S.decode(Buffer.from('a\0bc', 'utf16le')).s, 'a');
    assert.equal(S.decode(Buffer.from('abcd', 'utf16le')).s, 'abcd');
    assert.equal(S.decode(Buffer.alloc(8)).s, '');
    assert.deepEqual(S.encode({ s: 'abc' }), Buffer.from('abc\0', 'utf16le'));
    assert.throws(() => S.encode({ s: 'abcd' }), {
      name: 'RangeError',
      message: /^S\.s: string of 4 UTF-16 code units does not fit WCHAR\[4\] \(max 3 plus the NUL terminator\)/,
    });
    const U = struct('U', { s: utf16(4, { nulTerminated: false }) });
    assert.deepEqual(U.encode({ s: 'abcd' }), Buffer.from('abcd', 'utf16le'));
    assert.throws(() => U.encode({ s: 'abcde' }), { name: 'RangeError', message: /^U\.s: .*max 4\)/ });
    // A surrogate pair counts as two code units.
    assert.throws(() => S.encode({ s: 'ab\u{1F600}' }), RangeError);
  });

  test('bool decodes any non-zero value as true', () => {
    const S = struct('S', { a: bool8, b: bool32 });
    assert.deepEqual(S.decode(Buffer.from([2, 0, 0, 0, 0, 0, 0, 0x80])), { a: true, b: true });
    assert.deepEqual(S.decode(Buffer.alloc(8)), { a: false, b: false });
  });

  test('bytes decodes to a copy', () => {
    const S = struct('S', { b: bytes(2) });
    const src = Buffer.from([1, 2]);
    const out = S.decode(src);
    src[0] = 9;
    assert.deepEqual([...out.b], [1, 2]);
    assert.ok(Buffer.isBuffer(out.b));
  });

  test('fields not in the layout are ignored', () => {
    const S = struct('S', { a: u8 });
    assert.deepEqual(S.encode({ a: 1, extra: 2 } as { a: number }), Buffer.from([1]));
  });
});

describe('encode errors name the field path', () => {
  const Leaf = struct('LEAF', { x: u16, names: array(utf16(4), 2) });
  const Mid = struct('MID', { leaves: array(Leaf, 2) });
  const Top = struct('TOP', { id: u32, mid: Mid });
  const good = () => ({
    id: 1,
    mid: {
      leaves: [
        { x: 1, names: ['a', 'b'] },
        { x: 2, names: ['c', 'd'] },
      ],
    },
  });

  test('deeply nested', () => {
    const v = good();
    (v.mid.leaves[1] as { x: number }).x = 70000;
    assert.throws(() => Top.encode(v), {
      name: 'RangeError',
      message: 'TOP.mid.leaves[1].x: 70000 is out of range for u16 [0, 65535]',
    });
    const w = good();
    (w.mid.leaves[0] as { names: string[] }).names[1] = 'toolong';
    assert.throws(() => Top.encode(w), {
      name: 'RangeError',
      message: /^TOP\.mid\.leaves\[0\]\.names\[1\]: string of 7/,
    });
    const target = Buffer.alloc(Top.size);
    assert.throws(() => Top.encodeInto(target, 0, w), {
      name: 'RangeError',
      message: /^TOP\.mid\.leaves\[0\]\.names\[1\]/,
    });
  });

  test('missing fields, wrong shapes', () => {
    assert.throws(() => Top.encode({ id: 1 } as ReturnType<typeof good>), {
      name: 'TypeError',
      message: /^TOP\.mid: expected an object \(struct MID\), got undefined/,
    });
    assert.throws(() => Top.encode(null as unknown as ReturnType<typeof good>), {
      name: 'TypeError',
      message: /^TOP: expected an object/,
    });
    assert.throws(() => Top.encode([] as unknown as ReturnType<typeof good>), {
      name: 'TypeError',
      message: /^TOP: expected an object/,
    });
    const v = good();
    v.mid.leaves.pop();
    assert.throws(() => Top.encode(v), {
      name: 'RangeError',
      message: 'TOP.mid.leaves: expected exactly 2 elements, got 1',
    });
    assert.throws(() => Top.encode({ id: 1, mid: { leaves: 'x' } } as unknown as ReturnType<typeof good>), {
      name: 'TypeError',
      message: /^TOP\.mid\.leaves: expected an array/,
    });
  });

  const cases: [FieldType<unknown, unknown>, unknown, 'TypeError' | 'RangeError'][] = [
    [u8, 256, 'RangeError'],
    [u8, -1, 'RangeError'],
    [u8, 1.5, 'RangeError'],
    [u8, NaN, 'RangeError'],
    [u8, '1', 'TypeError'],
    [u8, 1n, 'TypeError'],
    [u8, undefined, 'TypeError'],
    [i8, -129, 'RangeError'],
    [i8, 128, 'RangeError'],
    [i16, 32768, 'RangeError'],
    [u16, 65536, 'RangeError'],
    [u32, 2 ** 32, 'RangeError'],
    [u32, -1, 'RangeError'],
    [i32, 0xc0000022, 'RangeError'],
    [i32, Infinity, 'RangeError'],
    [u64, -1n, 'RangeError'],
    [u64, 2n ** 64n, 'RangeError'],
    [u64, 2 ** 53, 'RangeError'],
    [u64, 1.5, 'RangeError'],
    [u64, '1', 'TypeError'],
    [i64, 2n ** 63n, 'RangeError'],
    [i64, -(2n ** 63n) - 1n, 'RangeError'],
    [ptr, -1n, 'RangeError'],
    [f32, 1e39, 'RangeError'],
    [f32, '1', 'TypeError'],
    [f64, 1n, 'TypeError'],
    [bool8, 1, 'TypeError'],
    [bool32, 'true', 'TypeError'],
    [wchar, '', 'RangeError'],
    [wchar, 'ab', 'RangeError'],
    [wchar, 65, 'TypeError'],
    [utf16(4), 42, 'TypeError'],
    [utf16(4), 'a\0b', 'RangeError'],
    [bytes(2), new Uint8Array(3), 'RangeError'],
    [bytes(2), 'ab', 'TypeError'],
    [bytes(2), [1, 2], 'TypeError'],
    [array(u8, 2), new Uint8Array(2), 'TypeError'],
    [array(u8, 2), [1, 2, 3], 'RangeError'],
  ];
  for (const [type, value, name] of cases) {
    test(`${type.kind} rejects ${typeof value} ${String(value).slice(0, 20)}`, () => {
      const S = struct('S', { pad: u8, field: type });
      assert.throws(
        () => S.encode({ pad: 0, field: value }),
        (e: unknown) => {
          assert.ok(e instanceof Error);
          assert.equal(e.name, name);
          assert.match(e.message, /^S\.field: /);
          return true;
        },
      );
    });
  }

  test('ptr range depends on the arch', () => {
    const P86 = struct('P', { p: ptr }, { arch: 'x86' });
    assert.deepEqual(P86.decode(P86.encode({ p: 0xffffffffn })), { p: 0xffffffffn });
    assert.throws(() => P86.encode({ p: 0x100000000n }), {
      name: 'RangeError',
      message: /^P\.p: 4294967296 is out of range for ptr/,
    });
    const P64 = struct('P', { p: ptr });
    assert.deepEqual(P64.decode(P64.encode({ p: 0x100000000n })), { p: 0x100000000n });
  });

  test('infinite values are fine for floats', () => {
    const S = struct('S', { a: f32, b: f64 });
    assert.deepEqual(S.decode(S.encode({ a: -Infinity, b: Infinity })), { a: -Infinity, b: Infinity });
  });
});

describe('buffer and offset errors', () => {
  test('decode: short buffer, bad offsets, wrong input', () => {
    assert.throws(() => FILTER_MESSAGE_HEADER.decode(Buffer.alloc(15)), {
      name: 'RangeError',
      message: /FILTER_MESSAGE_HEADER.decode: needs 16 bytes at offset 0, buffer has 15/,
    });
    assert.throws(() => FILTER_MESSAGE_HEADER.decode(Buffer.alloc(20), 5), RangeError);
    assert.doesNotThrow(() => FILTER_MESSAGE_HEADER.decode(Buffer.alloc(20), 4));
    for (const off of [-1, 1.5, NaN, '0']) {
      assert.throws(() => FILTER_MESSAGE_HEADER.decode(Buffer.alloc(32), off as number), {
        name: 'RangeError',
        message: /offset must be a non-negative integer/,
      });
    }
    assert.throws(() => FILTER_MESSAGE_HEADER.decode('abc' as unknown as Buffer), TypeError);
    assert.throws(() => FILTER_MESSAGE_HEADER.decode(new ArrayBuffer(16) as unknown as Buffer), TypeError);
  });

  test('encodeInto: short target, bad offsets', () => {
    const v = { replyLength: 1, messageId: 1n };
    assert.throws(() => FILTER_MESSAGE_HEADER.encodeInto(Buffer.alloc(16), 1, v), {
      name: 'RangeError',
      message: /needs 16 bytes at offset 1/,
    });
    assert.throws(() => FILTER_MESSAGE_HEADER.encodeInto(Buffer.alloc(16), -1, v), RangeError);
    assert.throws(() => FILTER_MESSAGE_HEADER.encodeInto({} as Buffer, 0, v), TypeError);
  });

  test('helpers reject non-types and unknown fields', () => {
    assert.throws(() => sizeof({} as FieldType<number>), TypeError);
    assert.throws(() => alignof(null as unknown as FieldType<number>), TypeError);
    assert.throws(() => offsetof(u32 as unknown as typeof ScanRequest, 'path'), TypeError);
    assert.throws(() => ScanRequest.offsetOf('nope' as 'path'), {
      name: 'TypeError',
      message: /SCAN_REQUEST has no field string "nope"/,
    });
  });
});
