#!/usr/bin/env node
// Runs the TypeScript sources directly (tsx), so a fresh clone works after `npm ci` with no build.
require('tsx/cjs/api').register();
require('../src/cli/main.ts').runCli();
