"""Network namespaces for devnet nodes: each node behind its own veth pair, so libp2p and JSON-RPC
cross a real network boundary (a routed link, its own interfaces and loopback), not 127.0.0.1.

Node ``i`` gets namespace ``<prefix>n<i>`` and the /30-free link ``10.<b>.<i>.0/24``: the root
side ``10.<b>.<i>.1`` (where Anvil and the model server answer), the node side ``10.<b>.<i>.2``
(where its libp2p host listens). Needs root (``ip netns``); :func:`unavailable` says why not.
"""

from __future__ import annotations

import os
import random
import subprocess
from dataclasses import dataclass


class NetnsError(RuntimeError):
    """An ``ip`` command failed (its stderr is in the message)."""


@dataclass(frozen=True)
class Namespace:
    name: str
    host_ip: str
    """The root namespace's end of the link (reach Anvil and the model server here)."""
    inner_ip: str
    """The node's address inside its namespace."""

    def exec_prefix(self) -> list[str]:
        """Run a command inside the namespace (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.name]


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")


def unavailable() -> str | None:
    """``None`` when namespaces can be made here, else the reason (for a skip message)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    probe = f"synprobe{os.getpid() % 100000}"
    try:
        _ip("netns", "add", probe)
        _ip("netns", "del", probe)
    except (NetnsError, FileNotFoundError, subprocess.TimeoutExpired) as exc:
        return f"cannot create a network namespace: {exc}"
    return None


def pick_block() -> int:
    """A second octet ``b`` whose 10.b.0.0/16 no interface of this host uses."""
    used = subprocess.run(
        ["ip", "-4", "addr"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    choices = [b for b in range(200, 250) if f"inet 10.{b}." not in used]
    if not choices:
        raise NetnsError("no free 10.b.0.0/16 block for devnet namespaces")
    return random.choice(choices)


def create(prefix: str, index: int, block: int) -> Namespace:
    """Namespace ``<prefix>n<index>`` linked to the root namespace by a veth pair (see module doc)."""
    name = f"{prefix}n{index}"
    host_if, inner_if = f"{prefix}h{index}", f"{prefix}i{index}"
    host_ip, inner_ip = f"10.{block}.{index}.1", f"10.{block}.{index}.2"
    _ip("netns", "add", name)
    _ip("link", "add", host_if, "type", "veth", "peer", "name", inner_if)
    _ip("link", "set", inner_if, "netns", name)
    _ip("addr", "add", f"{host_ip}/24", "dev", host_if)
    _ip("link", "set", host_if, "up")
    _ip("netns", "exec", name, "ip", "addr", "add", f"{inner_ip}/24", "dev", inner_if)
    _ip("netns", "exec", name, "ip", "link", "set", inner_if, "up")
    _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
    return Namespace(name, host_ip, inner_ip)


def delete(name: str) -> None:
    """Delete a namespace (its veth pair goes with it); a missing one is not an error."""
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30, check=False)
