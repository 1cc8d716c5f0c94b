// ESLint over the extension's TypeScript sources (`npm run lint`): ESLint's and typescript-eslint's
// recommended rules; layout is Prettier's (eslint-config-prettier turns off the rules it owns).
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['lib/', 'build/', 'node_modules/', 'ui-tests/', 'test/'] },
  {
    files: ['src/**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    rules: {
      eqeqeq: ['error', 'smart'],
      curly: ['error', 'all'],
      // `let run; … run = new LiveRun(…)` where a closure made before refers to it.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // Notebook metadata and server answers are JSON the code checks as it reads (as in
      // JupyterLab's extension template).
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { args: 'none', ignoreRestSiblings: true }]
    }
  },
  prettier
);
