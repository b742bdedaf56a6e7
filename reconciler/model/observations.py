"""What one pass found: each repository's WIP, final and symlink directories and
indexes, the job service's jobs, the published images and the free space where
they are published, as one frozen snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.model.jobs import JobKey, JobObservation
from reconciler.model.names import RepoKey
from reconciler.model.packages import ApkInfo


@dataclass(frozen=True, slots=True)
class ImageFile:
    """One file of a published image's date directory, with the checksums its
    `.sha256` / `.sha512` files state ("" where there is none)."""

    name: str
    size: int
    sha256: str = ""
    sha512: str = ""


@dataclass(frozen=True, slots=True)
class PublishedImage:
    """A date directory of the images tree: `<release>/<device>/<ui>/<date>/`."""

    release: str
    device: str
    ui: str
    date: str  # YYYYMMDD-HHMM, UTC
    files: tuple[ImageFile, ...] = ()
    job_id: str = ""  # the job that built it, as its `.job` file says ("": unknown)


@dataclass(frozen=True, slots=True)
class IndexView:
    """What an APKINDEX.tar.gz on disk lists, and its identity."""

    files: dict[str, str]  # apk file name -> C: checksum
    sha256: str
    description: str = ""
    mtime: float = 0.0
    signer: str = ""  # the key name of its first `.SIGN.RSA.<name>` signature ("": none)


@dataclass(frozen=True, slots=True)
class RepoObserved:
    """One repository's WIP, final and symlink directories as found on disk."""

    wip: dict[str, ApkInfo] = field(default_factory=dict)  # file name -> info
    final: dict[str, ApkInfo] = field(default_factory=dict)
    wip_index: IndexView | None = None
    final_index: IndexView | None = None
    symlink_index: IndexView | None = None
    bad_wip: dict[str, str] = field(default_factory=dict)  # file name -> why unreadable
    bad_final: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ObservedState:
    repos: dict[RepoKey, RepoObserved]
    jobs: dict[JobKey, JobObservation]
    rejected: dict[str, str]  # job id -> why its results were refused
    job_service_error: str = ""
    mirrored: dict[str, str] = field(default_factory=dict)  # repo -> sha256 of mirrored index
    # repo -> when copying it to the mirror last failed (forgotten on restart)
    mirror_failures: dict[str, float] = field(default_factory=dict)
    # The published images, by release, device, UI and date directory.
    images: tuple[PublishedImage, ...] = ()
    # Bytes free for the daemon on the images directory's file system (None: not
    # known, or not looked at).
    images_free_bytes: int | None = None
