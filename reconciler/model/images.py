"""Device images as values: which image (`ImageTarget`), what it is made of
(`DesiredImage`), its slot and date-directory names and its file names.

An image is desired once per *slot*: the configured interval, counted from the
configured start (`desired.images.slot_start`). A slot and a published image's
date directory are both named `YYYYMMDD-HHMM` in UTC, so comparing the names as
strings compares the times.

An image job's identity is its intent plus the attempt, like every job's
(`model.jobs.JobKey`): kind `image`, repository `(branch, "", arch)`, `pkgname`
the device's codename and `version` `<slot>~<ui>[~<kernel>]` (no kernel part for
the device's only kernel). UI and kernel names never hold `~`, so the encoding
is unambiguous, and the job id keeps to `[A-Za-z0-9@._+~-]`.

File names follow bpo's: `<date>-postmarketOS-<release>-<ui>-<uiversion>-<device>`
then `_<kernel>` when a kernel is named, then `.img.xz`; beside it the same stem
with `-packages.txt` (what the image installs) and the image's name plus
`.sha256` / `.sha512`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.model.jobs import JobIntent, JobKind
from reconciler.model.names import RepoKey, is_safe_arch, is_safe_branch

SLOT_FORMAT = "%Y%m%d-%H%M"  # a slot's and a date directory's name, UTC
SLOT_RE = re.compile(r"[0-9]{8}-[0-9]{4}")
# A device codename, UI or kernel name: lower case, no "_" (it separates the
# kernel in file names) and no "~" (it separates the fields of a job's version).
IMAGE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9.+-]*")
MAX_IMAGE_NAME = 64
IMAGE_SUFFIX = ".img.xz"
PACKAGES_SUFFIX = "-packages.txt"
CHECKSUM_SUFFIXES = (".sha256", ".sha512")
# In each published date directory: the id of the job that built it (a dot file:
# neither listed in index.json nor served).
JOB_ID_FILE = ".job"
_FIELD_SEPARATOR = "~"


def is_image_name(name: str) -> bool:
    """A codename, UI or kernel name that is safe in job ids, paths and file names."""
    return bool(IMAGE_NAME_RE.fullmatch(name)) and ".." not in name and len(name) <= MAX_IMAGE_NAME


def is_release_name(name: str) -> bool:
    """A release name (`edge`, `v25.12`): a directory of the images tree and part
    of file names."""
    return is_safe_branch(name) and "_" not in name


# --- slots and date directories ------------------------------------------------


def slot_name(epoch: float) -> str:
    """`YYYYMMDD-HHMM` (UTC) of a time: a slot's name, or a date directory's."""
    return datetime.fromtimestamp(epoch, UTC).strftime(SLOT_FORMAT)


def is_slot_name(name: str) -> bool:
    """Whether `name` is a valid `YYYYMMDD-HHMM` (a real date and time)."""
    if not SLOT_RE.fullmatch(name):
        return False
    try:
        datetime.strptime(name, SLOT_FORMAT)
    except ValueError:
        return False
    return True


def slot_epoch(name: str) -> float:
    """The time a `YYYYMMDD-HHMM` name stands for (UTC); ValueError if it is none."""
    if not is_slot_name(name):
        raise ValueError(f"{name!r} is not a YYYYMMDD-HHMM date")
    return datetime.strptime(name, SLOT_FORMAT).replace(tzinfo=UTC).timestamp()


def is_current(date_dir: str, slot: str) -> bool:
    """Whether a published image's date directory is dated on or after the start of
    `slot`: the slot's image then exists. A name that is not a date is never current."""
    return is_slot_name(date_dir) and is_slot_name(slot) and date_dir >= slot


# --- which image ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class ImageTarget:
    """One image of the matrix in one slot: the identity of its jobs (with the arch,
    which the device decides, and the attempt). `kernel` is "" for the device's
    only kernel; `slot` is the slot's start as `YYYYMMDD-HHMM` (UTC)."""

    branch: str
    device: str
    ui: str
    kernel: str
    slot: str

    def __str__(self) -> str:
        """bpo's `branch:device:ui`, with `:kernel` when one is named, and the slot."""
        kernel = f":{self.kernel}" if self.kernel else ""
        return f"{self.branch}:{self.device}:{self.ui}{kernel} ({self.slot})"

    @property
    def matrix_key(self) -> tuple[str, str, str]:
        """(branch, device, UI): what `keep` counts published images by."""
        return (self.branch, self.device, self.ui)

    def intent(self, arch: str) -> JobIntent:
        """The intent of this image's jobs; `from_intent` reverses it."""
        fields = [self.slot, self.ui, *([self.kernel] if self.kernel else [])]
        version = _FIELD_SEPARATOR.join(fields)
        return JobIntent(JobKind.IMAGE, RepoKey(self.branch, "", arch), self.device, version)

    @staticmethod
    def from_intent(intent: JobIntent) -> ImageTarget:
        """The target an image job's intent encodes; ValueError for any other intent."""
        if intent.kind is not JobKind.IMAGE:
            raise ValueError(f"{intent}: not an image job")
        fields = intent.version.split(_FIELD_SEPARATOR)
        if intent.repo.splitrepo or len(fields) not in (2, 3) or fields[-1] == "":
            raise ValueError(f"{intent}: expected <slot>~<ui>[~<kernel>] in the main repository")
        slot, ui, kernel = fields[0], fields[1], fields[2] if len(fields) == 3 else ""
        target = ImageTarget(intent.repo.branch, intent.pkgname, ui, kernel, slot)
        target.check()
        if not is_safe_arch(intent.repo.arch):
            raise ValueError(f"{intent}: unsafe arch")
        return target

    def check(self) -> None:
        """ValueError naming the first field that is not safe."""
        if not is_safe_branch(self.branch):
            raise ValueError(f"image {self.branch!r}: unsafe branch name")
        for what, name in (("device", self.device), ("UI", self.ui)):
            if not is_image_name(name):
                raise ValueError(f"image {self}: {what} {name!r} is not a valid name")
        if self.kernel and not is_image_name(self.kernel):
            raise ValueError(f"image {self}: kernel {self.kernel!r} is not a valid name")
        if not is_slot_name(self.slot):
            raise ValueError(f"image {self}: slot {self.slot!r} is not a YYYYMMDD-HHMM date")


# --- what it is made of -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DesiredImage:
    """An image to have for the current slot, with everything its job and pages need.

    `packages`: the names the image installs, as pmbootstrap's `install` does:
    `postmarketos-base`, `device-<codename>`, `device-<codename>-kernel-<kernel>`
    when a kernel is named, `device-<codename>-nonfree-firmware` when the device
    package has that subpackage (pmbootstrap's default `nonfree_firmware`), and
    `postmarketos-ui-<ui>`. `file_prefix`: the file name without the date
    directory, kernel suffix and extension
    (`postmarketOS-<release>-<ui>-<uiversion>-<device>`).
    `needs`: (origin pkgname, version) of every package of the branch's tree the
    image installs, directly or through dependencies: the image waits until the
    final repository of (branch, arch) holds each at that version.
    `tree_names`: every dependency name of the image that the branch's tree
    provides for its arch: the image job must find those in the final index; any
    other name belongs to the upstream distribution (Alpine) and is left to it.
    """

    target: ImageTarget
    arch: str
    release: str
    device_pretty: str
    ui_pretty: str
    ui_version: str
    packages: tuple[str, ...]
    file_prefix: str
    needs: tuple[tuple[str, str], ...] = ()
    tree_names: tuple[str, ...] = ()

    @property
    def repo(self) -> RepoKey:
        """The repository whose final index the image is made from."""
        return RepoKey(self.target.branch, "", self.arch)

    def intent(self) -> JobIntent:
        return self.target.intent(self.arch)


def file_prefix(release: str, ui: str, ui_version: str, device: str) -> str:
    """`postmarketOS-<release>-<ui>-<uiversion>-<device>`."""
    return f"postmarketOS-{release}-{ui}-{ui_version}-{device}"


def file_stem(date_dir: str, prefix: str, kernel: str) -> str:
    """`<date>-<prefix>[_<kernel>]`: every file name of an image starts with it."""
    return f"{date_dir}-{prefix}" + (f"_{kernel}" if kernel else "")


def image_stem(date_dir: str, image: DesiredImage) -> str:
    """`<date>-postmarketOS-<release>-<ui>-<uiversion>-<device>[_<kernel>]`."""
    return file_stem(date_dir, image.file_prefix, image.target.kernel)


def image_file_name(date_dir: str, image: DesiredImage) -> str:
    """The image file: `<stem>.img.xz`."""
    return image_stem(date_dir, image) + IMAGE_SUFFIX


def packages_file_name(date_dir: str, image: DesiredImage) -> str:
    """The list of what the image installs: `<stem>-packages.txt`."""
    return image_stem(date_dir, image) + PACKAGES_SUFFIX
