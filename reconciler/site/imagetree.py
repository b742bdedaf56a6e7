"""The images tree's pages and its index.json, as values: what
`site.images_writer` renders into `<images>/…/index.html` and writes as
`<images>/index.json`.

Pure: from the published images (`ObservedState.images`), the images section of
the configuration, the configured branches, the job that built each image and
the status site's address, `build_tree` makes one frozen page per directory
level (root: releases; a release: devices; a device: UIs; a UI: dates, newest
first, the first marked latest; a date: its files with sizes, checksums and the
build log) and the index.json document in bpo's shape, so a download page
written for bpo reads ours unchanged.

The tree on disk is hostile input: only names the images model accepts reach a
page or a URL (a release, codenames, `YYYYMMDD-HHMM` dates, file names of the
package-name alphabet), checksums only when they are hex of the right length,
job ids only when `JobKey.from_job_id` reads them; every path part in a link is
percent-quoted, and the templates escape the rest.

Links between the images pages are relative, so the tree can be browsed from
any address. The status site (its style sheet, its build logs) is reached
relatively when the images URL lies below the site URL (`/images/` on the same
server: the CSP's 'self'), else at the site URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from reconciler.config.images import DEVELOPMENT_RELEASE, ImagesConfig
from reconciler.model.images import (
    CHECKSUM_SUFFIXES,
    PACKAGES_SUFFIX,
    SLOT_FORMAT,
    is_image_name,
    is_release_name,
    is_slot_name,
)
from reconciler.model.jobs import JobKey
from reconciler.model.names import PKGNAME_RE
from reconciler.model.observations import ImageFile, PublishedImage

INDEX_HTML = "index.html"  # in every directory of the tree
INDEX_JSON = "index.json"  # at the images root
# The files the writer puts into the tree: never listed as an image's files.
WRITTEN_NAMES = frozenset({INDEX_HTML, INDEX_JSON})
MAX_FILE_NAME = 255  # a file name's bytes on Linux
_HEX = {".sha256": re.compile(r"[0-9a-f]{64}"), ".sha512": re.compile(r"[0-9a-f]{128}")}
_UNITS = ("KiB", "MiB", "GiB")
TITLE_SUFFIX = "Images"  # "<relpath> - <site title> // Images"
ROOT_HEADING = "Device images"
ROOT_SUBTITLE = "pick a release, a device, a user interface and a date"
UNSTABLE = "unstable"
WORK_IN_PROGRESS = "work in progress"
END_OF_LIFE = "end of life"

# The levels of the tree, top down; a page's template is `images/<level>.html`.
RELEASES = "releases"
DEVICES = "devices"
INTERFACES = "interfaces"
DATES = "dates"
FILES = "files"


class BranchLike(Protocol):
    """What the tree needs of a configured branch (config.branches.BranchConfig)."""

    @property
    def name(self) -> str: ...

    @property
    def ignore_errors(self) -> bool: ...


# (release, device, UI, date directory) -> the id of the job that built the image.
JobIds = Mapping[tuple[str, str, str, str], str]


# --- names and numbers ------------------------------------------------------------


def is_file_name(name: str) -> bool:
    """A file of a date directory that may be listed: the package-name alphabet
    (no "/", no space, nothing to escape in a path), not hidden, not ours."""
    return (
        bool(PKGNAME_RE.fullmatch(name))
        and len(name) <= MAX_FILE_NAME
        and name not in WRITTEN_NAMES
    )


def human_size(size: int) -> str:
    """bpo's sizes: bytes as they are ("512 B"), then KiB, MiB or GiB with one
    decimal ("1.5 KiB"); GiB is the largest unit ("2048.0 GiB")."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if round(value, 1) < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def iso_timestamp(date: str) -> str:
    """The time a `YYYYMMDD-HHMM` directory name stands for, as bpo writes it in
    index.json: ISO 8601 without an offset (the time is UTC)."""
    return datetime.strptime(date, SLOT_FORMAT).isoformat()


def iso_utc(date: str) -> str:
    """The same time with its offset, for a page's `time` element."""
    return datetime.strptime(date, SLOT_FORMAT).replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%MZ")


def date_words(date: str) -> str:
    """`20250620-0930` -> `2025-06-20 09:30 UTC`."""
    return datetime.strptime(date, SLOT_FORMAT).strftime("%Y-%m-%d %H:%M UTC")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders the numbers in a name by value (`v9.1` < `v25.12`)."""
    return tuple(
        (0, int(part)) if part.isascii() and part.isdigit() else (1, part)
        for part in re.split(r"(\d+)", name)
        if part
    )


def quoted(*parts: str) -> str:
    """A relative URL of path parts, each percent-quoted ("/" too)."""
    return "/".join(quote(part, safe="") for part in parts)


def site_root_from_images(images_url: str, site_url: str) -> str:
    """The status site's root as seen from the images root: relative ("../")
    when the images URL lies below the site URL, else the site URL itself."""
    base = site_url if site_url.endswith("/") else site_url + "/"
    below = images_url if images_url.endswith("/") else images_url + "/"
    if below.startswith(base) and below != base:
        depth = below[len(base) :].strip("/").count("/") + 1
        return "../" * depth
    return base


def index_bytes(document: Mapping[str, object]) -> bytes:
    """index.json's bytes: indented as bpo writes it, ASCII (other characters
    escaped), a newline at the end."""
    return (json.dumps(document, indent=4) + "\n").encode()


EMPTY_INDEX = index_bytes({"releases": []})


# --- the pages --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Crumb:
    """One step of a page's breadcrumbs; `href` "" for the page itself."""

    text: str
    href: str


@dataclass(frozen=True, slots=True)
class Entry:
    """A subdirectory in a listing: its name, pretty name and link, how many
    entries it holds; for a date, its time and whether it is the newest."""

    name: str
    pretty_name: str
    href: str
    count: int
    time: str = ""  # ISO 8601 with offset (dates only)
    latest: bool = False


@dataclass(frozen=True, slots=True)
class FileRow:
    """A file of a date directory, with its checksums and their files' links
    ("" where there is none)."""

    name: str
    href: str
    size: int
    size_text: str
    sha256: str = ""
    sha256_href: str = ""
    sha512: str = ""
    sha512_href: str = ""


@dataclass(frozen=True, slots=True)
class TreePage:
    """The `index.html` of one directory of the tree.

    `relpath`: the directory below the images root ("" for the root). `images_root`
    and `site_root`: the way from this page to the images root and to the status
    site's root (relative, or the site's URL). `entries` list subdirectories,
    `files` a date directory's files; `log_href` and `job_id` name the build's log
    ("" when unknown)."""

    level: str
    relpath: str
    site_title: str
    title: str
    heading: str
    subtitle: str
    images_root: str
    site_root: str
    crumbs: tuple[Crumb, ...]
    entries: tuple[Entry, ...] = ()
    files: tuple[FileRow, ...] = ()
    log_href: str = ""
    job_id: str = ""

    @property
    def template(self) -> str:
        return f"images/{self.level}.html"

    @property
    def path(self) -> str:
        """The page's file below the images root."""
        return f"{self.relpath}/{INDEX_HTML}" if self.relpath else INDEX_HTML


@dataclass(frozen=True, slots=True)
class ImageTree:
    """Every page of the tree (keyed by its file below the images root) and the
    bytes of index.json."""

    pages: Mapping[str, TreePage] = field(default_factory=dict)
    index_json: bytes = EMPTY_INDEX

    @property
    def index(self) -> dict[str, Any]:
        """index.json as a document."""
        document: dict[str, Any] = json.loads(self.index_json)
        return document


# --- what the tree holds ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Names:
    """Pretty names: releases by name, devices by codename, UIs by name."""

    development: str
    configured: frozenset[str]
    unfinished: frozenset[str]
    devices: Mapping[str, str]
    uis: Mapping[str, str]

    def release(self, name: str) -> str:
        """bpo's: "(unstable)" for the development release, "(end of life)" for a
        release no configured branch has, "(work in progress)" for one of an
        `ignore_errors` branch, else the name."""
        if name == self.development:
            return f"{name} ({UNSTABLE})"
        if name not in self.configured:
            return f"{name} ({END_OF_LIFE})"
        if name in self.unfinished:
            return f"{name} ({WORK_IN_PROGRESS})"
        return name

    def device(self, codename: str) -> str:
        return self.devices.get(codename) or codename

    def ui(self, name: str) -> str:
        return self.uis.get(name) or name


def _names(
    config: ImagesConfig, branches: Iterable[BranchLike], device_names: Mapping[str, str]
) -> _Names:
    listed = tuple(branches)
    development = (
        config.release(config.development_branch)
        if config.development_branch
        else DEVELOPMENT_RELEASE
    )
    devices = {d.codename: d.pretty_name for d in config.devices if d.pretty_name.strip()}
    devices.update({k: v for k, v in device_names.items() if v.strip()})
    return _Names(
        development=development,
        configured=frozenset(config.release(b.name) for b in listed),
        unfinished=frozenset(config.release(b.name) for b in listed if b.ignore_errors),
        devices=devices,
        uis=config.ui_names,
    )


Key = tuple[str, str, str]  # release, device, UI


def _valid(images: Iterable[PublishedImage]) -> dict[Key, list[PublishedImage]]:
    """The images whose directory names the model accepts, by (release, device,
    UI), newest first; a date listed twice is taken once."""
    found: dict[Key, dict[str, PublishedImage]] = {}
    for image in images:
        if not (
            is_release_name(image.release)
            and is_image_name(image.device)
            and is_image_name(image.ui)
            and is_slot_name(image.date)
        ):
            continue
        found.setdefault((image.release, image.device, image.ui), {}).setdefault(image.date, image)
    return {
        key: [dates[d] for d in sorted(dates, reverse=True)] for key, dates in sorted(found.items())
    }


def _release_order(releases: set[str], development: str) -> list[str]:
    """The development release first, then the others reverse-sorted (newest first)."""
    rest = sorted((r for r in releases if r != development), key=natural_key, reverse=True)
    return ([development] if development in releases else []) + rest


def _files(image: PublishedImage) -> list[ImageFile]:
    """The files of a date directory that may be listed, by name, each once."""
    seen: dict[str, ImageFile] = {}
    for f in image.files:
        if is_file_name(f.name) and f.size >= 0:
            seen.setdefault(f.name, f)
    return [seen[name] for name in sorted(seen)]


def _checksum(f: ImageFile, suffix: str) -> str:
    value = f.sha256 if suffix == ".sha256" else f.sha512
    return value if _HEX[suffix].fullmatch(value) else ""


def _is_checksum_of(name: str, names: set[str]) -> bool:
    """A `.sha256` / `.sha512` file beside the file it names."""
    return any(name.endswith(s) and name.removesuffix(s) in names for s in CHECKSUM_SUFFIXES)


def _file_rows(image: PublishedImage) -> tuple[FileRow, ...]:
    """A date page's files: every listable file but the checksum files beside
    the files they name, which show as the checksums and their links; the
    images (what index.json lists) first."""
    files = _files(image)
    names = {f.name for f in files}
    rows = []
    for f in sorted(files, key=lambda f: (not _is_image_file(f.name), f.name)):
        if _is_checksum_of(f.name, names):
            continue
        sums = {
            s: (_checksum(f, s), quoted(f.name + s) if f.name + s in names else "") for s in _HEX
        }
        rows.append(
            FileRow(
                name=f.name,
                href=quoted(f.name),
                size=f.size,
                size_text=human_size(f.size),
                sha256=sums[".sha256"][0],
                sha256_href=sums[".sha256"][1],
                sha512=sums[".sha512"][0],
                sha512_href=sums[".sha512"][1],
            )
        )
    return tuple(rows)


def _is_image_file(name: str) -> bool:
    """What index.json lists: every file but the checksums and the package list."""
    return not name.endswith((*CHECKSUM_SUFFIXES, PACKAGES_SUFFIX))


# --- building -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Frame:
    """What every page shares: the site's title and the way to the status site."""

    site_title: str
    site_root: str  # from the images root

    def page(
        self,
        level: str,
        parts: tuple[str, ...],
        heading: str,
        subtitle: str,
        *,
        entries: tuple[Entry, ...] = (),
        files: tuple[FileRow, ...] = (),
        job_id: str = "",
    ) -> TreePage:
        """The page of the directory `parts` below the images root."""
        relpath = "/".join(parts)
        up = "../" * len(parts)
        site_root = self.site_root if "://" in self.site_root else up + self.site_root
        title = f"{self.site_title} // {TITLE_SUFFIX}"
        crumbs = [Crumb(TITLE_SUFFIX.lower(), up)]
        crumbs += [Crumb(part, "../" * (len(parts) - i - 1)) for i, part in enumerate(parts)]
        crumbs[-1] = Crumb(crumbs[-1].text, "")  # the page itself
        return TreePage(
            level=level,
            relpath=relpath,
            site_title=self.site_title,
            title=f"{relpath} - {title}" if relpath else title,
            heading=heading,
            subtitle=subtitle,
            images_root=up,
            site_root=site_root,
            crumbs=tuple(crumbs),
            entries=entries,
            files=files,
            log_href=quoted("logs", job_id + ".log") if job_id else "",
            job_id=job_id,
        )


@dataclass(frozen=True, slots=True)
class _Builder:
    """Builds the pages into `pages`, level by level; each level returns its
    entry in the listing above and its part of index.json (None when it lists
    no image)."""

    frame: _Frame
    names: _Names
    tree: dict[Key, list[PublishedImage]]
    job_ids: JobIds
    url: str  # the images root's public URL
    pages: dict[str, TreePage]

    def add(self, page: TreePage) -> None:
        self.pages[page.path] = page

    def root(self) -> list[dict[str, object]]:
        order = _release_order({r for r, _, _ in self.tree}, self.names.development)
        entries, found = [], []
        for release in order:
            entry, document = self.release(release)
            entries.append(entry)
            if document is not None:
                found.append(document)
        heading, subtitle = ROOT_HEADING, f"{self.frame.site_title}: {ROOT_SUBTITLE}"
        self.add(self.frame.page(RELEASES, (), heading, subtitle, entries=tuple(entries)))
        return found

    def release(self, release: str) -> tuple[Entry, dict[str, object] | None]:
        devices = sorted({d for r, d, _ in self.tree if r == release})
        entries, found = [], []
        for device in devices:
            entry, document = self.device(release, device)
            entries.append(entry)
            if document is not None:
                found.append(document)
        pretty = self.names.release(release)
        self.add(self.frame.page(DEVICES, (release,), pretty, release, entries=tuple(entries)))
        entry = Entry(release, pretty, quoted(release) + "/", len(entries))
        return entry, _level(release, pretty, "devices", found)

    def device(self, release: str, device: str) -> tuple[Entry, dict[str, object] | None]:
        uis = [ui for r, d, ui in self.tree if (r, d) == (release, device)]
        entries, found = [], []
        for ui in uis:
            entry, document = self.ui((release, device, ui))
            entries.append(entry)
            if document is not None:
                found.append(document)
        pretty = self.names.device(device)
        parts = (release, device)
        self.add(self.frame.page(INTERFACES, parts, pretty, device, entries=tuple(entries)))
        entry = Entry(device, pretty, quoted(device) + "/", len(entries))
        return entry, _level(device, pretty, "interfaces", found)

    def ui(self, key: Key) -> tuple[Entry, dict[str, object] | None]:
        """The page of a UI directory (its dates, newest first, the first marked
        latest) and the page of each of its dates."""
        release, device, ui = key
        dates = self.tree[key]
        pretty, device_pretty = self.names.ui(ui), self.names.device(device)
        entries = []
        for number, image in enumerate(dates):
            rows = _file_rows(image)
            when = date_words(image.date)
            entries.append(
                Entry(
                    image.date,
                    when,
                    quoted(image.date) + "/",
                    len(rows),
                    time=iso_utc(image.date),
                    latest=number == 0,
                )
            )
            job_id = _job_id(self.job_ids.get((*key, image.date), ""))
            subtitle = f"{pretty} on {device_pretty}, {self.names.release(release)}"
            parts = (*key, image.date)
            self.add(self.frame.page(FILES, parts, when, subtitle, files=rows, job_id=job_id))
        heading = f"{pretty} on {device_pretty}"
        self.add(self.frame.page(DATES, key, heading, release, entries=tuple(entries)))
        found = [_json_image(self.url, i, f) for i in dates for f in _files(i)]
        images = [e for e in found if e is not None]
        entry = Entry(ui, pretty, quoted(ui) + "/", len(dates))
        return entry, _level(ui, pretty, "images", images)


def _level(
    name: str, pretty: str, key: str, items: list[dict[str, object]]
) -> dict[str, object] | None:
    """A release, device or interface of index.json; None when it holds no image
    (bpo lists only what has files)."""
    return {"name": name, "pretty_name": pretty, key: items} if items else None


def build_tree(
    images: Iterable[PublishedImage],
    config: ImagesConfig,
    branches: Iterable[BranchLike],
    job_ids: JobIds,
    *,
    site_url: str,
    site_title: str,
    device_names: Mapping[str, str] | None = None,
) -> ImageTree:
    """The pages and index.json of the images tree.

    `branches`: the configured branches (name, ignore_errors) for the releases'
    pretty names; `job_ids`: the job that built each image, for the link to its
    log; `site_url`: the status site's address (its style sheet and logs);
    `device_names`: pretty names that win over the configuration's (the device
    packages' descriptions, where the configuration gives none)."""
    frame = _Frame(site_title, site_root_from_images(config.url, site_url))
    names = _names(config, branches, device_names or {})
    pages: dict[str, TreePage] = {}
    builder = _Builder(frame, names, _valid(images), job_ids, config.url, pages)
    data = index_bytes({"releases": builder.root()})
    return ImageTree(dict(sorted(pages.items())), data)


def _job_id(job_id: str) -> str:
    """The job id if it is one (`JobKey.from_job_id` reads it), else ""."""
    try:
        JobKey.from_job_id(job_id)
    except ValueError:
        return ""
    return job_id


def _json_image(base: str, image: PublishedImage, f: ImageFile) -> dict[str, object] | None:
    """One `images` entry of index.json: name, timestamp, size, url and the
    checksums that exist (their keys absent otherwise, as bpo); None for the
    checksum files and the package list."""
    if not _is_image_file(f.name):
        return None
    parts = (image.release, image.device, image.ui, image.date, f.name)
    entry: dict[str, object] = {
        "name": f.name,
        "timestamp": iso_timestamp(image.date),
        "size": f.size,
        "url": base.rstrip("/") + "/" + quoted(*parts),
    }
    for suffix in _HEX:
        value = _checksum(f, suffix)
        if value:
            entry[suffix[1:]] = value
    return entry
