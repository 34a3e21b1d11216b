#!/usr/bin/env node
// In a clone of the repository the CLI runs its TypeScript sources with tsx (a devDependency), so
// `npm ci` is enough, with no build. The installed package ships no sources and runs the
// compiled JavaScript in dist/, with plain node.
const { existsSync } = require('node:fs');
const path = require('node:path');

const sources = path.join(__dirname, '..', 'src', 'cli', 'main.ts');
if (existsSync(sources)) {
  require('tsx/cjs/api').register();
  require(sources).runCli();
} else {
  require(path.join(__dirname, '..', 'dist', 'src', 'cli', 'main.js')).runCli();
}
