// waitForPort: a port that appears late, backoff with jitter, abort, the deadline, which errors are retried.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_BACKOFF,
  FilterError,
  FilterPort,
  backoffDelay,
  isRetryableConnectError,
  waitForPort,
  type RetryInfo,
} from '../../lib';
import { NtStatus } from '../../lib/status';
import { NtStatusError } from '../../lib/simulator';
import { HR } from '../helpers/status';
import { connectNotifyRuns } from '../helpers/sim';
import { until } from '../helpers/timing';
import { FAST, PORT_NAME, startAgentSim } from './harness';

test('backoff: doubles from initialDelayMs up to maxDelayMs; jitter takes up to its fraction off at random', () => {
  const top = (): number => 0; // random() = 0: no reduction
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(n, { random: top })),
    [100, 200, 400, 800, 1600, 3200, 5000, 5000],
  );
  assert.equal(backoffDelay(1, { random: () => 0.999999 }), 50, 'default jitter 0.5: at most half off');
  assert.equal(backoffDelay(3, { initialDelayMs: 10, factor: 3, jitter: 0, random: () => 0.7 }), 90);
  assert.equal(backoffDelay(2, { jitter: 1, random: () => 0.5 }), 100);
  assert.deepEqual(DEFAULT_BACKOFF, { initialDelayMs: 100, maxDelayMs: 5000, factor: 2, jitter: 0.5 });
  // Default randomness: every delay within [d * (1 - jitter), d].
  for (let n = 1; n < 50; n++) {
    const d = backoffDelay(4);
    assert.ok(d >= 400 && d <= 800, String(d));
  }
});

test('which connect errors are retried', () => {
  const retried = [HR.ERROR_FILE_NOT_FOUND, HR.ERROR_CONNECTION_COUNT_LIMIT, HR.ERROR_INVALID_HANDLE, HR.ERROR_TIMEOUT];
  const final = [HR.ERROR_ACCESS_DENIED, HR.ERROR_INVALID_PARAMETER, HR.ERROR_INVALID_DATA, HR.ERROR_NOT_SUPPORTED];
  for (const hr of retried)
    assert.equal(isRetryableConnectError(new FilterError(hr, 'FilterConnectCommunicationPort')), true);
  for (const hr of final)
    assert.equal(isRetryableConnectError(new FilterError(hr, 'FilterConnectCommunicationPort')), false);
  assert.equal(isRetryableConnectError(new TypeError('x')), false);
});

test('late driver start: attempts fail with ERROR_FILE_NOT_FOUND until the port exists, then it connects', async (t) => {
  const h = await startAgentSim({ loaded: false });
  t.after(() => h.close());
  const retries: RetryInfo[] = [];
  const waiting = waitForPort(PORT_NAME, {
    simulator: h.endpoint,
    backoff: FAST,
    onRetry: (info) => retries.push(info),
  });
  await until(() => retries.length >= 3, { what: 'three failed attempts' });
  h.load();
  const port = await waiting;
  t.after(() => port.close());
  assert.ok(retries.every((r) => r.error instanceof FilterError && r.error.code === 'ERROR_FILE_NOT_FOUND'));
  assert.deepEqual(
    retries.slice(0, 3).map((r) => [r.attempt, r.delayMs]),
    [
      [1, 1],
      [2, 2],
      [3, 4],
    ],
  );
  assert.equal(h.client().connected, true);
});

test('abort while waiting rejects with AbortError and stops the attempts', async (t) => {
  const h = await startAgentSim({ loaded: false });
  t.after(() => h.close());
  const controller = new AbortController();
  let attempts = 0;
  const waiting = waitForPort(PORT_NAME, {
    simulator: h.endpoint,
    backoff: { initialDelayMs: 60_000 }, // aborted in the middle of a long wait
    signal: controller.signal,
    onAttempt: () => void attempts++,
    onRetry: () => controller.abort(),
  });
  await assert.rejects(waiting, { name: 'AbortError' });
  assert.equal(attempts, 1);
  await assert.rejects(waitForPort(PORT_NAME, { simulator: h.endpoint, signal: controller.signal }), {
    name: 'AbortError',
  });
  assert.equal(attempts, 1, 'an aborted signal makes no attempt');
});

test('timeoutMs: no attempt starts past the deadline; ERR_WAIT_TIMEOUT carries the last error', async (t) => {
  const h = await startAgentSim({ loaded: false });
  t.after(() => h.close());
  let attempts = 0;
  // The wait after the first failure (2 h) would end past the deadline (1 h): it fails at once.
  await assert.rejects(
    waitForPort(PORT_NAME, {
      simulator: h.endpoint,
      timeoutMs: 3_600_000,
      backoff: { initialDelayMs: 7_200_000, maxDelayMs: 7_200_000 },
      onAttempt: () => void attempts++,
    }),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, 'ERR_WAIT_TIMEOUT');
      assert.equal((error.cause as FilterError).code, 'ERROR_FILE_NOT_FOUND');
      assert.match(
        error.message,
        /1 attempt\(s\); last error: FilterConnectCommunicationPort failed: ERROR_FILE_NOT_FOUND/,
      );
      return true;
    },
  );
  assert.equal(attempts, 1);
});

test('timeoutMs bounds an attempt in progress (a ConnectNotify that does not return); the late connection is closed', async (t) => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let entered = false;
  const h = await startAgentSim({
    port: {
      connect: () => {
        entered = true;
        return held;
      },
    },
  });
  t.after(async () => {
    release();
    await h.close();
  });
  await assert.rejects(waitForPort(PORT_NAME, { simulator: h.endpoint, timeoutMs: 1 }), {
    code: 'ERR_WAIT_TIMEOUT',
    message: /attempt 1 was still in progress/,
  });
  // The abandoned attempt goes on in the background: it reaches ConnectNotify, and is closed once it returns.
  await until(() => entered && connectNotifyRuns(h), { what: 'ConnectNotify to run' });
  release();
  // FilterPort.connect closes the connection made after all.
  await until(() => h.sim.streamStats().length === 0, { what: 'the late connection to be closed' });
});

test('non-retryable errors end the wait at once: access denied, a context ConnectNotify refuses', async (t) => {
  const denied = await startAgentSim({ port: { security: { check: () => false } } });
  t.after(() => denied.close());
  let attempts = 0;
  await assert.rejects(
    waitForPort(PORT_NAME, { simulator: denied.endpoint, backoff: FAST, onAttempt: () => void attempts++ }),
    { name: 'FilterError', code: 'ERROR_ACCESS_DENIED' },
  );
  assert.equal(attempts, 1);

  const refusing = await startAgentSim({
    port: {
      connect: () => {
        throw new NtStatusError(NtStatus.STATUS_INVALID_PARAMETER);
      },
    },
  });
  t.after(() => refusing.close());
  await assert.rejects(waitForPort(PORT_NAME, { simulator: refusing.endpoint, backoff: FAST }), {
    name: 'FilterError',
    hresult: HR.ERROR_INVALID_PARAMETER,
  });
  // Misconfiguration is not a FilterError and is never retried.
  await assert.rejects(waitForPort(PORT_NAME, { simulator: 'bogus:x' }), { code: 'ERR_INVALID_ENDPOINT' });
  await assert.rejects(waitForPort(PORT_NAME, { backoff: { factor: 0.5 } }), { code: 'ERR_OUT_OF_RANGE' });
  // A custom policy: retry access denied until the port lets us in.
  let allowed = false;
  const custom = await startAgentSim({ port: { security: { check: () => allowed } } });
  t.after(() => custom.close());
  const port = await waitForPort(PORT_NAME, {
    simulator: custom.endpoint,
    backoff: FAST,
    retryable: (e) => e instanceof FilterError && e.code === 'ERROR_ACCESS_DENIED',
    onRetry: () => void (allowed = true),
  });
  await port.close();
});

test('the connection limit (MaxConnections) is retried until a slot frees', async (t) => {
  const h = await startAgentSim({ port: { maxConnections: 1 } });
  t.after(() => h.close());
  const holder = await FilterPort.connect(PORT_NAME, { simulator: h.endpoint });
  const retries: RetryInfo[] = [];
  const waiting = waitForPort(PORT_NAME, {
    simulator: h.endpoint,
    backoff: FAST,
    onRetry: (r) => retries.push(r),
  });
  await until(() => retries.length >= 2, { what: 'attempts refused by the connection limit' });
  assert.ok(retries.every((r) => (r.error as FilterError).code === 'ERROR_CONNECTION_COUNT_LIMIT'));
  await holder.close();
  const port = await waiting;
  await port.close();
});
