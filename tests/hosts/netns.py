"""Test hosts as Linux network namespaces: a bridge on this machine's side with the first
address of a private /24, and per host a namespace joined to it by a veth pair, with its
own address. Needs root (CAP_NET_ADMIN); anything that fails raises `NetworkError`.

Names start with `PREFIX` and carry the owning process's id in hex, so parallel runs
(pytest-xdist) never collide and `sweep` can remove what a dead run left behind: a
namespace or link whose owner is gone. Subnets are handed out under a lock file, one free
10.77.X.0/24 per network.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import itertools
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

#: What every name this module creates starts with (namespaces, bridges, veth ends).
PREFIX = "ofh"
#: The /16 the networks' /24s are taken from.
SUPERNET = "10.77"
_LOCK = Path("/tmp/offload-hosts.lock")
_NAME = re.compile(rf"^{PREFIX}([0-9a-f]+)x")
_sequence = itertools.count()


class NetworkError(RuntimeError):
    """A namespace, link or address could not be made or changed: `command` and `output`."""

    def __init__(self, command: Sequence[str], output: str) -> None:
        super().__init__(f"{' '.join(command)} failed: {output.strip()}")
        self.command = list(command)
        self.output = output


def ip(*args: str, netns: str | None = None) -> str:
    """Run `ip ARGS` (inside `netns` if given); its output, or NetworkError."""
    command = ["ip", *(("-n", netns) if netns else ()), *args]
    try:
        done = subprocess.run(
            command,
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkError(command, str(exc)) from exc
    if done.returncode != 0:
        raise NetworkError(command, done.stderr or done.stdout)
    return done.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(name: str) -> int | None:
    found = _NAME.match(name)
    return int(found.group(1), 16) if found else None


def namespace_pids(netns: str) -> list[int]:
    """The processes running in `netns` now."""
    return [int(pid) for pid in ip("netns", "pids", netns).split()]


def kill_namespace(netns: str) -> list[int]:
    """SIGKILL every process of `netns` (the whole host at once); the pids killed."""
    pids = namespace_pids(netns)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def _remove_namespace(netns: str) -> None:
    for _ in range(50):  # a namespace with live processes lingers after `del`
        with contextlib.suppress(NetworkError):
            if not kill_namespace(netns):
                break
        time.sleep(0.1)
    with contextlib.suppress(NetworkError):
        ip("netns", "del", netns)


def sweep() -> list[str]:
    """Remove the namespaces and links of runs whose process is gone; what was removed."""
    removed: list[str] = []
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        owner = _owner(name)
        if owner is not None and not _alive(owner):
            _remove_namespace(name)
            removed.append(name)
    for line in ip("-o", "link", "show").splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        owner = _owner(name)
        if owner is not None and not _alive(owner):
            with contextlib.suppress(NetworkError):
                ip("link", "del", name)
            removed.append(name)
    return removed


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    with _LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _free_subnet() -> int:
    """The third octet of a 10.77.X.0/24 no interface of this machine uses."""
    used = set(re.findall(rf"inet {re.escape(SUPERNET)}\.(\d+)\.", ip("-o", "-4", "addr")))
    for octet in range(1, 255):
        if str(octet) not in used:
            return octet
    raise NetworkError(["ip", "addr"], f"every {SUPERNET}.X.0/24 is in use")


@dataclass(frozen=True)
class Host:
    """One test host: its namespace, its address, and the host-side end of its link."""

    name: str
    netns: str
    address: str
    link: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` wrapped to run inside this host's namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def cut(self) -> None:
        """Pull its cable: the host side of its link goes down, its packets are dropped."""
        ip("link", "set", self.link, "down")

    def restore(self) -> None:
        """Plug its cable back in."""
        ip("link", "set", self.link, "up")

    def kill(self) -> list[int]:
        """SIGKILL every process of the host at once; the pids killed."""
        return kill_namespace(self.netns)

    def pids(self) -> list[int]:
        """Its processes now."""
        return namespace_pids(self.netns)


class Network:
    """A bridge with address `gateway` and `hosts` namespaces on it (see the module doc).

    Use as a context manager: it is torn down on leaving, also after an error or Ctrl-C.
    """

    def __init__(self, names: Sequence[str]) -> None:
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"host names must be distinct and at least one: {list(names)}")
        self.id = f"{PREFIX}{os.getpid():x}x{next(_sequence):x}"
        longest = f"{self.id}h{len(names) - 1}"
        if len(longest) > 15:  # IFNAMSIZ: an interface name has 15 characters at most
            raise ValueError(f"{len(names)} hosts make interface names too long: {longest!r}")
        self.bridge = f"{self.id}b"
        self.hosts: dict[str, Host] = {}
        self._names = list(names)
        self._made: list[str] = []
        self.gateway = ""
        self.subnet = ""

    def __enter__(self) -> Network:
        sweep()
        try:
            with _locked():  # two runs must not pick the same free subnet
                octet = _free_subnet()
                self.subnet = f"{SUPERNET}.{octet}.0/24"
                self.gateway = f"{SUPERNET}.{octet}.1"
                ip("link", "add", self.bridge, "type", "bridge")
                self._made.append(self.bridge)
                ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
            network = ipaddress.ip_network(self.subnet)
            for index, name in enumerate(self._names):
                self.hosts[name] = self._add(name, index, str(network[10 + index]))
        except BaseException:
            self.close()
            raise
        return self

    def _add(self, name: str, index: int, address: str) -> Host:
        netns = f"{self.id}n{index}"
        link = f"{self.id}h{index}"
        peer = f"{self.id}p{index}"
        ip("netns", "add", netns)
        self._made.append(netns)
        ip("link", "add", link, "type", "veth", "peer", "name", peer)
        self._made.append(link)
        ip("link", "set", peer, "netns", netns)
        ip("link", "set", peer, "name", "eth0", netns=netns)
        ip("addr", "add", f"{address}/24", "dev", "eth0", netns=netns)
        ip("link", "set", "eth0", "up", netns=netns)
        ip("link", "set", "lo", "up", netns=netns)
        ip("link", "set", link, "master", self.bridge, "up")
        return Host(name, netns, address, link)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Kill the hosts' processes, delete their veth pairs, namespaces and the bridge.
        Idempotent."""
        for name in reversed(self._made):  # a veth pair goes with its namespace, but later
            if name.startswith(f"{self.id}n"):
                _remove_namespace(name)
            else:
                with contextlib.suppress(NetworkError):
                    ip("link", "del", name)
        self._made.clear()

    def leftovers(self) -> list[str]:
        """Names of this network still present (empty once closed)."""
        present = ip("netns", "list") + ip("-o", "link", "show")
        return sorted(set(re.findall(rf"\b{re.escape(self.id)}[a-z]\d*\b", present)))
