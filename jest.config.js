/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  setupFiles: ['<rootDir>/test/harness/polyfills.ts'],
  setupFilesAfterEnv: ['aws-sdk-client-mock-jest'],
  transform: {
    // Type-checking is done once by `tsc --noEmit` in `npm test`; here ts-jest only transpiles.
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.jest.json' }],
  },
  testTimeout: 60000,
};
