// Hostile or broken clients: each kind of bad frame closes only that stream, with a logged reason and a
// 'protocol-error' event, and the simulator keeps serving everybody else.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { ClientPort } from '../../lib/simulator';
import { T, type WireClient, connectPayload, frameBytes } from '../helpers/wire-client';
import { PORT_NAME, startSimulator } from '../helpers/sim';
import { TEST_TIMEOUT_MS, until, withTimeout } from '../helpers/timing';

interface Case {
  name: string;
  /** Send CONNECT (and wait for S_OK) before the attack. */
  established: boolean;
  attack(w: WireClient): void;
  reason: RegExp;
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
};
const get = (id: number, capacity = 64): Buffer => frameBytes(T.GET, id, u32(capacity));
const connect = (): Buffer => connectPayload({ portName: PORT_NAME, secret: '' });

const cases: Case[] = [
  {
    name: 'stream ends inside a frame',
    established: true,
    attack: (w) => {
      w.writeRaw(get(1).subarray(0, 7));
      w.socket.end();
    },
    reason: /truncated frame/,
  },
  {
    name: 'payload shorter than its type needs',
    established: true,
    attack: (w) => w.writeRaw(frameBytes(T.GET, 1, Buffer.alloc(2))),
    reason: /GET: payload truncated/,
  },
  {
    name: 'REPLY without a full header',
    established: true,
    attack: (w) => w.writeRaw(frameBytes(T.REPLY, 1, Buffer.alloc(12))),
    reason: /REPLY: payload truncated/,
  },
  {
    name: 'CANCEL with a payload',
    established: true,
    attack: (w) => w.writeRaw(frameBytes(T.CANCEL, 1, Buffer.alloc(1))),
    reason: /CANCEL: 1 unexpected trailing/,
  },
  {
    name: 'oversized length',
    established: true,
    attack: (w) => w.writeRaw(u32(0xffffffff)),
    reason: /exceeds 8 \+ MAX_PAYLOAD/,
  },
  {
    name: 'length below the header',
    established: false,
    attack: (w) => w.writeRaw(Buffer.concat([u32(4), Buffer.alloc(4)])),
    reason: /below 8/,
  },
  {
    name: 'unknown type',
    established: true,
    attack: (w) => w.writeRaw(frameBytes(0x7f, 1)),
    reason: /unknown frame type 0x7f/,
  },
  {
    name: 'a simulator-to-client type',
    established: true,
    attack: (w) => w.writeRaw(frameBytes(T.GET_COMPLETE, 1, Buffer.alloc(16))),
    reason: /unknown frame type 0x82/,
  },
  {
    name: 'wrong version',
    established: true,
    attack: (w) => w.writeRaw(frameBytes(T.GET, 1, u32(64), { version: 2 })),
    reason: /version 2/,
  },
  {
    name: 'nonzero flags',
    established: false,
    attack: (w) => w.writeRaw(frameBytes(T.CONNECT, 0, connect(), { flags: 0x8000 })),
    reason: /nonzero flags/,
  },
  { name: 'frame before CONNECT', established: false, attack: (w) => w.writeRaw(get(1)), reason: /before CONNECT/ },
  {
    name: 'second CONNECT',
    established: true,
    attack: (w) => w.writeRaw(frameBytes(T.CONNECT, 0, connect())),
    reason: /second CONNECT/,
  },
  {
    name: 'CONNECT with an id',
    established: false,
    attack: (w) => w.writeRaw(frameBytes(T.CONNECT, 9, connect())),
    reason: /CONNECT id must be 0/,
  },
  {
    name: 'CONNECT with an odd UTF-16 length',
    established: false,
    attack: (w) => {
      const p = connect();
      p.writeUInt16LE(3, 8);
      w.writeRaw(frameBytes(T.CONNECT, 0, p));
    },
    reason: /odd UTF-16/,
  },
  {
    name: 'CONNECT with trailing bytes',
    established: false,
    attack: (w) => w.writeRaw(frameBytes(T.CONNECT, 0, Buffer.concat([connect(), Buffer.from([1])]))),
    reason: /CONNECT: 1 unexpected trailing/,
  },
  {
    name: 'duplicate GET id',
    established: true,
    attack: (w) => w.writeRaw(Buffer.concat([get(5), get(5)])),
    reason: /GET id 5 is already pending/,
  },
  {
    name: 'more than 4096 pending gets',
    established: true,
    attack: (w) => w.writeRaw(Buffer.concat(Array.from({ length: 4097 }, (_, i) => get(i + 1)))),
    reason: /more than 4096 pending gets/,
  },
  {
    name: 'more than 4096 outstanding SENDs',
    established: true,
    attack: (w) =>
      w.writeRaw(
        Buffer.concat(Array.from({ length: 4097 }, (_, i) => frameBytes(T.SEND, i + 1, Buffer.from([0, 0, 0, 0, 1])))),
      ),
    reason: /more than 4096 outstanding SEND/,
  },
  {
    // The largest MANAGE (4 strings of 0xFFFE bytes, a 0xFFFF-byte secret; larger than any CONNECT), plus one.
    name: 'a first frame longer than the largest CONNECT or MANAGE (refused on its header)',
    established: false,
    attack: (w) => w.writeRaw(frameBytes(T.CONNECT, 0, Buffer.alloc(0), { length: 8 + 327_691 + 1 })),
    reason: /exceeds 8 \+ 327691, the largest CONNECT or MANAGE/,
  },
  {
    name: 'garbage (an HTTP request)',
    established: false,
    attack: (w) => w.writeRaw(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')),
    reason: /exceeds/,
  },
  {
    name: 'garbage (small random-looking bytes)',
    established: true,
    attack: (w) => w.writeRaw(Buffer.from([9, 0, 0, 0, 0xa5, 0x5a, 0xff, 0x13, 0x37, 0, 0, 0, 0])),
    reason: /version 165/,
  },
];

for (const c of cases) {
  test(`protocol error: ${c.name}`, { timeout: TEST_TIMEOUT_MS }, async (t) => {
    let release!: () => void;
    const gate = new Promise<Buffer>((r) => (release = () => r(Buffer.from('late'))));
    const disconnected: ClientPort[] = [];
    const h = await startSimulator({
      port: {
        message: (_c, input) => (input[0] === 1 ? gate : Buffer.from('pong')),
        disconnect: (cl) => void disconnected.push(cl),
      },
    });
    t.after(async () => {
      release();
      await h.close();
    });
    const bystander = await h.connectPair();
    const w = await h.open();
    let hostile: ClientPort | undefined;
    if (c.established) {
      const ev = h.nextEvent('connect') as Promise<ClientPort>;
      assert.equal(await w.connect({ portName: PORT_NAME }), 0);
      hostile = await ev;
    }
    const errorEvent = h.nextEvent('protocol-error');
    c.attack(w);
    const event = (await errorEvent) as { reason: string; client?: ClientPort };
    assert.match(event.reason, c.reason);
    assert.equal(event.client, hostile);
    await withTimeout(w.closed, { what: 'the hostile stream to close' });
    assert.equal(h.protocolErrors.length, 1);
    assert.ok(
      h.logs.some((l) => /protocol error on stream/.test(l) && c.reason.test(l)),
      h.logs.join('\n'),
    );
    if (hostile) {
      // Treated like a handle close.
      await until(() => disconnected.includes(hostile!), { what: 'DisconnectNotify of the hostile client' });
      assert.deepEqual(disconnected, [hostile]);
      assert.equal(hostile.connected, false);
    }
    // Everybody else is still served: the bystander both ways, and a newcomer.
    assert.deepEqual(await bystander.wire.send(Buffer.from([0]), 8), { hresult: 0, output: Buffer.from('pong') });
    const g = bystander.wire.postGet(64);
    assert.equal((await h.filter.sendMessage(bystander.client, Buffer.from('still served'))).status, 0);
    assert.equal((await withTimeout(g.done, { what: 'bystander get' })).data.toString(), 'still served');
    const newcomer = await h.connect();
    assert.equal((await newcomer.send(Buffer.from([0]), 8)).hresult, 0);
    assert.deepEqual(bystander.wire.unexpected, []);
  });
}

test(
  'a TCP client that resets its connection mid-frame is cleaned up like any other close',
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const h = await startSimulator({ listen: { tcp: {} }, port: { message: () => Buffer.from('ok') } });
    t.after(() => h.close());
    const { wire, client } = await h.connectPair();
    const gone = h.nextEvent('disconnect');
    wire.writeRaw(get(1).subarray(0, 3));
    wire.socket.resetAndDestroy();
    assert.equal(await gone, client);
    assert.equal(client.connected, false);
    const other = await h.connect();
    assert.equal((await other.send(Buffer.alloc(0), 2)).hresult, 0);
  },
);

test(
  'exactly 4096 pending gets and 4096 outstanding SENDs are still allowed',
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    let release!: () => void;
    const gate = new Promise<Buffer>((r) => (release = () => r(Buffer.from('done'))));
    const h = await startSimulator({ port: { message: () => gate } });
    t.after(async () => {
      release();
      await h.close();
    });
    const { wire, client } = await h.connectPair();
    const gets = Array.from({ length: 4096 }, () => wire.postGet(64));
    const sends = Array.from({ length: 4096 }, () => wire.send(Buffer.from([1]), 8));
    const first = await h.filter.sendMessage(client, Buffer.from('first'));
    assert.equal(first.status, 0);
    assert.equal((await withTimeout(gets[0]!.done, { what: 'first get' })).data.toString(), 'first');
    release();
    const answers = await withTimeout(Promise.all(sends), { what: '4096 SEND_RESULTs' });
    assert.ok(answers.every((a) => a.hresult === 0 && a.output.toString() === 'done'));
    assert.deepEqual(h.protocolErrors, []);
    assert.equal(wire.isOpen, true);
  },
);
