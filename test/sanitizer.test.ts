// The sanitizer lane (npm run test:asan) must really run the integration tests against the ASan/UBSan build:
// this fails if the lane silently loaded the normal addon or ran without the ASan runtime.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { loadBinding } from '../lib/binding';

test('in the sanitizer lane, the sanitized addon and the ASan runtime are loaded', (t) => {
  if (process.env.FLTMGR_SANITIZED !== '1') {
    t.skip('not the sanitizer lane (npm run test:asan sets FLTMGR_SANITIZED=1)');
    return;
  }
  loadBinding();
  const maps = fs.readFileSync('/proc/self/maps', 'utf8');
  assert.match(maps, /libasan\.so/, 'ASan runtime not mapped');
  assert.ok(process.env.FLTMGR_BINDING, 'FLTMGR_BINDING not set');
  assert.ok(maps.includes(fs.realpathSync(process.env.FLTMGR_BINDING)), 'the sanitized addon is not the one loaded');
  const addon = fs.readFileSync(process.env.FLTMGR_BINDING);
  assert.ok(addon.includes(Buffer.from('__asan_')), 'the loaded addon is not instrumented with ASan');
  assert.ok(addon.includes(Buffer.from('__ubsan_')), 'the loaded addon is not instrumented with UBSan');
});
