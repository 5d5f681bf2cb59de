"""``top``'s owner map, kept up to date between ticks: :class:`OwnerCache` is
the owner service's tracker (:class:`sockscope.owners.service.OwnerTracker`:
the kernel's iterator on every tick where it can be used, else the
incremental /proc walk of :mod:`sockscope.owners.walk`)."""

from __future__ import annotations

from sockscope.owners.service import OwnerTracker as OwnerCache

__all__ = ["OwnerCache"]
