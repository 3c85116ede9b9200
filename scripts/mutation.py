"""Mutation testing of the Solidity contracts (`make mutation`).

Applies small deliberate bugs ("mutants") to the contracts one at a time, in a temporary copy of the project
(the working tree is never modified, so an interrupt leaves nothing behind), runs the forge suite against each
with the fast `mutation` profile and `--fail-fast`, and prints one line per mutant,
`<mutant> killed|survived`, then `mutants_killed=N/M`. A mutant is killed when the suite fails; a mutant that
does not compile is reported `invalid` (a bug in this list, not a kill). Exit status 0 only when every
mutant is killed.

Each mutant first runs against the test files most likely to catch it (sparse compilation keeps that fast); if
they all pass, the whole suite runs before the mutant is declared survived.

The idea follows classic mutation analysis (DeMillo, Lipton and Sayward, "Hints on test data selection", 1978;
tools such as Gambit and vertigo-rs for Solidity); the mutants here are hand-picked for Synod's rules.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKET = "contracts/TaskMarket.sol"
REGISTRY = "contracts/StakeRegistry.sol"
TALLY = "contracts/libraries/Tally.sol"
JOB_RULES = "contracts/libraries/JobRules.sol"
UNIT = "tests/contracts/[TA]*.t.sol"  # TaskMarket, Attacks
REGISTRY_UNIT = "tests/contracts/[SA]*.t.sol"  # StakeRegistry, Attacks
# The gas test is not a behaviour test (and the `mutation` profile compiles without the optimizer).
NOT_GAS = "tests/contracts/Gas.t.sol"
COPIED = ("contracts", "tests", "scripts", "tools", "foundry.toml", "package.json")


@dataclass(frozen=True)
class Mutant:
    """One deliberate bug: replace `original` (which must occur exactly once in `path`) by `mutated`."""

    name: str
    path: str
    original: str
    mutated: str
    tests: str = UNIT


def _deadline(fn_anchor: str) -> tuple[str, str]:
    check = "if (block.timestamp > deadline) "
    check += "revert BatchDeadlinePassed(batchId, deadline, block.timestamp);\n"
    return check + fn_anchor, check.replace(">", ">=", 1) + fn_anchor


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "node_payout_doubled",
        MARKET,
        "if (o.nodePaid[s] != 0) _credit(nodes[s], o.nodePaid[s]);",
        "if (o.nodePaid[s] != 0) _credit(nodes[s], 2 * o.nodePaid[s]);",
    ),
    Mutant(
        "validator_payout_doubled",
        MARKET,
        "_credit(address(uint160(uint256(_page(batchId)[_COMMITTEE + s]))), o.validatorReward);",
        "_credit(address(uint160(uint256(_page(batchId)[_COMMITTEE + s]))), 2 * o.validatorReward);",
    ),
    Mutant("settlement_refund_skipped", MARKET, "if (o.refund != 0) _credit(requester, o.refund);", ""),
    Mutant(
        "whole_refund_skipped",
        MARKET,
        "_credit(requester, amount);\n        emit BatchRefunded",
        "emit BatchRefunded",
    ),
    Mutant(
        "commit_deadline_off_by_one",
        MARKET,
        *_deadline("        if (uint256(commitment) & _LOW224 == 0)"),
    ),
    Mutant("reveal_deadline_off_by_one", MARKET, *_deadline("        _checkReveal(")),
    Mutant(
        "draw_deadline_off_by_one",
        MARKET,
        *_deadline("        _applyLazy(batchId, b, phase, deadline);\n        uint256 seedBlock"),
    ),
    Mutant(
        "score_commit_deadline_off_by_one",
        MARKET,
        *_deadline("        uint256 size = b.committeeSize;\n        if (seat >= size ||"),
    ),
    Mutant("score_reveal_deadline_off_by_one", MARKET, *_deadline("        _checkScoreReveal(")),
    Mutant(
        "lazy_commit_close_off_by_one",
        MARKET,
        "if (phase == Phase.Committing && block.timestamp > deadline",
        "if (phase == Phase.Committing && block.timestamp >= deadline",
    ),
    Mutant(
        "settle_lateness_off_by_one",
        MARKET,
        "bool late = block.timestamp > deadline;",
        "bool late = block.timestamp >= deadline;",
    ),
    Mutant(
        "seed_block_ready_off_by_one",
        MARKET,
        "if (block.number <= seedBlock) revert BatchSeedNotReady",
        "if (block.number < seedBlock) revert BatchSeedNotReady",
    ),
    Mutant(
        "blockhash_window_off_by_one",
        MARKET,
        "block.number > seedBlock + BLOCKHASH_WINDOW",
        "block.number >= seedBlock + BLOCKHASH_WINDOW",
    ),
    Mutant(
        "seed_block_not_in_future",
        MARKET,
        "uint256 seedBlock = block.number + SEED_DELAY;",
        "uint256 seedBlock = block.number - 1;",
    ),
    Mutant(
        "median_upper_side",
        TALLY,
        "if iszero(lt(shl(1, below), total)) { med := candidate }",
        "if gt(shl(1, below), total) { med := candidate }",
    ),
    Mutant(
        "tolerance_exclusive",
        TALLY,
        "if gt(dist, tolerance) { far := or(far, shl(v, 1)) }",
        "if iszero(lt(dist, tolerance)) { far := or(far, shl(v, 1)) }",
    ),
    Mutant("threshold_exclusive", TALLY, "if (med >= rules.threshold) {", "if (med > rules.threshold) {"),
    Mutant(
        "reveal_marks_order_not_seat",
        MARKET,
        "b.revealedMask = uint16(b.revealedMask | (1 << seat));",
        "b.revealedMask = uint16(b.revealedMask | (1 << (count - 1)));",
    ),
    Mutant(
        "non_revealer_slash_skipped",
        MARKET,
        "slashMask |= _unrevealed(b) | o.junkMask;",
        "slashMask |= o.junkMask;",
    ),
    Mutant(
        "abstainer_slash_skipped",
        MARKET,
        "slashMask |= 1 << (offset + s);\n                reasons |= uint256(SlashReason.NoScoreCommit)",
        "reasons |= uint256(SlashReason.NoScoreCommit)",
    ),
    Mutant(
        "weight_flattened",
        MARKET,
        "weights[v] = uint256(page[_COMMITTEE + s]) >> 160;",
        "weights[v] = (uint256(page[_COMMITTEE + s]) >> 192) + 1;",
    ),
    Mutant(
        "junk_floor_inclusive",
        TALLY,
        "medianSum[s] < junkTotal",
        "medianSum[s] <= junkTotal",
    ),
    Mutant("quorum_half_is_enough", MARKET, "if (2 * voters > size) {", "if (2 * voters >= size) {"),
    Mutant(
        "extra_rescoring_round",
        MARKET,
        "} else if (b.round + 1 < MAX_ROUNDS) {",
        "} else if (b.round < MAX_ROUNDS) {",
    ),
    Mutant(
        "duplicate_commit_allowed",
        MARKET,
        "if (uint256(_page(batchId)[i]) >> 224 == id) {",
        "if (uint256(_page(batchId)[i]) >> 224 == id && false) {",
    ),
    Mutant(
        "fee_on_transfer_unchecked",
        MARKET,
        "if (received < amount) revert MarketPaymentShort(amount, received);",
        "",
    ),
    Mutant(
        "min_phase_ignored",
        JOB_RULES,
        "if (d < minPhaseDuration || d > MAX_PHASE_DURATION) {",
        "if (d < 1 || d > MAX_PHASE_DURATION) {",
    ),
    Mutant(
        "score_range_off_by_one",
        MARKET,
        "if (s > MAX_SCORE) revert BatchScoreOutOfRange(batchId, i, s);",
        "if (s > MAX_SCORE + 1) revert BatchScoreOutOfRange(batchId, i, s);",
    ),
    Mutant("claim_keeps_balance", MARKET, "a.balance = 0;\n", ""),
    Mutant(
        "withdraw_ignores_seats",
        REGISTRY,
        "if (seats != 0) revert RegistrySeatsOpen(msg.sender, seats);",
        "",
        REGISTRY_UNIT,
    ),
    Mutant("node_seat_not_locked", MARKET, "_accounts[msg.sender].seats += 1;", ""),
    Mutant("committee_seat_not_locked", MARKET, "_accounts[validators[i]].seats += 1;", ""),
    Mutant(
        "seat_release_skipped", MARKET, "_accounts[accounts[i]].seats -= 1; // each holds this seat", "//"
    ),
    Mutant("lone_seat0_slash_skipped", MARKET, "if (slashMask == 0) return;", "if (slashMask <= 1) return;"),
    Mutant(
        "registry_slash_ignores_mask",
        REGISTRY,
        "if (slashMask & (1 << i) == 0) continue;",
        "",
        REGISTRY_UNIT,
    ),
    Mutant(
        "last_reveal_settles_one_early",
        MARKET,
        "settled = b.scoreRevealMask == b.scoreCommitMask;",
        "settled = _popcount(b.scoreRevealMask) + 1 >= _popcount(b.scoreCommitMask);",
    ),
    Mutant("last_reveal_never_settles", MARKET, "if (settled) _endRound(batchId, b, j, scoreVectors);", ""),
    Mutant(
        "valid_job_min_phase_ignored",
        JOB_RULES,
        "return d >= minPhaseDuration && d <= MAX_PHASE_DURATION;",
        "return d >= 1 && d <= MAX_PHASE_DURATION;",
    ),
    Mutant(
        "valid_job_cells_exclusive",
        JOB_RULES,
        "size * k * m <= MAX_SCORE_CELLS",
        "size * k * m < MAX_SCORE_CELLS",
    ),
    Mutant(
        "input_hash_not_stored",
        MARKET,
        "_pages[page][_INPUT] = keccak256(abi.encode(workflowHash, h));",
        "",
    ),
    Mutant(
        "input_hash_shown_after_end",
        MARKET,
        "inputHash: _ended(b.phase) ? bytes32(0) : _page(batchId)[_INPUT]",
        "inputHash: _page(batchId)[_INPUT]",
    ),
    Mutant(
        "slash_amount_zero",
        REGISTRY,
        "amount = _minimumOf(role) / SLASH_DIVISOR;\n        if (amount > oldStake)",
        "amount = 0;\n        if (amount > oldStake)",
        REGISTRY_UNIT,
    ),
)


def _copy_project(dest: Path) -> None:
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    os.symlink((ROOT / "node_modules").resolve(), dest / "node_modules")


def _forge(workdir: Path, match_path: str | None) -> tuple[int, str]:
    env = dict(os.environ, FOUNDRY_PROFILE="mutation", FOUNDRY_DISABLE_NIGHTLY_WARNING="1")
    env["PATH"] = f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{env.get('PATH', '')}"
    cmd = ["forge", "test", "--fail-fast"]
    if match_path is not None:
        cmd += ["--match-path", match_path]
    else:
        cmd += ["--no-match-path", NOT_GAS]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _verdict(workdir: Path, mutant: Mutant) -> str:
    code, out = _forge(workdir, mutant.tests)
    if "Compiler run failed" in out or "Compilation failed" in out:
        return "invalid"
    if code != 0:
        return "killed"
    code, out = _forge(workdir, None)
    if "Compiler run failed" in out or "Compilation failed" in out:
        return "invalid"
    return "killed" if code != 0 else "survived"


def main(argv: list[str] | None = None) -> int:
    """Run the mutants (all, or those named on the command line); print verdicts and the score."""
    parser = argparse.ArgumentParser(description="Mutation testing of the Solidity contracts.")
    parser.add_argument("names", nargs="*", help="run only these mutants")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    mutants = [m for m in MUTANTS if not args.names or m.name in args.names]
    if args.list:
        for m in mutants:
            print(m.name)
        return 0
    # SIGTERM unwinds like Ctrl-C, so the temporary copy is always removed (the tree itself is never touched).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    killed = 0
    with tempfile.TemporaryDirectory(prefix="synod-mutation-") as tmp:
        work = Path(tmp)
        _copy_project(work)
        # Warm the build cache of the unmutated project once, and require it to pass.
        code, out = _forge(work, UNIT)
        if code != 0:
            print(out[-3000:], file=sys.stderr)
            print("the unmutated suite fails: fix it first", file=sys.stderr)
            return 2
        for m in mutants:
            target = work / m.path
            source = target.read_text()
            if source.count(m.original) != 1:
                print(f"{m.name} invalid (anchor found {source.count(m.original)} times)", flush=True)
                continue
            started = time.monotonic()
            target.write_text(source.replace(m.original, m.mutated))
            try:
                verdict = _verdict(work, m)
            finally:
                target.write_text(source)
            killed += verdict == "killed"
            print(f"{m.name} {verdict} ({time.monotonic() - started:.0f}s)", flush=True)
    print(f"mutants_killed={killed}/{len(mutants)}")
    return 0 if killed == len(mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
