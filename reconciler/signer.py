"""Entry point named by sign job scripts: `python -m reconciler.signer ...`.

A stable path: scripts already in job directories, and builds.sr.ht jobs that
clone this repository unpinned, run it by this name. The program is
`reconciler.jobs.signer`.
"""

import sys

from reconciler.jobs.signer import main

if __name__ == "__main__":
    sys.exit(main())
