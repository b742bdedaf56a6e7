"""The indexes a build job may read: where each one is, the public key that must
have signed it, and what was known of it when the job was made.

A job on this machine reads `path`; a remote job downloads `url` when it is set.
A build gets them as (WIP, final) pairs, one pair per repository it may use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class IndexSource:
    path: Path
    public_key: Path
    url: str = ""
    present: bool = False  # the index existed when the job was made
    key_name: str = ""  # the name in its `.SIGN.RSA.<name>` signature ("" when absent)

    def as_input(self) -> dict[str, str]:
        where = {"url": self.url} if self.url else {"path": str(self.path)}
        return {**where, "public_key": str(self.public_key)}
