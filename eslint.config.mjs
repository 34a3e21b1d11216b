// Type-aware lint. The second block is the sandbox rule: workflow code and the sandbox-safe
// shared module run inside Temporal's deterministic V8 isolate, so they must never reach for
// Node built-ins, the Postgres driver, or activity implementations.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      'dist/**',
      '.cairn/**',
      'bin/**',
      'scripts/**',
      'test/package/fixture*/**',
      'eslint.config.mjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowBoolean: true },
      ],
    },
  },
  {
    files: ['workflows/**/*.ts', 'src/shared/**/*.ts', 'src/workflow.ts', 'bench/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            ...nodeBuiltins.map((name) => ({
              name,
              message: 'Workflow/sandbox code must not use Node built-ins.',
            })),
            { name: 'pg', message: 'Workflow/sandbox code must not touch Postgres; do it in an activity.' },
            { name: '@temporalio/activity', message: 'Activity APIs are not available in workflow code.' },
            { name: '@temporalio/worker', message: 'Worker APIs are not available in workflow code.' },
            { name: '@temporalio/client', message: 'Client APIs are not available in workflow code.' },
          ],
          patterns: [
            {
              group: ['**/activities', '**/activities/*', '!**/activities/types'],
              message: 'Import activity *types* only (import type).',
              allowTypeImports: true,
            },
            {
              group: ['**/store/*', '**/store', '**/cli/*', '**/dev/*'],
              message: 'Sandbox code must not import I/O modules.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'examples/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
);
