// Tests of tools/solc-shim.js: run with `node --test tools/` (make test-shim).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const solc = require('solc');

const ROOT = path.resolve(__dirname, '..');
const SHIM = path.join(ROOT, 'tools', 'solc-shim.js');
const FORGE = path.join(ROOT, 'node_modules', '.bin', 'forge');
const OZ = path.join(ROOT, 'node_modules', '@openzeppelin', 'contracts');

function shim(args, input, cwd = ROOT) {
  return spawnSync(process.execPath, [SHIM, ...args], { input, cwd, encoding: 'utf8' });
}

function standardJson(sources, remappings = []) {
  return JSON.stringify({
    language: 'Solidity',
    sources,
    settings: { remappings, outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } } },
  });
}

test('--version prints the solcjs version in the form forge parses', () => {
  const r = shim(['--version']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^Version: ${solc.version().replace(/[.+]/g, '\\$&')}$`, 'm'));
  assert.match(r.stdout, /Version: 0\.8\.\d+\+commit\.[0-9a-f]+/);
});

test('--standard-json compiles a contract and ignores the path flags forge passes', () => {
  const input = standardJson({
    'A.sol': { content: '// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\ncontract A { function f() external pure returns (uint256) { return 7; } }' },
  });
  const r = shim(['--standard-json', '--allow-paths', ROOT, '--base-path', ROOT, '--include-path', 'x'], input);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal((out.errors || []).filter((e) => e.severity === 'error').length, 0);
  assert.ok(out.contracts['A.sol'].A.evm.bytecode.object.length > 10);
  assert.equal(out.contracts['A.sol'].A.abi[0].name, 'f');
});

test('imports resolve through remappings from the base path', () => {
  const input = standardJson(
    { 'B.sol': { content: '// SPDX-License-Identifier: MIT\npragma solidity ^0.8.20;\nimport {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";\ncontract B { function s(IERC20 t) external view returns (uint256) { return t.totalSupply(); } }' } },
    ['@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/'],
  );
  const r = shim(['--standard-json', '--base-path', ROOT], input, os.tmpdir());
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual((out.errors || []).filter((e) => e.severity === 'error'), []);
  assert.ok('node_modules/@openzeppelin/contracts/token/ERC20/IERC20.sol' in out.sources);
});

test('a missing import is reported as a compiler error, not a crash', () => {
  const input = standardJson({ 'C.sol': { content: 'pragma solidity ^0.8.0;\nimport "./nope/Missing.sol";\ncontract C {}' } });
  const r = shim(['--standard-json'], input);
  assert.equal(r.status, 0, r.stderr);
  const errors = JSON.parse(r.stdout).errors.filter((e) => e.severity === 'error');
  assert.ok(errors.some((e) => /Missing\.sol/.test(e.formattedMessage)), JSON.stringify(errors));
});

test('an unknown invocation exits non-zero with a message', () => {
  const r = shim(['--bin'], '');
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /only --version and --standard-json/);
});

function forgeProject(source) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shim-forge-'));
  fs.mkdirSync(path.join(dir, 'src'));
  fs.writeFileSync(path.join(dir, 'src', 'X.sol'), source);
  fs.writeFileSync(
    path.join(dir, 'foundry.toml'),
    [
      '[profile.default]',
      `solc = "${SHIM}"`,
      'offline = true',
      'src = "src"',
      `libs = ["${path.join(ROOT, 'node_modules')}"]`,
      `remappings = ["@openzeppelin/contracts/=${OZ}/"]`,
      '',
    ].join('\n'),
  );
  return dir;
}

test('forge builds through the shim, with an OpenZeppelin import', () => {
  const dir = forgeProject('// SPDX-License-Identifier: MIT\npragma solidity ^0.8.20;\nimport {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";\ncontract X is ERC20 { constructor() ERC20("x", "X") {} }\n');
  const r = spawnSync(FORGE, ['build', '--root', dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const artifact = JSON.parse(fs.readFileSync(path.join(dir, 'out', 'X.sol', 'X.json'), 'utf8'));
  assert.ok(artifact.abi.some((f) => f.name === 'transfer'));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a compile error surfaces in forge output and fails the build', () => {
  const dir = forgeProject('// SPDX-License-Identifier: MIT\npragma solidity ^0.8.20;\ncontract X { function f() external { undefinedThing(); } }\n');
  const r = spawnSync(FORGE, ['build', '--root', dir], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stdout + r.stderr, /Undeclared identifier/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the solcjs the shim loads is the exact version package.json pins', () => {
  const pinned = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).dependencies.solc;
  assert.match(pinned, /^\d+\.\d+\.\d+$/, 'pin solc exactly');
  assert.ok(solc.version().startsWith(`${pinned}+`), `${solc.version()} is not ${pinned}`);
});
