// Wine lane only (FLTMGR_TEST_TARGET=wine, scripts/wine/run-tests.js): proves that the suite really ran the
// Windows build: a Windows node.exe (or the same binary renamed, as Electron's executable is), the mingw
// cross-built addon named by FLTMGR_BINDING, loaded through the delay-load hook in a host of any name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { loadBinding } from '../../lib/binding';

const wine = process.env['FLTMGR_TEST_TARGET'] === 'wine';

test(
  'the Wine lane runs Windows node with the cross-built win32-x64 addon',
  { skip: wine ? false : 'not the Wine lane' },
  () => {
    assert.equal(process.platform, 'win32');
    assert.equal(process.arch, 'x64');
    const file = process.env['FLTMGR_BINDING'];
    assert.ok(file, 'FLTMGR_BINDING is not set');
    const binding = loadBinding();
    assert.equal(binding.info().platform, 'win32');
    const loaded = Object.keys(require.cache).filter((k) => k.toLowerCase().endsWith('.node'));
    assert.deepEqual(
      loaded.map((k) => k.toLowerCase()),
      [path.resolve(file).toLowerCase()],
    );
  },
);

test(
  'the host executable is the one the lane asked for (renamed host = not node.exe)',
  { skip: wine ? false : 'not the Wine lane' },
  () => {
    const expected = process.env['FLTMGR_WINE_HOST'];
    assert.ok(expected, 'FLTMGR_WINE_HOST is not set');
    assert.equal(path.win32.basename(process.execPath).toLowerCase(), expected.toLowerCase());
    // The addon is loaded and callable in this host (a host not named node.exe needs the delay-load hook).
    assert.equal(typeof loadBinding().connect, 'function');
  },
);
