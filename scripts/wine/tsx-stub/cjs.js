// tsx stand-in for the compiled test suite (scripts/wine/run-tests.js copies it to build-wine/tests/node_modules/tsx).
// The tests name their fixtures and child scripts by their .ts source path; in the compiled tree only X.js
// exists, so a require of X.ts that finds nothing retries with X.js. Installed once per thread.
'use strict';
const Module = require('node:module');

if (!Module.__fltmgrTsxStub) {
  Module.__fltmgrTsxStub = true;
  const original = Module._resolveFilename;
  Module._resolveFilename = function resolveTsAsJs(request, parent, isMain, options) {
    try {
      return original.call(this, request, parent, isMain, options);
    } catch (err) {
      if (err && err.code === 'MODULE_NOT_FOUND' && typeof request === 'string' && /\.[cm]?ts$/.test(request)) {
        const js = request.replace(/\.([cm]?)ts$/, '.$1js');
        try {
          return original.call(this, js, parent, isMain, options);
        } catch {
          // report the original request
        }
      }
      throw err;
    }
  };
}
