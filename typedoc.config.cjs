// TypeDoc (npm run docs): the API reference in docs/api/, from the TSDoc of the four entry points. CI runs it
// and fails on any warning: an exported member without documentation, a broken {@link}, a type referenced
// but not exported.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

// The Win32 / NtStatus / HResult tables (lib/status.ts) hold constants spelled as in winerror.h and ntstatus.h:
// their name is their documentation. Their members are the only ones allowed to go undocumented.
function statusTableMembers() {
  const source = fs.readFileSync(path.join(__dirname, 'lib', 'status.ts'), 'utf8');
  const names = [];
  for (const table of ['Win32', 'NtStatus', 'HResult']) {
    const body = new RegExp(`export const ${table} = \\{([\\s\\S]*?)\\} as const;`).exec(source);
    if (!body) throw new Error(`typedoc.config.cjs: table ${table} not found in lib/status.ts`);
    for (const m of body[1].matchAll(/^\s+([A-Z][A-Z0-9_]*):/gm)) names.push(`index.${table}.__type.${m[1]}`);
  }
  return names;
}

/** @type {Partial<import('typedoc').TypeDocOptions>} */
module.exports = {
  entryPoints: ['lib/index.ts', 'lib/manager.ts', 'lib/simulator/index.ts', 'lib/struct.ts'],
  tsconfig: 'tsconfig.json',
  out: 'docs/api',
  name: 'fltmgr',
  readme: 'none',
  excludePrivate: true,
  excludeInternal: true,
  excludeExternals: true,
  disableSources: true,
  treatWarningsAsErrors: true,
  validation: { notExported: true, invalidLink: true, notDocumented: true },
  intentionallyNotDocumented: statusTableMembers(),
};
