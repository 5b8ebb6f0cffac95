"""The in-VM test modules run inside the VM tier: test_vm_tier.py boots a cgroup v2 kernel and
runs them there (MKVM_GUEST=1). On the host they could only skip, so the host does not collect
them at all, and a CI run shows no skips for them."""

from __future__ import annotations

import os

if os.environ.get("MKVM_GUEST") != "1":
    collect_ignore_glob = ["test_in_vm_*.py"]
