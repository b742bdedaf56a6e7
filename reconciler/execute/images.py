"""The images directory: publishing a finished image job's files, pruning old
date directories and removing what an operator asks to (a device or UI no
longer configured).

A job's files are published only when they are exactly the files its log's
checksum block lists (`formats.imagelog`), each with that sha256, with the
image and its package list among them. They are copied into a staging
directory beside the tree (`.staging-<job id>`), synced, and renamed into
`<release>/<device>/<ui>/<date>/` in one step, so the tree shows a date
directory whole or not at all; the job's id is kept there in `.job` (`JOB_ID_FILE`) (dot files
are neither listed nor served) so that pruning the directory also removes the
site's copy of the job's log. A crash leaves at most a staging directory,
removed when the store starts. Pruning and removal rename what goes aside
(`.trash-…`) in one step, then delete it: the tree never shows half a
directory, and a crash in between leaves trash that the next start removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import stat
from pathlib import Path

from reconciler.execute.repos import RefusedError
from reconciler.formats.imagelog import ImageLogError, parse_sha256_lines
from reconciler.fs.atomicfile import fsync_dir, make_dirs, write_bytes
from reconciler.fs.regularfile import Refused, read_regular
from reconciler.model.images import (
    JOB_ID_FILE,
    DesiredImage,
    image_file_name,
    is_image_name,
    is_release_name,
    is_slot_name,
    packages_file_name,
)
from reconciler.model.jobs import JobObservation

log = logging.getLogger(__name__)

STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".trash-"
MAX_LOG_BYTES = 64 * 1024 * 1024
_CHUNK = 1024 * 1024


class ImageStore:
    """The images tree under `root`; `site_logs` is the site's copy of job logs."""

    def __init__(self, root: Path, site_logs: Path) -> None:
        self.root = root
        self.site_logs = site_logs
        with contextlib.suppress(FileNotFoundError):
            for leftover in os.listdir(root):
                if leftover.startswith((STAGING_PREFIX, TRASH_PREFIX)):
                    shutil.rmtree(root / leftover, ignore_errors=True)

    def publish(self, job: JobObservation, image: DesiredImage) -> str:
        """Verify the job's files against its log and move them into the tree;
        RefusedError (nothing published) when they don't match."""
        expected = self._listed(job)
        artifacts = Path(job.artifacts_dir or "/nonexistent")
        date = _date_of(expected, image)
        found = _regular_files(artifacts)
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        if missing or extra:
            what = "; ".join(
                part
                for part in (
                    f"listed in the log but missing: {', '.join(missing)}" if missing else "",
                    f"not listed in the log: {', '.join(extra)}" if extra else "",
                )
                if part
            )
            raise RefusedError(f"image {image.target}: {what}")
        for name, digest in sorted(expected.items()):
            actual = _sha256(artifacts / name)
            if actual != digest:
                raise RefusedError(
                    f"image {image.target}: {name} has sha256 {actual}, the log says {digest}"
                )
        target = self.root / image.release / image.target.device / image.target.ui / date
        if target.is_dir():
            return f"{target} was published already"
        staging = self.root / f"{STAGING_PREFIX}{job.key.job_id}"
        shutil.rmtree(staging, ignore_errors=True)
        make_dirs(staging)
        for name in sorted(expected):
            shutil.copyfile(artifacts / name, staging / name)
            with open(staging / name, "rb") as copied:
                os.fsync(copied.fileno())
            os.chmod(staging / name, 0o644)
        write_bytes(staging / JOB_ID_FILE, f"{job.key.job_id}\n".encode())
        fsync_dir(staging)
        make_dirs(target.parent)
        os.rename(staging, target)
        fsync_dir(target.parent)
        return f"published {len(expected)} file(s) of image {image.target} into {target}"

    def prune(
        self, release: str, device: str, ui: str, dates: tuple[str, ...], job_ids: tuple[str, ...]
    ) -> list[str]:
        """Remove these date directories and the site's copies of their jobs' logs
        (`job_ids`, one per date, "" where it is not known)."""
        removed: list[str] = []
        parent = self.root / release / device / ui
        for date, job_id in zip(dates, job_ids, strict=True):
            if not is_slot_name(date):
                continue
            trash = self.root / f"{TRASH_PREFIX}{release}-{device}-{ui}-{date}"
            if not _move_aside(parent / date, trash):
                continue
            shutil.rmtree(trash, ignore_errors=True)
            self._remove_logs((job_id,))
            removed.append(date)
        return removed

    def remove(self, release: str, device: str, ui: str, job_ids: tuple[str, ...]) -> list[str]:
        """Remove `<release>/<device>/<ui>` (the whole device when `ui` is "") and
        the site's copies of `job_ids`' logs; then the device's and the release's
        directory when no directory is left in them (only their pages). Returns
        what was removed, relative to the root. Names that are not the images
        model's are refused (ValueError): nothing outside the tree is touched."""
        if not is_release_name(release) or not is_image_name(device):
            raise ValueError(f"not an images directory: {release!r}/{device!r}")
        if ui and not is_image_name(ui):
            raise ValueError(f"not a UI directory: {ui!r}")
        parts = [release, device, *([ui] if ui else [])]
        removed: list[str] = []
        while parts:
            path = self.root.joinpath(*parts)
            if removed and _has_subdirectories(path):
                break
            trash = self.root / f"{TRASH_PREFIX}remove-{'-'.join(parts)}"
            if _move_aside(path, trash):
                shutil.rmtree(trash, ignore_errors=True)
                removed.append("/".join(parts))
            elif not removed:
                break
            parts.pop()
        self._remove_logs(job_ids)
        return removed

    def _remove_logs(self, job_ids: tuple[str, ...]) -> None:
        """The site's copies of these jobs' logs."""
        for job_id in job_ids:
            if job_id and "/" not in job_id and not job_id.startswith("."):
                for name in (f"{job_id}.log", f"{job_id}.log.gz"):
                    with contextlib.suppress(FileNotFoundError):
                        (self.site_logs / name).unlink()

    def _listed(self, job: JobObservation) -> dict[str, str]:
        """The files the job's log lists, with their sha256."""
        if not job.log_path:
            raise RefusedError(f"image job {job.key.job_id} has no log to check its files against")
        try:
            _, data = read_regular(job.log_path, MAX_LOG_BYTES)
            return parse_sha256_lines(data.decode("utf-8", errors="replace"))
        except (OSError, Refused, ImageLogError) as exc:
            raise RefusedError(f"image job {job.key.job_id}: its log: {exc}") from exc


def _move_aside(path: Path, trash: Path) -> bool:
    """Rename `path` to `trash` (the same file system: one step) and sync its
    parent; False when there is no such directory (a symlink is not followed)."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return False
        shutil.rmtree(trash, ignore_errors=True)  # a leftover of a crash
        os.rename(path, trash)
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def _has_subdirectories(path: Path) -> bool:
    """Whether a directory holds a directory (its pages are files); True when it
    cannot be listed, so that nothing is removed on a guess."""
    try:
        return any(e.is_dir(follow_symlinks=False) for e in os.scandir(path))
    except FileNotFoundError:
        return False
    except OSError:
        return True


def _date_of(listed: dict[str, str], image: DesiredImage) -> str:
    """The date directory the job chose, from its image file's name; RefusedError
    when the log lists no image of this target, or not its package list."""
    for name in sorted(listed):
        date = name[:13]
        if is_slot_name(date) and name == image_file_name(date, image):
            if packages_file_name(date, image) not in listed:
                raise RefusedError(f"image {image.target}: the log lists no package list")
            return date
    raise RefusedError(f"image {image.target}: the log lists no image file of this target")


def _regular_files(directory: Path) -> dict[str, int]:
    """name -> size of the regular files directly in `directory`; RefusedError for
    anything else there (a symlink or a directory could point outside)."""
    found: dict[str, int] = {}
    try:
        entries = list(os.scandir(directory))
    except OSError as exc:
        raise RefusedError(f"cannot list the job's files in {directory}: {exc}") from exc
    for entry in entries:
        info = entry.stat(follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode):
            raise RefusedError(f"{directory / entry.name}: not a regular file")
        found[entry.name] = info.st_size
    return found


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
