#!/usr/bin/env node
// The ami-pipeline CLI. TypeScript is compiled on the fly by tsx (a runtime dependency), so the CLI
// runs from a clone after `npm ci` with no build step.
'use strict';
require('tsx/cjs/api').register();
const { run } = require('../cli/main.ts');

run(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
