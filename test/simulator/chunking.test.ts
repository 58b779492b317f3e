// A finding of the wire property tests (test/simulator/wire.property.test.ts): what the simulator does with the
// frames that precede a malformed header must not depend on how the stream was cut into chunks. A REPLY that
// arrives in its own chunk is delivered to the kernel-side sender before the bad header closes the stream; the
// same bytes in ONE chunk lost the REPLY, because FrameDecoder.push() threw and server.ts dropped the frames
// that came before the error. FrameDecoder hands them over (ProtocolError.frames) and the server dispatches them.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { frameBytes, T } from '../helpers/wire-client';
import { startSimulator } from '../helpers/sim';

function replyFrame(id: number, messageId: bigint, data: Buffer): Buffer {
  const head = Buffer.alloc(16);
  head.writeBigUInt64LE(messageId, 8);
  return frameBytes(T.REPLY, id, Buffer.concat([head, data]));
}

const BAD_VERSION = frameBytes(T.GET, 7, Buffer.alloc(4), { version: 2 });

test('control: a REPLY in its own chunk, then a bad header, reaches the kernel-side sender', async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const { wire, client } = await h.connectPair();
  const sent = h.filter.sendMessage(client, Buffer.from('question'), { replyLength: 8 });
  const g = await wire.get(64);
  assert.equal(await wire.reply(g.messageId, Buffer.from('answer')), 0); // the REPLY alone, answered
  wire.writeRaw(BAD_VERSION);
  assert.deepEqual(await sent, { status: 0, reply: Buffer.from('answer'), replyStatus: 0 });
});

test('the same REPLY and bad header in one chunk: the REPLY reaches the sender too', async (t) => {
  const h = await startSimulator();
  t.after(() => h.close());
  const { wire, client } = await h.connectPair();
  const sent = h.filter.sendMessage(client, Buffer.from('question'), { replyLength: 8 });
  const g = await wire.get(64);
  wire.writeRaw(Buffer.concat([replyFrame(99, g.messageId, Buffer.from('answer')), BAD_VERSION]));
  // Before the fix: { status: 0xC0000037 } (STATUS_PORT_DISCONNECTED), the reply lost.
  assert.deepEqual(await sent, { status: 0, reply: Buffer.from('answer'), replyStatus: 0 });
});
