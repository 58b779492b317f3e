// `node --import tsx X.ts` in the compiled test suite: X.ts resolves to the compiled X.js (ESM resolve hook for
// the entry point, CommonJS hook for everything it requires).
import { createRequire, register } from 'node:module';

createRequire(import.meta.url)('./cjs.js');
register('./hooks.mjs', import.meta.url);
