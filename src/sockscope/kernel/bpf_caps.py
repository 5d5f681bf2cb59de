"""Whether the owners' BPF iterator (:mod:`sockscope.kernel.bpf`) may be tried at all: not turned
off (``SOCKSCOPE_OWNERS=proc``), and this process's capabilities, read from /proc/self/status.  A
module of its own: the owner service asks it before it imports the loader (~2 ms), to know at once
whether the /proc walk is the source; the loader asks it before each try."""

from __future__ import annotations

import os

#: include/uapi/linux/capability.h
CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39

NEEDS_CAPS = "loading a BPF program needs CAP_BPF and CAP_PERFMON (root)"


def refused() -> str | None:
    """Why the iterator is not to be tried (``SOCKSCOPE_OWNERS=proc``, or :data:`NEEDS_CAPS`), or None."""
    if os.environ.get("SOCKSCOPE_OWNERS") == "proc":
        return "SOCKSCOPE_OWNERS=proc"
    return None if may_load() else NEEDS_CAPS


def may_load() -> bool:
    """Whether this process has what loading the program takes (CAP_BPF and CAP_PERFMON, or
    CAP_SYS_ADMIN): without, neither the BTF nor the cache is read (nor the cache written)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"CapEff:"):
                    caps = int(line.split()[1], 16)
                    break
            else:
                return False
    except (OSError, ValueError, IndexError):
        return False
    bpf_perfmon = (1 << CAP_BPF) | (1 << CAP_PERFMON)
    return caps & bpf_perfmon == bpf_perfmon or bool(caps & (1 << CAP_SYS_ADMIN))


__all__ = ["refused", "may_load", "NEEDS_CAPS", "CAP_SYS_ADMIN", "CAP_PERFMON", "CAP_BPF"]
