"""Entry point named by build job scripts: `python -m reconciler.synthetic ...`.

A stable path: scripts already in job directories, and builds.sr.ht jobs that
clone this repository unpinned, run it by this name. The program is
`reconciler.jobs.synthetic`.
"""

import sys

from reconciler.jobs.synthetic import main

if __name__ == "__main__":
    sys.exit(main())
