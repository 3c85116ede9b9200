#!/usr/bin/env node
// solc-shim: lets forge drive solcjs (the npm `solc` package) as if it were a native solc.
// forge calls `<solc> --version` and `<solc> --standard-json [--allow-paths P] [--base-path P]
// [--include-path P]... < input.json`. Flags other than those two are accepted and ignored,
// except that --base-path/--include-path/--allow-paths feed the import resolver.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

function parseArgs(argv) {
  const opts = { version: false, standardJson: false, roots: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--version' || a === '-v') opts.version = true;
    else if (a === '--standard-json') opts.standardJson = true;
    else if (a === '--base-path' || a === '--include-path') opts.roots.push(argv[++i]);
    else if (a === '--allow-paths') i++;
    else if (a.startsWith('--base-path=') || a.startsWith('--include-path=')) {
      opts.roots.push(a.slice(a.indexOf('=') + 1));
    }
    // anything else (e.g. '-', --allow-paths=...) is ignored on purpose
  }
  return opts;
}

function makeResolver(roots) {
  const bases = [process.cwd(), ...roots.filter(Boolean)];
  return function resolve(importPath) {
    const candidates = path.isAbsolute(importPath)
      ? [importPath]
      : bases.map((b) => path.resolve(b, importPath));
    for (const c of candidates) {
      try {
        return { contents: fs.readFileSync(c, 'utf8') };
      } catch (_) {
        // try the next root
      }
    }
    return { error: `File not found: ${importPath} (searched ${bases.join(', ')})` };
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.version) {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return 0;
  }
  if (!opts.standardJson) {
    process.stderr.write('solc-shim: only --version and --standard-json are supported\n');
    return 2;
  }
  const input = fs.readFileSync(0, 'utf8');
  const output = solc.compile(input, { import: makeResolver(opts.roots) });
  process.stdout.write(output);
  return 0;
}

process.exitCode = main();
