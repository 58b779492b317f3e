// How the tests wait. A test waits for an event (a child's "ready" line, an emitted event, a state it can poll),
// never for a fixed time, and asserts no speed. The only clocks are hang guards: how long a test waits for
// something that must happen before it calls it hung. They are generous on purpose: CI runs on a busy 2-core
// machine, under ASan (a child process needs seconds to start) and under Wine. A guard that fires is a hang,
// not a slow machine; a test whose result depends on how fast the machine is, is a bug.
// Every wait here takes { what }: the thing awaited, named in the failure message when a guard fires.
import { once } from 'node:events';

/** Waiting for one thing that must happen (an event, a frame, a child's line, a process exit). */
export const HANG_GUARD_MS = 60_000;

/** node:test timeout of a test that sets its own: above the guards inside it, so a guard says what hung. */
export const TEST_TIMEOUT_MS = 180_000;

export interface Wait {
  /** What is awaited, for the failure message ("timed out after 60000 ms waiting for <what>"). */
  what: string;
  /** The hang guard; default HANG_GUARD_MS. */
  timeoutMs?: number;
}

function timedOut(o: Wait): Error {
  return new Error(`timed out after ${o.timeoutMs ?? HANG_GUARD_MS} ms waiting for ${o.what}`);
}

/** Polls until predicate() holds, for state that has no event; fails when the hang guard fires. */
export async function until(predicate: () => boolean | Promise<boolean>, o: Wait): Promise<void> {
  const deadline = Date.now() + (o.timeoutMs ?? HANG_GUARD_MS);
  while (!(await predicate())) {
    if (Date.now() > deadline) throw timedOut(o);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Settles as `p` does; rejects when the hang guard fires first. */
export function withTimeout<V>(p: Promise<V>, o: Wait): Promise<V> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(timedOut(o)), o.timeoutMs ?? HANG_GUARD_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * The arguments of the next `event` of `emitter` (listening starts at the call: call it before causing the
 * event); rejects when the hang guard fires first, or on an 'error' event.
 */
export async function nextEvent<A extends unknown[] = unknown[]>(
  emitter: NodeJS.EventEmitter,
  event: string,
  o: Wait,
): Promise<A> {
  const guard = new AbortController();
  const timer = setTimeout(() => guard.abort(), o.timeoutMs ?? HANG_GUARD_MS);
  try {
    return (await once(emitter, event, { signal: guard.signal })) as A;
  } catch (error) {
    throw guard.signal.aborted ? timedOut(o) : error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * True when `p` is still unsettled after `ms` (for asserting that something did NOT happen). A slow machine can
 * only make this pass when it should not (it cannot make a correct program fail): use it for "must not happen".
 */
export async function stillPending(p: Promise<unknown>, ms = 50): Promise<boolean> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((r) => setTimeout(r, ms));
  return !settled;
}
