// Property tests (fast-check) of lib/struct.ts over random layouts: nested structs, arrays, strings, byte
// arrays and every scalar, each struct with a random pack, on every arch.
//
// struct.test.ts pins hand-picked layouts and struct-abi.test.ts compares fixed layouts with real compilers;
// here an independent model of the documented MSVC rules (lib/struct.ts module comment) computes every
// offset, size and alignment of random layouts, and values round-trip through encode/decode. A failure
// prints the seed and the shrunk layout.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import fc from 'fast-check';
import {
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
  ptr,
  sizeof,
  struct,
  u16,
  u32,
  u64,
  u8,
  utf16,
  wchar,
  type AnyFieldType,
  type Arch,
  type Pack,
  type StructType,
  type Fields,
} from '../lib/struct';

fc.configureGlobal({ includeErrorInReport: true });

// ---- layout specs and the model ----------------------------------------------------------------------
const SCALARS = [
  'u8',
  'u16',
  'u32',
  'u64',
  'i8',
  'i16',
  'i32',
  'i64',
  'f32',
  'f64',
  'bool8',
  'bool32',
  'ptr',
  'wchar',
] as const;
type ScalarName = (typeof SCALARS)[number];

type Spec =
  | { k: 'scalar'; name: ScalarName }
  | { k: 'utf16'; n: number; nul: boolean }
  | { k: 'bytes'; n: number }
  | { k: 'array'; el: Spec; n: number }
  | { k: 'struct'; fields: Spec[]; pack: Pack | undefined };

const scalarTypes: Record<ScalarName, AnyFieldType> = {
  u8,
  u16,
  u32,
  u64,
  i8,
  i16,
  i32,
  i64,
  f32,
  f64,
  bool8,
  bool32,
  ptr,
  wchar,
} as Record<ScalarName, AnyFieldType>;

function scalarSize(name: ScalarName, arch: Arch): number {
  switch (name) {
    case 'u8':
    case 'i8':
    case 'bool8':
      return 1;
    case 'u16':
    case 'i16':
    case 'wchar':
      return 2;
    case 'u32':
    case 'i32':
    case 'f32':
    case 'bool32':
      return 4;
    case 'u64':
    case 'i64':
    case 'f64':
      return 8;
    case 'ptr':
      return arch === 'x86' ? 4 : 8;
  }
}

interface Model {
  size: number;
  align: number; // natural alignment, before an enclosing pack
  offsets?: number[]; // structs: field offsets
  fieldAligns?: number[]; // structs: effective alignment of each field
}

const up = (n: number, a: number) => Math.ceil(n / a) * a;

/** The documented rules, written out independently of lib/struct.ts. */
function model(spec: Spec, arch: Arch): Model {
  switch (spec.k) {
    case 'scalar': {
      const s = scalarSize(spec.name, arch);
      return { size: s, align: s }; // every scalar aligned to its size (8-byte ones on x86 too)
    }
    case 'utf16':
      return { size: 2 * spec.n, align: 2 };
    case 'bytes':
      return { size: spec.n, align: 1 };
    case 'array': {
      const el = model(spec.el, arch);
      return { size: el.size * spec.n, align: el.align };
    }
    case 'struct': {
      let end = 0;
      let align = 1;
      const offsets: number[] = [];
      const fieldAligns: number[] = [];
      for (const f of spec.fields) {
        const m = model(f, arch);
        const a = spec.pack === undefined ? m.align : Math.min(spec.pack, m.align);
        const off = up(end, a);
        offsets.push(off);
        fieldAligns.push(a);
        end = off + m.size;
        align = Math.max(align, a);
      }
      return { size: up(end, align), align, offsets, fieldAligns };
    }
  }
}

let structCount = 0;
function build(spec: Spec, arch: Arch): AnyFieldType {
  switch (spec.k) {
    case 'scalar':
      return scalarTypes[spec.name];
    case 'utf16':
      return utf16(spec.n, { nulTerminated: spec.nul });
    case 'bytes':
      return bytes(spec.n);
    case 'array':
      return array(build(spec.el, arch), spec.n) as AnyFieldType;
    case 'struct': {
      const fields: Record<string, AnyFieldType> = {};
      spec.fields.forEach((f, i) => (fields[`f${i}`] = build(f, arch)));
      const options = spec.pack === undefined ? { arch } : { arch, pack: spec.pack };
      return struct(`S${structCount++}`, fields, options) as unknown as AnyFieldType;
    }
  }
}

const specArb: fc.Arbitrary<Spec> = fc.letrec<{ field: Spec; struct: Spec }>((tie) => ({
  field: fc.oneof(
    { depthSize: 'small', maxDepth: 3 },
    { weight: 8, arbitrary: fc.constantFrom(...SCALARS).map((name): Spec => ({ k: 'scalar', name })) },
    {
      weight: 1,
      arbitrary: fc
        .record({ n: fc.integer({ min: 1, max: 6 }), nul: fc.boolean() })
        .map(({ n, nul }): Spec => ({ k: 'utf16', n, nul })),
    },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 9 }).map((n): Spec => ({ k: 'bytes', n })) },
    {
      weight: 1,
      arbitrary: fc
        .record({ el: tie('field'), n: fc.integer({ min: 1, max: 3 }) })
        .map(({ el, n }): Spec => ({ k: 'array', el, n })),
    },
    { weight: 1, arbitrary: tie('struct') },
  ),
  struct: fc
    .record({
      fields: fc.array(tie('field'), { minLength: 1, maxLength: 6 }),
      pack: fc.option(fc.constantFrom<Pack>(1, 2, 4, 8, 16), { nil: undefined }),
    })
    .map(({ fields, pack }): Spec => ({ k: 'struct', fields, pack })),
})).struct;

const archArb = fc.constantFrom<Arch>('x64', 'x86', 'arm64');

// ---- values -----------------------------------------------------------------------------------------
/** A value to encode and what decode must return for it. */
interface Sample {
  input: unknown;
  expected: unknown;
}

const codeUnit = fc.integer({ min: 0, max: 0xffff });
const same = (v: unknown): Sample => ({ input: v, expected: v });

function scalarValue(name: ScalarName, arch: Arch): fc.Arbitrary<Sample> {
  const int = (bits: number, signed: boolean) =>
    fc.integer({ min: signed ? -(2 ** (bits - 1)) : 0, max: signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1 }).map(same);
  const big = (min: bigint, max: bigint) =>
    fc.oneof(
      fc.bigInt({ min, max }).map(same),
      // Safe-integer numbers are accepted and come back as bigint.
      fc
        .integer({
          min: Number(min < -(2n ** 53n) ? -(2n ** 53n) + 1n : min),
          max: Number(max > 2n ** 53n ? 2n ** 53n - 1n : max),
        })
        .map((n) => ({ input: n, expected: BigInt(n) })),
    );
  switch (name) {
    case 'u8':
      return int(8, false);
    case 'u16':
      return int(16, false);
    case 'u32':
      return int(32, false);
    case 'i8':
      return int(8, true);
    case 'i16':
      return int(16, true);
    case 'i32':
      return int(32, true);
    case 'u64':
      return big(0n, 2n ** 64n - 1n);
    case 'i64':
      return big(-(2n ** 63n), 2n ** 63n - 1n);
    case 'ptr':
      return arch === 'x86' ? big(0n, 2n ** 32n - 1n) : big(0n, 2n ** 64n - 1n);
    // Single-precision values (NaN, infinities, -0 included) survive exactly; any double rounds.
    case 'f32':
      return fc.oneof(
        fc.float().map(same),
        fc.double({ min: -3e38, max: 3e38 }).map((d) => ({ input: d, expected: Math.fround(d) })),
      );
    case 'f64':
      return fc.double().map(same);
    case 'bool8':
    case 'bool32':
      return fc.boolean().map(same);
    case 'wchar':
      return codeUnit.map((u) => same(String.fromCharCode(u)));
  }
}

function valueArb(spec: Spec, arch: Arch): fc.Arbitrary<Sample> {
  switch (spec.k) {
    case 'scalar':
      return scalarValue(spec.name, arch);
    case 'utf16':
      return fc
        .array(fc.integer({ min: 1, max: 0xffff }), { maxLength: spec.nul ? spec.n - 1 : spec.n })
        .map((units) => same(String.fromCharCode(...units)));
    case 'bytes':
      return fc.uint8Array({ maxLength: spec.n }).map((b) => {
        const expected = Buffer.alloc(spec.n); // decode gives exactly n bytes, the tail zero
        expected.set(b);
        return { input: b, expected };
      });
    case 'array':
      return fc.array(valueArb(spec.el, arch), { minLength: spec.n, maxLength: spec.n }).map((items) => ({
        input: items.map((s) => s.input),
        expected: items.map((s) => s.expected),
      }));
    case 'struct':
      return fc.tuple(...spec.fields.map((f) => valueArb(f, arch))).map((items) => {
        const input: Record<string, unknown> = {};
        const expected: Record<string, unknown> = {};
        items.forEach((s, i) => {
          input[`f${i}`] = s.input;
          expected[`f${i}`] = s.expected;
        });
        return { input, expected };
      });
  }
}

// Byte ranges that hold data (everything else is padding), relative to the start of `spec`.
function dataRanges(spec: Spec, arch: Arch, at: number, out: [number, number][]): void {
  switch (spec.k) {
    case 'array': {
      const el = model(spec.el, arch);
      for (let i = 0; i < spec.n; i++) dataRanges(spec.el, arch, at + i * el.size, out);
      return;
    }
    case 'struct': {
      const m = model(spec, arch);
      spec.fields.forEach((f, i) => dataRanges(f, arch, at + (m.offsets?.[i] ?? 0), out));
      return;
    }
    default:
      out.push([at, at + model(spec, arch).size]);
  }
}

// True if decoding these bytes gives a utf16 field that encode refuses: nulTerminated WCHAR[n] with no NUL.
function hasUnterminated(spec: Spec, arch: Arch, buf: Buffer, at: number): boolean {
  switch (spec.k) {
    case 'utf16': {
      if (!spec.nul) return false;
      for (let i = 0; i < spec.n; i++) if (buf.readUInt16LE(at + 2 * i) === 0) return false;
      return true;
    }
    case 'array': {
      const el = model(spec.el, arch);
      for (let i = 0; i < spec.n; i++) if (hasUnterminated(spec.el, arch, buf, at + i * el.size)) return true;
      return false;
    }
    case 'struct': {
      const m = model(spec, arch);
      return spec.fields.some((f, i) => hasUnterminated(f, arch, buf, at + (m.offsets?.[i] ?? 0)));
    }
    default:
      return false;
  }
}

type AnyStruct = StructType<Fields>;
const layoutWithValue = fc
  .tuple(specArb, archArb)
  .chain(([spec, arch]) => valueArb(spec, arch).map((sample) => ({ spec, arch, sample })));

// ---- properties ---------------------------------------------------------------------------------
test('random layouts: offsets, sizes and alignments follow the MSVC rules', () => {
  fc.assert(
    fc.property(specArb, archArb, (spec, arch) => {
      const T = build(spec, arch) as unknown as AnyStruct;
      const m = model(spec, arch);
      assert.equal(T.size, m.size);
      assert.equal(T.alignment, m.align);
      assert.equal(sizeof(T as unknown as AnyFieldType, arch), m.size);
      assert.equal(alignof(T as unknown as AnyFieldType, arch), m.align);
      assert.deepEqual(
        T.fields.map((f) => f.offset),
        m.offsets,
      );
      assert.deepEqual(
        T.fields.map((f) => f.alignment),
        m.fieldAligns,
      );
      // The rules' consequences, checked on the library's own numbers as well.
      let end = 0;
      for (const f of T.fields) {
        assert.equal(f.offset % f.alignment, 0, `${f.name} misaligned`);
        assert.ok(f.offset >= end && f.offset - end < f.alignment, `${f.name}: no overlap, least padding`);
        assert.equal(T.offsetOf(f.name), f.offset);
        end = f.offset + f.size;
      }
      assert.equal(T.size % T.alignment, 0);
      assert.ok(T.size >= end && T.size - end < T.alignment);
      if (spec.k === 'struct' && spec.pack !== undefined) assert.ok(T.alignment <= spec.pack);
    }),
    { numRuns: 1000 },
  );
});

test('random layouts: encode -> decode round-trips; padding is zero; encodeInto writes only its range', () => {
  fc.assert(
    fc.property(layoutWithValue, fc.integer({ min: 0, max: 7 }), ({ spec, arch, sample }, lead) => {
      const T = build(spec, arch) as unknown as AnyStruct;
      const buf = T.encode(sample.input as never);
      assert.equal(buf.length, T.size);
      assert.deepEqual(T.decode(buf), sample.expected);
      const ranges: [number, number][] = [];
      dataRanges(spec, arch, 0, ranges);
      const isData = new Array<boolean>(T.size).fill(false);
      for (const [a, b] of ranges) for (let i = a; i < b; i++) isData[i] = true;
      for (let i = 0; i < T.size; i++) if (!isData[i]) assert.equal(buf[i], 0, `padding byte ${i}`);
      // Into a dirty buffer at an offset: the same bytes, the surroundings untouched, decodable there.
      const target = Buffer.alloc(lead + T.size + 5, 0xaa);
      assert.equal(T.encodeInto(target, lead, sample.input as never), lead + T.size);
      assert.deepEqual(target.subarray(lead, lead + T.size), buf);
      assert.ok(
        target.subarray(0, lead).every((b) => b === 0xaa) && target.subarray(lead + T.size).every((b) => b === 0xaa),
      );
      assert.deepEqual(T.decode(target, lead), sample.expected);
    }),
    { numRuns: 800 },
  );
});

test('random bytes: decode, encode, decode is stable (unless a NUL-terminated string has no NUL)', () => {
  const layoutWithBytes = fc
    .tuple(specArb, archArb)
    .chain(([spec, arch]) =>
      fc
        .uint8Array({ minLength: model(spec, arch).size, maxLength: model(spec, arch).size + 8 })
        .map((raw) => ({ spec, arch, raw: Buffer.from(raw) })),
    );
  fc.assert(
    fc.property(layoutWithBytes, ({ spec, arch, raw }) => {
      const T = build(spec, arch) as unknown as AnyStruct;
      const once = T.decode(raw);
      assert.deepEqual(T.decode(raw.subarray(0, T.size)), once, 'decode reads only `size` bytes');
      if (hasUnterminated(spec, arch, raw, 0)) {
        assert.throws(() => T.encode(once), RangeError);
        return;
      }
      assert.deepEqual(T.decode(T.encode(once)), once);
      assert.throws(() => T.decode(raw.subarray(0, T.size - 1)), RangeError);
    }),
    { numRuns: 800 },
  );
});

test('a struct with pointer-sized fields nests only in layouts of the same pointer size', () => {
  fc.assert(
    fc.property(specArb, archArb, archArb, (spec, inner, outer) => {
      const T = build(spec, inner);
      const pointerSized = (s: Spec): boolean =>
        s.k === 'scalar'
          ? s.name === 'ptr'
          : s.k === 'array'
            ? pointerSized(s.el)
            : s.k === 'struct'
              ? s.fields.some(pointerSized)
              : false;
      const compatible = !pointerSized(spec) || (inner === 'x86') === (outer === 'x86');
      const make = () => struct('OUTER', { a: u8, t: T }, { arch: outer });
      if (compatible) assert.equal(make().offsetOf('t'), up(1, model(spec, inner).align));
      else assert.throws(make, TypeError);
    }),
    { numRuns: 300 },
  );
});
