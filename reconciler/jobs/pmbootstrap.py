"""Entry point named by pmbootstrap build job scripts:
`python -m reconciler.jobs.pmbootstrap watch SECONDS -- COMMAND...`.

A stable path: scripts already in job directories, and builds.sr.ht jobs that
clone this repository unpinned, run it by this name. The watchdog is
`reconciler.jobs.silence`; the job itself is `reconciler.jobs.pmbootstrap_build`.
"""

import sys

from reconciler.jobs.silence import main

if __name__ == "__main__":
    sys.exit(main())
