"""Whether this process may load the owners' BPF iterator (:mod:`sockscope.kernel.bpf`): its
capabilities, read from /proc/self/status.  A module of its own: the owner service asks it
before it imports the loader (~2 ms), to know at once whether the /proc walk is the source."""

from __future__ import annotations

#: include/uapi/linux/capability.h
CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


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


__all__ = ["may_load", "CAP_SYS_ADMIN", "CAP_PERFMON", "CAP_BPF"]
