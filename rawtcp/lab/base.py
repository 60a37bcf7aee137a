"""What every lab shares: unique names, namespaces, and a teardown that always runs."""

from __future__ import annotations

import errno
import os
import re
import secrets
from typing import Any, Self

from rawtcp.host import privileges, registry
from rawtcp.host.netns import add_netns, delete_netns
from rawtcp.link.base import Link

PREFIX = registry.PREFIX
TAG_RE = re.compile(r"^rt([0-9a-f]{6})[0-9a-f]{4}[a-z]?$")   # tag, optional suffix k/r/t


def unique_tag() -> str:
    """'rt' + this process's pid (6 hex digits) + 4 random hex digits, e.g. 'rt0012a9f03c':
    unique per run, and short enough for 15-character interface names with a suffix."""
    return f"{PREFIX}{os.getpid() & 0xFFFFFF:06x}{secrets.token_hex(2)}"


def tag_pid(name: str) -> int | None:
    """The pid encoded in a lab name made by unique_tag() (None if it is not one)."""
    m = TAG_RE.match(name)
    return int(m.group(1), 16) if m else None


class Lab:
    """Base for labs: a context manager that builds on enter and always tears down.

    Subclasses implement `_build()` and list their namespaces in `self._netns`.
    Links opened with `open_link()` and peers started with `peer()`/`client()` are closed or
    stopped by the teardown too.
    """

    _need_tun = False

    def __init__(self) -> None:
        self.tag = unique_tag()
        self._netns: list[str] = []
        self._links: list[Link] = []
        self._peers: list[Any] = []
        self._built = False

    def __enter__(self) -> Self:
        privileges.check(need_tun=self._need_tun)
        try:
            self._build()
            self._built = True
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        raise NotImplementedError

    def _new_netns(self, name: str) -> str:
        self._netns.append(name)
        add_netns(name)
        return name

    def _track(self, link: Link) -> Link:
        self._links.append(link)
        return link

    def _require_built(self) -> None:
        if not self._built:
            raise OSError(errno.ENOTCONN,
                          "the lab is not set up; use it as `with Lab(...) as lab:`")

    def close(self) -> None:
        """Stop peers, close links, delete namespaces (and all they contain). Idempotent.

        Every step runs even when one before it fails, also on Ctrl-C or SIGTERM landing in
        the teardown itself (often right after a failure that started it, when a peer died
        of the same signal): the first error, the interrupt included, is raised at the
        end."""
        errors: list[BaseException] = []
        for p in self._peers:
            try:
                p.stop()
            except BaseException as e:  # noqa: BLE001 - keep tearing down, raise it after
                errors.append(e)
        self._peers.clear()
        for link in self._links:
            try:
                link.close()
            except BaseException as e:  # noqa: BLE001 - keep tearing down, raise it after
                errors.append(e)
        self._links.clear()
        for ns in reversed(self._netns):
            try:
                delete_netns(ns)
            except BaseException as e:  # noqa: BLE001 - keep tearing down, raise it after
                errors.append(e)
        self._netns.clear()
        self._built = False
        if errors:
            raise errors[0]

    # -------------------------------------------------------------- kernel peers
    def server(self, kind: str, port: int = 0, **opts: Any) -> Any:
        """Start a kernel TCP server in the kernel's namespace (see rawtcp.lab.peers)."""
        from rawtcp.lab.peers import Server

        self._require_built()
        opts.setdefault("bind", self.kernel_bind_addr())
        srv = Server(self.kernel_netns, kind, port=port, **opts)
        self._peers.append(srv)
        return srv.start()

    def client(self, port: int, host: str | None = None, **opts: Any) -> Any:
        """Start a kernel TCP client in the kernel's namespace that connects to rawtcp."""
        from rawtcp.lab.peers import Client

        self._require_built()
        cl = Client(self.kernel_netns, host or self.rawtcp_addr, port, **opts)
        self._peers.append(cl)
        return cl.start()

    def kernel_bind_addr(self) -> str:
        return "::" if any(":" in a for a in self.kernel_addrs) else "0.0.0.0"

    kernel_netns: str
    kernel_addrs: list[str]
    rawtcp_addr: str
