"""Where things live on disk: the repository roots and the names of the layout.

One constant per file-layout name, for every module that writes, reads or
serves them (the daemon, job scripts, manifests, the mirror).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

INDEX_NAME = "APKINDEX.tar.gz"  # every repository's index, signed or not
UNSIGNED_INDEX_NAME = "APKINDEX.unsigned.tar.gz"  # a sign job's input


@dataclass(frozen=True, slots=True)
class RepoRoots:
    """The three trees of repositories: built (WIP), next publish (symlink), published."""

    wip: Path
    final: Path
    symlink: Path
