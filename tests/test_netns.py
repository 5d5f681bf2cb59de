"""netns.visit: what --all-netns found may be gone before it is visited."""

from __future__ import annotations

import pytest

from sockscope import netns


def test_a_namespace_deleted_after_it_was_listed_is_skipped() -> None:
    targets = [("gone-before-visit", "/var/run/netns/sockscope-test-never-made"), ("self", "/proc/self/ns/net")]
    assert list(netns.visit(targets, lambda label: iter([label]))) == ["self"]
    # one named by the caller must exist
    with pytest.raises(netns.NetnsError):
        list(netns.visit(targets[:1], lambda label: iter([label]), gone_ok=False))
