"""Landlock scoping for sandboxed processes: no abstract unix socket and no signal beyond their own sandbox.

Apps share the host's network namespace (see runtime/netfilter.py), and abstract unix sockets belong to
the network namespace, not the file system: without this, one app could connect to another's abstract
socket. Landlock (Linux 6.12+, ABI 6) scopes both abstract sockets and signals to the process tree that
made the restriction. The platform applies it in the child, as root, just before exec'ing bubblewrap, so
every sandbox is a domain of its own and the restriction costs two system calls.
"""

from __future__ import annotations

import ctypes
import os

# The same numbers on every architecture (the generic system call table, since Linux 5.13).
_CREATE_RULESET, _RESTRICT_SELF = 444, 446
_CREATE_RULESET_VERSION = 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1
SCOPE_SIGNAL = 2
SCOPES_ABI = 6  # the first ABI with scopes


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """Landlock's ABI version on this kernel (0 when it is missing or disabled)."""
    version = _libc().syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def scope_self() -> None:
    """preexec_fn part: confine the calling process and all it will start (needs ABI ≥ 6; root or no_new_privs)."""
    libc = _libc()
    attr = _RulesetAttr(0, 0, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL)
    fd = libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), ctypes.c_uint32(0))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        if libc.syscall(_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(fd)
