"""Entry point named by image job scripts: `python -m reconciler.synthetic_image ...`.

A stable path: scripts already in job directories, and builds.sr.ht jobs that
clone this repository unpinned, run it by this name. The program is
`reconciler.jobs.image_synthetic`.
"""

import sys

from reconciler.jobs.image_synthetic import main

if __name__ == "__main__":
    sys.exit(main())
