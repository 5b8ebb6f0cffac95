"""cgroup v2: detect it, own one subtree, give pods and containers their limits, read OOM kills.

- ``detect``   (detect.py): can limits be enforced here, where does the subtree go, and the one
  sentence that says why not. Reads only.
- ``CgroupDriver`` (driver.py): kubepods/{burstable,besteffort}/pod<uid>/<container>, with
  ResourceConfigForPod on pods and cpu.max/cpu.weight/memory.max/memory.oom.group/pids.max on
  containers.
- ``Cgroup`` (fs.py): one directory: write, read memory.events/cpu.stat, kill, remove.
- ``enter_argv`` (launch.py): the launcher that puts a process in its cgroup before it execs.

The arithmetic lives in ``api.resources`` so it is shared with status and admission.
"""

from minikubelet.cgroups.detect import CgroupSupport, detect
from minikubelet.cgroups.driver import CgroupDriver
from minikubelet.cgroups.fs import Cgroup, CgroupError
from minikubelet.cgroups.launch import START_ERROR_EXIT, enter_argv

__all__ = [
    "START_ERROR_EXIT",
    "Cgroup",
    "CgroupDriver",
    "CgroupError",
    "CgroupSupport",
    "detect",
    "enter_argv",
]
