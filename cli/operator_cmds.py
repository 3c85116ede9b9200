"""The operator subcommands shared by ``synod node`` and ``synod oracle``: one implementation,
parameterised by the role.

::

    synod node|oracle init      [--config PATH] [--force] [--rpc-url URL] [--chain-id N]
                                [--deployment FILE] [--artifacts-dir DIR] [--keystore FILE]
                                [--account-password-file FILE] [--models NAME ...]
                                [--p2p-address MULTIADDR] [--confirmations N]
    synod node|oracle register  --stake AMOUNT [--models NAME ...] [--p2p-address MULTIADDR] [--dry-run]
    synod node|oracle status    [--json]
    synod node|oracle unbond
    synod node|oracle withdraw
    synod node|oracle claim
    synod node|oracle rewards   [--json] [--from-block N] [--to-block N]

Every subcommand but ``init`` takes ``--config PATH`` (default ``~/.config/synod/<role>.toml``)
and the write commands ``--password-file FILE``. Amounts are in token units (``150``, ``0.5``).
Errors are one line on stderr. Exit codes: 0 done; 2 usage or config (bad value, missing or
unreadable keystore, wrong password, no password source); 3 chain or account state (refused start,
not registered, revert, RPC down).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from protocol.operator.config import OperatorRole

if TYPE_CHECKING:
    from protocol.chain.sender import TxSender
    from protocol.operator.account import AccountStatus, OperatorAccount
    from protocol.operator.config import OperatorConfig
    from protocol.operator.rewards import RewardsReport

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CHAIN = 3

OPERATOR_COMMANDS = ("init", "register", "status", "unbond", "withdraw", "claim", "rewards")
"""The subcommands this module handles (a role module adds its own, e.g. ``run``)."""


def add_operator_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], role: OperatorRole
) -> None:
    """Add :data:`OPERATOR_COMMANDS` for ``role`` to a role's subparsers."""
    noun = role.value
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, metavar="PATH", help=f"config file (default ~/.config/synod/{noun}.toml)"
    )
    signing = argparse.ArgumentParser(add_help=False)
    signing.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help="keystore password file (else $SYNOD_KEYSTORE_PASSWORD, account.password_file, a prompt)",
    )

    init = sub.add_parser("init", parents=[common], help=f"write a {noun} config file with sane defaults")
    init.add_argument("--force", action="store_true", help="overwrite an existing config file")
    init.add_argument("--rpc-url", help="JSON-RPC endpoint (default http://127.0.0.1:8545)")
    init.add_argument("--chain-id", type=int, help="refuse any other chain (default: the deployment's)")
    init.add_argument("--deployment", type=Path, metavar="FILE", help="deployments/<chainId>.json to use")
    init.add_argument(
        "--artifacts-dir", type=Path, metavar="DIR", help="forge out/ dir (default: packaged ABIs)"
    )
    init.add_argument("--keystore", type=Path, metavar="FILE", help=f"keystore (default keys/{noun}.json)")
    init.add_argument("--account-password-file", type=Path, metavar="FILE", help="password file to record")
    init.add_argument("--p2p-address", metavar="MULTIADDR", help="the multiaddr others reach you at")
    init.add_argument("--confirmations", type=int, help="blocks behind the head that reads use (default 2)")
    if role is OperatorRole.NODE:
        init.add_argument(
            "--models", nargs="+", metavar="NAME", help="model names served (default gemma3:270m)"
        )

    reg = sub.add_parser(
        "register", parents=[common, signing], help="stake and register, or bring the registration up to date"
    )
    reg.add_argument(
        "--stake", required=True, metavar="AMOUNT", help="total stake in token units (e.g. 150.5)"
    )
    if role is OperatorRole.NODE:
        reg.add_argument(
            "--models", nargs="+", metavar="NAME", help="model names served (default: the config's)"
        )
    reg.add_argument(
        "--p2p-address", metavar="MULTIADDR", help="the multiaddr to register (default: the config's)"
    )
    reg.add_argument("--dry-run", action="store_true", help="print the transactions without sending them")

    status = sub.add_parser(
        "status", parents=[common], help="stake, role, unbonding, models, claimable balance"
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    sub.add_parser("unbond", parents=[common, signing], help="stop taking work; start the unbonding delay")
    sub.add_parser(
        "withdraw", parents=[common, signing], help="after the unbonding delay, take the stake back"
    )
    sub.add_parser("claim", parents=[common, signing], help="claim the rewards balance")
    rewards = sub.add_parser("rewards", parents=[common], help="every payout and slash, from chain events")
    rewards.add_argument("--json", action="store_true", help="print JSON")
    rewards.add_argument(
        "--from-block", type=int, metavar="N", help="first block (default: the deployment's)"
    )
    rewards.add_argument("--to-block", type=int, metavar="N", help="last block (default: the confirmed head)")


class _Failure(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def run(args: argparse.Namespace, role: OperatorRole, command: str) -> int:
    """Run operator subcommand ``command``; errors become one line on stderr and an exit code."""
    from protocol.chain.errors import ChainError, SignerError
    from protocol.errors import ConfigError

    prog = role.command
    try:
        return _COMMANDS[command](args, role)
    except _Failure as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.code
    except (ConfigError, SignerError) as exc:  # incl. a wrong password
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ChainError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_CHAIN


# ---------------------------------------------------------------------- helpers


def _config_path(args: argparse.Namespace, role: OperatorRole) -> Path:
    from protocol.operator.config import default_config_path

    path: Path | None = args.config
    return path.expanduser() if path is not None else default_config_path(role)


def _load(args: argparse.Namespace, role: OperatorRole) -> OperatorConfig:
    from protocol.operator.config import load_config

    return load_config(_config_path(args, role), role)


def _account(config: OperatorConfig) -> OperatorAccount:
    from protocol.operator.account import OperatorAccount
    from protocol.operator.connect import connect
    from protocol.operator.keys import keystore_address

    address = keystore_address(config.account.keystore)
    return OperatorAccount(connect(config), address)


def _sender(args: argparse.Namespace, account: OperatorAccount) -> TxSender:
    from protocol.operator.keys import resolve_password, unlock

    config = account.op.config
    password = resolve_password(
        args.password_file,
        os.environ,
        config.account.password_file,
        getpass.getpass if sys.stdin.isatty() else None,
    )
    signer = unlock(config.account.keystore, password)
    return account.op.chain.sender(signer)


def _tx_line(label: str, detail: str, tx_hash: str, block: int) -> str:
    return f"{label}: {detail} (tx {tx_hash}, block {block})"


# ---------------------------------------------------------------------- commands


def _init(args: argparse.Namespace, role: OperatorRole) -> int:
    from protocol.operator.config import config_home, new_config, render_config

    path = _config_path(args, role)
    if path.exists() and not args.force:
        raise _Failure(f"{path} exists: pass --force to overwrite it", EXIT_USAGE)
    chain: dict[str, object] = {}
    for key in ("rpc_url", "chain_id", "deployment", "artifacts_dir", "confirmations"):
        value = getattr(args, key)
        if value is not None:
            chain[key] = value.expanduser().resolve() if isinstance(value, Path) else value
    keystore = (
        args.keystore.expanduser().resolve()
        if args.keystore
        else config_home() / "keys" / f"{role.value}.json"
    )
    password_file = args.account_password_file.expanduser().resolve() if args.account_password_file else None
    config = new_config(
        role,
        keystore=keystore,
        p2p_address=args.p2p_address,
        models=getattr(args, "models", None),
        chain=chain,
        password_file=password_file,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_config(config), encoding="utf-8")
    print(f"wrote {path}")
    if not keystore.exists():
        print(
            f"no keystore at {keystore} yet: run `synod keys new --out {keystore}` (or `synod keys import`)"
        )
    return EXIT_OK


def _register(args: argparse.Namespace, role: OperatorRole) -> int:
    config = _load(args, role)
    account = _account(config)
    stake = account.op.units.parse(args.stake, "--stake")
    models = list(getattr(args, "models", None) or config.models)
    p2p = args.p2p_address or config.p2p_address
    plan = account.plan_register(stake, models, p2p)
    if plan.noop:
        st = plan.status
        served = ", ".join(m.name or m.id for m in st.models) or "no models"
        print(
            f"nothing to change: {st.address} is registered as {st.registered_as} with "
            f"{account.op.units.format(st.stake)}, serving {served}, at {st.p2p_address}"
        )
        return EXIT_OK
    if args.dry_run:
        for step in plan.steps:
            print(f"would send {step.label}: {step.detail}")
        return EXIT_OK
    sender = _sender(args, account)
    for step in plan.steps:
        receipt = sender.transact(step.call(), label=step.label)
        print(_tx_line(step.label, step.detail, receipt.tx_hash, receipt.block_number))
    return EXIT_OK


def _status_lines(st: AccountStatus, role: OperatorRole) -> list[str]:
    from protocol.operator.account import when
    from protocol.operator.amounts import TokenUnits

    units = TokenUnits(st.decimals, st.symbol)
    lines = [f"address:      {st.address}", f"block:        {st.block_number}"]
    if not st.registered:
        lines.append(
            f"registered:   no (run `{role.command} register --stake AMOUNT`; "
            f"minimum {units.format(st.min_stake)})"
        )
    else:
        lines.append(f"registered:   as {st.registered_as} (id {st.registration_id})")
        stake = units.format(st.stake)
        if st.under_staked_by:
            minimum = units.format(st.min_stake, symbol=False)
            stake += (
                f" (under the minimum by {units.format(st.under_staked_by)}: run "
                f"`{role.command} register --stake {minimum}`)"
            )
        lines.append(f"stake:        {stake}")
        if st.unbonding_end is not None:
            state = (
                "withdraw now"
                if st.withdrawable
                else f"withdraw from {when(st.unbonding_end, st.block_time)}"
            )
            lines.append(f"unbonding:    yes ({state})")
        else:
            lines.append("unbonding:    no")
        if st.registered_as == "node":
            lines.append("models:       " + (", ".join(m.name or m.id for m in st.models) or "none"))
        lines.append(f"p2p address:  {st.p2p_address}")
    lines.append(f"claimable:    {units.format(st.claimable)} (claimed so far {units.format(st.claimed)})")
    lines.append(
        f"wallet:       {units.format(st.token_balance)}, {st.gas_balance_wei / 10**18:.6f} ETH for gas"
    )
    return lines


def _status(args: argparse.Namespace, role: OperatorRole) -> int:
    account = _account(_load(args, role))
    st = account.status()
    if args.json:
        print(st.model_dump_json())
    else:
        print("\n".join(_status_lines(st, role)))
    return EXIT_OK


def _unbond(args: argparse.Namespace, role: OperatorRole) -> int:
    from protocol.operator.account import when

    account = _account(_load(args, role))
    sender = _sender(args, account)
    end, receipt = account.unbond(sender)
    now = account.block_time(receipt.block_number)
    detail = f"no new work; withdraw from {when(end, now)} with `{role.command} withdraw`"
    print(_tx_line("beginUnbonding", detail, receipt.tx_hash, receipt.block_number))
    return EXIT_OK


def _withdraw(args: argparse.Namespace, role: OperatorRole) -> int:
    account = _account(_load(args, role))
    amount, receipt = account.withdraw(_sender(args, account))
    detail = f"{account.op.units.format(amount)} returned; no longer registered"
    print(_tx_line("withdraw", detail, receipt.tx_hash, receipt.block_number))
    return EXIT_OK


def _claim(args: argparse.Namespace, role: OperatorRole) -> int:
    account = _account(_load(args, role))
    amount, receipt = account.claim(_sender(args, account))
    print(
        _tx_line(
            "claim", f"{account.op.units.format(amount)} paid out", receipt.tx_hash, receipt.block_number
        )
    )
    return EXIT_OK


def _print_rewards(report: RewardsReport) -> None:
    from rich.console import Console
    from rich.table import Table

    from protocol.operator.amounts import TokenUnits

    units = TokenUnits(report.decimals, report.symbol)
    table = Table(
        title=f"{report.role.value} {report.address}: blocks {report.from_block}..{report.to_block}",
        title_justify="left",
    )
    for column in ("block", "batch", "kind", "amount", "reason"):
        table.add_column(column, overflow="fold")
    table.add_column("tx", no_wrap=True)
    for entry in report.entries:
        sign = "-" if entry.kind == "slash" else ""
        table.add_row(
            "-" if entry.block_number is None else str(entry.block_number),
            "-" if entry.batch is None else str(entry.batch),
            entry.kind,
            f"{sign}{units.format(entry.amount, symbol=False)}",
            entry.reason,
            entry.tx_hash or "-",
        )
    console = Console(width=max(Console().width, 200))  # hashes unbroken in pipes too
    console.print(table)
    console.print(
        f"paid {units.format(report.total('payout'))}, slashed {units.format(report.total('slash'))}, "
        f"claimed {units.format(report.total('claim'))}",
        highlight=False,
    )


def _rewards(args: argparse.Namespace, role: OperatorRole) -> int:
    from protocol.operator.rewards import rewards_report

    config = _load(args, role)
    account = _account(config)
    report = rewards_report(
        account.op.chain,
        account.address,
        role,
        account.op.units.decimals,
        account.op.units.symbol,
        config.chain.log_range,
        from_block=args.from_block,
        to_block=args.to_block,
    )
    if args.json:
        print(json.dumps(report.model_dump(mode="json")))
    else:
        _print_rewards(report)
    return EXIT_OK


_COMMANDS = {
    "init": _init,
    "register": _register,
    "status": _status,
    "unbond": _unbond,
    "withdraw": _withdraw,
    "claim": _claim,
    "rewards": _rewards,
}
