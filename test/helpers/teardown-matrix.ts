// The teardown matrix (its tests: test/port/teardown-matrix-*.test.ts, one file per client placement, to keep
// each file's run short): {client on the main thread, in a worker} x {simulator in-process, in a worker, in
// another process} x {idle, receiving, sending, stuck peer, a connect pending} x {close(), worker.terminate(),
// natural exit, process.exit()}. Each cell runs as its own process (test/fixtures/matrix/cell.js) and must exit with code 0
// by itself: no crash, no hang, no error. Natural exit applies where nothing but the client could keep the
// process alive (simulator in another process; a port that is idle or receiving, unref()d). A pending connect
// (its ConnectNotify never returns) ends only with the process or the worker: no close() or natural exit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as path from 'node:path';

const root = path.join(__dirname, '..', '..');
const fixture = path.join(__dirname, '..', 'fixtures', 'matrix', 'cell.js');
/** Hang protection only: a cell that needs it has failed. */
const HANG_GUARD_MS = 90_000;

const cells: string[][] = [];
for (const where of ['main', 'worker']) {
  for (const sim of ['in-process', 'worker', 'process']) {
    for (const activity of ['idle', 'receiving', 'sending', 'stuck', 'connecting']) {
      for (const ending of ['close', 'terminate', 'natural', 'exit']) {
        if (ending === 'terminate' && where !== 'worker') continue;
        if (ending === 'natural' && (sim !== 'process' || activity === 'sending' || activity === 'stuck')) continue;
        if (activity === 'connecting' && (ending === 'close' || ending === 'natural')) continue;
        cells.push([where, sim, activity, ending]);
      }
    }
  }
}

async function runCell(cell: string[]): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  const child = spawn(process.execPath, [fixture, ...cell], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), HANG_GUARD_MS);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(killer);
  return { code, signal, stderr };
}

/** One test per simulator placement, its cells two at a time: each cell mostly waits for process start-up. */
export function defineMatrixTests(where: 'main' | 'worker'): void {
  for (const sim of ['in-process', 'worker', 'process']) {
    const group = cells.filter((c) => c[0] === where && c[1] === sim);
    test(`teardown matrix: client on ${where}, simulator ${sim}: ${group.length} cells end cleanly`, async () => {
      const failures: string[] = [];
      let next = 0;
      const lane = async (): Promise<void> => {
        while (next < group.length) {
          const cell = group[next++]!;
          const result = await runCell(cell);
          if (result.code !== 0 || result.signal !== null) {
            failures.push(
              `${cell.join(' ')}: exit ${String(result.code)} signal ${String(result.signal)} ${result.stderr.trim().slice(0, 300)}`,
            );
          }
        }
      };
      await Promise.all([lane(), lane()]);
      assert.deepEqual(failures, []);
    });
  }
}
