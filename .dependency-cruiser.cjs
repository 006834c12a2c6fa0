/**
 * Layout rules (docs/DESIGN.md "Layout and rules"), enforced by `npm run depcruise` inside
 * `npm test` so a change that breaks them fails CI. Data flows one way:
 * cli/library → client → methods → engine → store + oauth; nothing below latchkey.ts imports it.
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Import cycles (type-only ones included) make the layers impossible to read bottom-up.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-latchkey-from-lower-layers',
      severity: 'error',
      comment: 'Lower layers get a narrow context (src/context.ts), never the Latchkey object.',
      from: { path: '^src/(oauth|methods|client|engine|store|config|login|http|core)/' },
      to: { path: '^src/latchkey\\.ts$' },
    },
    {
      name: 'gateway-remote-stay-on-the-core',
      severity: 'error',
      comment: 'The gateway and the remote client are users of the core, not of the keeper or the CLI.',
      from: { path: '^src/(gateway|remote)/' },
      to: { path: '^src/(keeper|client|methods|cli)/' },
    },
    {
      name: 'oauth-is-protocol-only',
      severity: 'error',
      comment: 'oauth/ takes endpoints in; it never reads config (that is login/ and methods/).',
      from: { path: '^src/oauth/' },
      to: { path: '^src/(config|login|methods|client|keeper|cli)/' },
    },
    {
      name: 'shared-pieces-stay-below',
      severity: 'error',
      comment: 'core/ and http/ are the shared bottom layer: they import nothing above them.',
      from: { path: '^src/(core|http)/' },
      to: { path: '^src/(config|store|oauth|engine|methods|client|login|keeper|service|cli|gateway|remote)/|^src/latchkey\\.ts$' },
    },
    {
      name: 'src-never-imports-tests',
      severity: 'error',
      comment: 'Production code never depends on test or benchmark code.',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that does not resolve is a typo or a missing dependency.',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count: a cycle through `import type` is still a cycle in the design.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.d.ts'],
    },
    moduleSystems: ['es6', 'cjs'],
  },
};
