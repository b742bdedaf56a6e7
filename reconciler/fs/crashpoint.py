"""A test-only hook that kills the daemon at a named step boundary.

When the environment variable RECONCILER_CRASH_AT names a boundary, reaching
it sends SIGKILL to the daemon's own process: no cleanup, no flush, exactly like a power cut. The
crash tests use it to prove that a restart from any boundary converges. Unset,
it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "RECONCILER_CRASH_AT"
BOUNDARIES = (
    "build-collected",  # a build's apks are in WIP, the WIP index is not rewritten yet
    "wip-indexed",  # the WIP index was rewritten
    "symlink-indexed",  # the unsigned index of the next publish was written
    "sign-submitted",  # the sign job was submitted
    "publish-copying",  # some, not all, new apks were copied into final
    "publish-before-index",  # every apk is in final, the signed index not yet
    "publish-after-index",  # the new index is live, old apks not yet removed
    "publish-pruning",  # some old apks were removed from final
)
# In the local job service: a job's directory is in place, its runner not started.
JOB_PREPARED = "job-prepared"


def crashpoint(name: str) -> None:
    """Die here if the environment asks for it (tests only)."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
