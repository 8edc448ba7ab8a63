// @ts-check
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Layering (design.md): each layer imports only layers above it. */
const noImport = (patterns, message) => ({
  'no-restricted-imports': ['error', { patterns: patterns.map((group) => ({ group, message })) }],
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'golden/**', '**/*.js', '**/*.mjs'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    files: ['src/ir/**/*.ts'],
    rules: noImport(
      [
        [
          'protobufjs',
          'protobufjs/*',
          'onnxruntime-node',
          '**/onnx/**',
          '**/verify/**',
          '**/cli/**',
          '**/pass/**',
          '**/passes/**',
          '**/dsl/**',
        ],
      ],
      'src/ir is the bottom layer: no protobuf, no onnxruntime, no higher layer.',
    ),
  },
  {
    files: ['src/onnx/**/*.ts'],
    rules: noImport(
      [['onnxruntime-node', '**/verify/**', '**/cli/**', '**/pass/**', '**/passes/**', '**/dsl/**']],
      'src/onnx depends only on src/ir.',
    ),
  },
  {
    files: ['dsl/**/*.ts'],
    rules: noImport([['**/passes/**', 'onnxruntime-node']], 'The DSL knows pass metadata (src/pass), never pass code.'),
  },
  {
    files: ['passes/**/*.ts', 'src/pass/**/*.ts'],
    rules: noImport([['**/cli/**', '**/dsl/**']], 'Passes do not depend on the CLI or the DSL.'),
  },
);
