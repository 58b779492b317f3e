// How the tests wait. A test waits for an event (a child's "ready" line, an emitted event, a state it can poll),
// never for a fixed time, and asserts no speed. The only clocks are hang guards: how long a test waits for
// something that must happen before it calls it hung. They are generous on purpose: CI runs on a busy 2-core
// machine, under ASan (a child process needs seconds to start) and under Wine. A guard that fires is a hang,
// not a slow machine; a test whose result depends on how fast the machine is, is a bug.

/** Waiting for one thing that must happen (an event, a frame, a child's line, a process exit). */
export const HANG_GUARD_MS = 60_000;

/** node:test timeout of a test that sets its own: above the guards inside it, so a guard says what hung. */
export const TEST_TIMEOUT_MS = 180_000;

/**
 * Polls until predicate() holds, for state that has no event; fails after timeoutMs (a hang guard).
 * `what` names the awaited state in the failure message.
 */
export async function pollUntil(what: string, predicate: () => boolean, timeoutMs = HANG_GUARD_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
