// ESLint (flat config): typescript-eslint's type-aware rules on the TypeScript, the plain recommended rules on
// the JavaScript. Formatting is Prettier's job (scripts/lint.js runs both), so no stylistic rules here.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['node_modules/', 'dist/', 'build/', 'build-*/', 'prebuilds/', 'docs/api/', '.cache/', 'native/'],
  },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      // tsconfig.test.json covers every TypeScript file (lib, tests, bench, examples, driver-sample, scripts).
      parserOptions: { project: './tsconfig.test.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Real defects: a promise nobody awaits or catches, an unused name.
      // node:test's test()/describe()/it() return promises the runner itself tracks.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite', 'before', 'after'] },
          ],
        },
      ],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true },
      ],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      // Async callbacks handed to EventEmitter/stream/timer APIs are deliberate here (each catches its own errors).
      // Rejecting with a caught error or an AbortSignal's reason passes it on unchanged: not a defect.
      '@typescript-eslint/prefer-promise-reject-errors': [
        'error',
        { allowThrowingUnknown: true, allowThrowingAny: true },
      ],
      // Off: handlers whose type asks for a Promise (serve(), connect/message callbacks) are written async
      // without an await; the rule only flags that idiom here.
      '@typescript-eslint/require-await': 'off',
      // Off: it calls `(await new Promise(...)) as [string]` unnecessary when the assertion is what infers the
      // Promise's type, and its --fix then breaks `npm run typecheck` (test/fixtures/worker-teardown.ts).
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
    },
  },
  {
    // Tests poke at untyped wire frames and worker messages: `any` there is deliberate and local.
    files: ['test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: globals.node },
  },
  {
    files: ['**/*.mjs'],
    languageOptions: { sourceType: 'module', globals: globals.node },
  },
);
