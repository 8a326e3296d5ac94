import fs from 'node:fs';

// ESM jest: client-node is ESM-only, and sources import each other with .ts extensions
// so that Node 24 can also run them directly (type stripping); jest keeps the .ts specifiers as they are.
const tsJest = ['ts-jest', { useESM: true, tsconfig: 'tsconfig.jest.json', diagnostics: false }];
const common = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': tsJest },
};
export default {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    // Suites that need a real kernel with IPVS: run inside the QEMU lab VM by test/vm/run-kernel-suites.ts.
    { ...common, displayName: 'kernel', testMatch: ['<rootDir>/test/kernel/**/*.test.ts'] },
    // Suites that need the real kube-apiserver harness (test/apiserver).
    {
      ...common,
      displayName: 'apiserver',
      testMatch: ['<rootDir>/test/apiserver/**/*.test.ts'],
      ...(fs.existsSync('test/apiserver/global-setup.ts')
        ? { globalSetup: '<rootDir>/test/apiserver/global-setup.ts', globalTeardown: '<rootDir>/test/apiserver/global-teardown.ts' }
        : {}),
    },
  ],
};
