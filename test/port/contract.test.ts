// The JS library and the native addon share one contract: limits and event kinds come from the addon, and the
// library's exported constants must agree with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_CONCURRENCY } from '../../lib';
import { EventKind, MESSAGE_HEADER_SIZE, REPLY_HEADER_SIZE, loadBinding } from '../../lib/binding';
import { MAX_PAYLOAD } from '../../lib/simulator';
import { MAX_PENDING_GETS } from '../../lib/simulator/wire';

test('the addon exports the limits the library documents', () => {
  const { limits } = loadBinding();
  assert.equal(limits.maxConcurrency, MAX_CONCURRENCY);
  assert.equal(limits.maxSendThreads, 4); // README: "at most 4 sends per port run at once"
  assert.equal(limits.simulatorMaxSendInput, MAX_PAYLOAD - 4); // SEND payload: u32 output capacity + input
  assert.equal(limits.simulatorMaxReplyData, MAX_PAYLOAD - 16); // REPLY payload: FILTER_REPLY_HEADER + data
  // One slot limit: the TypeScript simulator and the native client enforce the same pending-get flood limit,
  // and receive concurrency is exactly that many gets.
  assert.equal(limits.simulatorMaxPendingGets, MAX_PENDING_GETS);
  assert.equal(limits.maxConcurrency, limits.simulatorMaxPendingGets);
});

test('receive batch event kinds agree with the addon', () => {
  assert.deepEqual(loadBinding().eventKinds, {
    message: EventKind.Message,
    replyDone: EventKind.ReplyDone,
    error: EventKind.Error,
    disconnected: EventKind.Disconnected,
    stopped: EventKind.Stopped,
  });
});

test('the header sizes the library computes with are the ones the addon was compiled with', () => {
  assert.deepEqual(loadBinding().headerSizes, { message: MESSAGE_HEADER_SIZE, reply: REPLY_HEADER_SIZE });
});
