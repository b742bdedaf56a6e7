"""The repositories on disk: WIP, symlink and final, and every change made to them.

WIP receives checked build results and is indexed and signed with the WIP key.
The symlink repository links the apks the next publish will hold and carries
their unsigned index, which only the sign job signs. Publishing copies new apks
into final first, then renames the signed index into place, then removes what
the index no longer lists: at every instant the live index describes files that
exist. An apk that would replace different bytes under the same name in final is
refused, unless the publish says so (an operator's rebuild at the same version):
the new bytes are then written aside and renamed in just before the index, so a
crash in between leaves a file the next publish repairs, never a missing one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from reconciler.formats.apk import ApkError, read_apk_bytes
from reconciler.formats.apkindex import (
    EntryCache,
    build_index_archive,
    parse_index_text,
    read_index_archive,
    sign_archive,
    verify_index,
)
from reconciler.formats.keys import SignatureError
from reconciler.fs.apkfiles import MAX_APK_BYTES, read_apk
from reconciler.fs.atomicfile import remove, safe_join, write_bytes
from reconciler.fs.crashpoint import crashpoint
from reconciler.model.errors import InputError
from reconciler.model.layout import INDEX_NAME, RepoRoots
from reconciler.model.names import RepoKey, is_safe_branch, is_safe_name, split_staging
from reconciler.model.packages import ApkInfo, PkgSpec
from reconciler.plan.next_publish import SAME_VERSION

log = logging.getLogger(__name__)

MAX_INDEX_BYTES = 64 * 1024 * 1024


class RefusedError(InputError):
    """Input that must not enter a repository; the message says why."""


@dataclass(frozen=True, slots=True)
class SigningKeys:
    wip_private: RSAPrivateKey
    wip_name: str
    final_public: RSAPublicKey
    final_name: str


class RepoStore:
    """The three trees of repositories on disk, changed only through these methods."""

    def __init__(self, roots: RepoRoots, keys: SigningKeys) -> None:
        self.roots = roots
        self.keys = keys
        self.entries = EntryCache()  # formatted index entries: only changed apks are formatted

    def wip_dir(self, key: RepoKey) -> Path:
        return safe_join(self.roots.wip, key.relpath)

    def final_dir(self, key: RepoKey) -> Path:
        return safe_join(self.roots.final, key.relpath)

    def symlink_dir(self, key: RepoKey) -> Path:
        return safe_join(self.roots.symlink, key.relpath)

    # --- WIP -------------------------------------------------------------------
    def import_build(self, spec: PkgSpec, artifacts: Path) -> list[str]:
        """Check a build's apks and place them in WIP; RefusedError names the problem."""
        key = spec.repo
        candidates = sorted(artifacts.glob("*.apk")) if artifacts.is_dir() else []
        if not candidates:
            raise RefusedError(f"the job produced no .apk files in {artifacts.name}/")
        checked: list[tuple[str, bytes]] = []
        for path in candidates:
            if path.is_symlink() or not path.is_file():
                raise RefusedError(f"{path.name}: not a regular file")
            if path.stat().st_size > MAX_APK_BYTES:
                raise RefusedError(f"{path.name}: larger than {MAX_APK_BYTES} bytes")
            data = path.read_bytes()
            try:
                info = read_apk_bytes(data, path.name)
            except ApkError as exc:
                raise RefusedError(str(exc)) from exc
            problem = _artifact_problem(info, spec, path.name)
            if problem:
                raise RefusedError(problem)
            checked.append((info.filename, data))
        if spec.pkgname not in {name.removesuffix(f"-{spec.version}.apk") for name, _ in checked}:
            raise RefusedError(f"the job did not produce {spec.pkgname}-{spec.version}.apk")
        target_dir = self.wip_dir(key)
        for name, data in checked:
            write_bytes(safe_join(target_dir, name), data)
        log.info("[%s] %s %s: %d apk(s) into WIP", key, spec.pkgname, spec.version, len(checked))
        return [name for name, _ in checked]

    def seed_from_origin(self, key: RepoKey, origin: RepoKey, filenames: tuple[str, ...]) -> None:
        """Link (or copy, across file systems) published apks of a staging branch's
        origin into the staging WIP repository, checking each against its name."""
        target_dir = self.wip_dir(key)
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            source = safe_join(self.final_dir(origin), name)
            target = safe_join(target_dir, name)
            try:
                info = read_apk(source)
            except (ApkError, OSError) as exc:
                raise RefusedError(f"{origin}: {name}: {exc}") from exc
            if info.filename != name:
                raise RefusedError(f"{origin}: {name}: its .PKGINFO says {info.filename}")
            aside = target.with_name(f".{name}.seed")
            remove(aside)
            try:
                os.link(source, aside)
            except OSError:
                shutil.copyfile(source, aside)
            os.replace(aside, target)
        log.info("[%s] %d apk(s) copied from %s", key, len(filenames), origin)

    def reindex_wip(self, key: RepoKey, apks: tuple[ApkInfo, ...], now: float) -> None:
        """Write and sign (WIP key) the index of exactly these apks of WIP."""
        infos = list(apks)
        text = self.entries.format_index(f"wip/{key.relpath}", infos, rewrite_arch=key.arch)
        description = f"reconciler WIP {key.relpath} {_iso(now)}"
        unsigned = build_index_archive(text, description=description, mtime=int(now))
        signed = sign_archive(unsigned, self.keys.wip_private, self.keys.wip_name, mtime=int(now))
        write_bytes(self.wip_dir(key) / INDEX_NAME, signed)

    def prune_wip(self, key: RepoKey, filenames: tuple[str, ...]) -> None:
        for name in filenames:
            remove(safe_join(self.wip_dir(key), name))

    # --- symlink repository ----------------------------------------------------------
    def write_symlink_repo(
        self,
        key: RepoKey,
        from_wip: tuple[ApkInfo, ...],
        from_final: tuple[ApkInfo, ...],
        commit: str,
        now: float,
    ) -> str:
        """Make the symlink repository link exactly these apks of WIP and final and
        carry their unsigned index; return the sha256 of that index.

        Updated in place, so that one new apk costs one link, not one per package:
        links are added or replaced first (each renamed into place), then the index
        is written, then links the index no longer lists are removed. A crash at any
        point leaves an index whose every apk is linked (publish checks each copied
        apk against the index anyway)."""
        entries: list[ApkInfo] = []
        links: dict[str, str] = {}
        for infos, directory in ((from_wip, self.wip_dir(key)), (from_final, self.final_dir(key))):
            real = os.path.realpath(directory)
            for info in infos:
                entries.append(info)
                links[info.filename] = os.path.join(real, info.filename)
        description = f"reconciler {key.relpath} commit={commit or '-'} published={_iso(now)}"
        unsigned = build_index_archive(
            self.entries.format_index(f"symlink/{key.relpath}", entries, rewrite_arch=key.arch),
            description=description,
            mtime=int(now),
        )
        target = self.symlink_dir(key)
        for leftover in (f".{target.name}.new", f".{target.name}.old"):  # older versions' staging
            shutil.rmtree(target.with_name(leftover), ignore_errors=True)
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            target.unlink()
        target.mkdir(parents=True, exist_ok=True)
        present = _links_in(target)
        for name, source in links.items():
            if present.get(name) == source:
                continue
            if not os.path.isfile(source):
                raise RefusedError(f"{name} disappeared before it could be indexed")
            aside = target / f".{name}.link"
            remove(aside)
            os.symlink(source, aside)
            os.replace(aside, target / name)
        write_bytes(target / INDEX_NAME, unsigned)
        for name in present.keys() - links.keys():
            remove(target / name)
        return hashlib.sha256(unsigned).hexdigest()

    def unsigned_index(self, key: RepoKey) -> bytes:
        return (self.symlink_dir(key) / INDEX_NAME).read_bytes()

    # --- final -------------------------------------------------------------------
    def publish(
        self,
        key: RepoKey,
        signed_path: Path,
        unsigned_sha256: str,
        replace: tuple[str, ...] = (),
        unlisted: tuple[str, ...] = (),
    ) -> list[str]:
        """Move the symlink repository into final under its signed index, then remove
        the `unlisted` apks that it does not list; the files named in `replace` may
        take the place of other bytes under the same name."""
        if not signed_path.is_file() or signed_path.stat().st_size > MAX_INDEX_BYTES:
            raise RefusedError(f"the sign job left no usable {signed_path.name}")
        signed = signed_path.read_bytes()
        unsigned = self.unsigned_index(key)
        if hashlib.sha256(unsigned).hexdigest() != unsigned_sha256:
            raise RefusedError("the index to publish changed since it was signed")
        try:
            archive = read_index_archive(signed, str(signed_path))
            name = verify_index(
                signed, self.keys.final_public, str(signed_path), self.keys.final_name
            )
        except (SignatureError, ValueError) as exc:
            raise RefusedError(f"signed index refused: {exc}") from exc
        if archive.signed_bytes != unsigned or len(archive.signatures) != 1:
            raise RefusedError("signed index refused: it is not exactly the index that was sent")
        entries = parse_index_text(archive.text, str(signed_path))
        final_dir = self.final_dir(key)
        final_dir.mkdir(parents=True, exist_ok=True)
        listed: set[str] = set()
        pending: list[tuple[Path, Path]] = []
        for number, entry in enumerate(entries):
            filename = f"{entry.pkgname}-{entry.version}.apk"
            listed.add(filename)
            replacement = self._place_in_final(key, filename, entry, filename in replace)
            if replacement is not None:
                pending.append(replacement)
            if number == len(entries) // 2:
                crashpoint("publish-copying")
        for aside, target in pending:
            log.warning("[%s] replacing %s with its rebuild", key, target.name)
            os.replace(aside, target)
        crashpoint("publish-before-index")
        write_bytes(final_dir / INDEX_NAME, signed)
        crashpoint("publish-after-index")
        removed = self.prune_final(key, tuple(sorted(set(unlisted) - listed)))
        log.info(
            "[%s] published %d apk(s) signed by %s, removed %d",
            key,
            len(listed),
            name,
            len(removed),
        )
        return removed

    def _place_in_final(
        self, key: RepoKey, filename: str, entry: ApkInfo, replace: bool
    ) -> tuple[Path, Path] | None:
        """Copy one apk into final; a replacement is only written aside: (aside, target)."""
        target = safe_join(self.final_dir(key), filename)
        source = safe_join(self.symlink_dir(key), filename)
        if target.exists():
            if _same_file(source, target):
                return None  # the symlink repository links final's own apk
            current = read_apk(target)
            if current.checksum == entry.checksum and current.size == entry.size:
                return None
            if not replace:
                raise RefusedError(f"{filename} exists in final with other bytes ({SAME_VERSION})")
        data = source.read_bytes()
        info = read_apk_bytes(data, filename)
        if (info.checksum, info.size) != (entry.checksum, entry.size):
            raise RefusedError(f"{filename} changed in WIP after it was indexed")
        if target.exists():
            aside = target.with_name(f".{filename}.rebuild")
            write_bytes(aside, data)
            return aside, target
        write_bytes(target, data)
        return None

    def remove_branch(self, branch: str, splitrepos: tuple[str, ...]) -> None:
        """Delete a branch's WIP, symlink and final repositories (every arch and split
        repo), and an emptied staging/<name> directory above them."""
        if not is_safe_branch(branch):
            raise RefusedError(f"{branch!r} is not a branch name")
        roots = self.roots
        for root in (roots.wip, roots.symlink, roots.final):
            for splitrepo in ("", *splitrepos):
                base = Path(RepoKey(branch, splitrepo, "any").relpath).parent
                shutil.rmtree(safe_join(root, str(base)), ignore_errors=True)
                if split_staging(branch):
                    with contextlib.suppress(OSError):  # kept while other branches use it
                        safe_join(root, str(base.parent)).rmdir()
        log.info("removed the repositories of %s", branch)

    def prune_final(self, key: RepoKey, filenames: tuple[str, ...]) -> list[str]:
        removed = []
        for name in filenames:
            if remove(safe_join(self.final_dir(key), name)):
                removed.append(name)
                crashpoint("publish-pruning")
        return removed


def _artifact_problem(info: ApkInfo, spec: PkgSpec, filename: str) -> str:
    if not is_safe_name(info.pkgname):
        return f"{filename}: unsafe package name {info.pkgname!r}"
    if (info.origin or info.pkgname) != spec.pkgname:
        return f"{filename}: origin is {info.origin!r}, expected {spec.pkgname!r}"
    if info.version != spec.version:
        return f"{filename}: version is {info.version!r}, expected {spec.version!r}"
    if info.arch not in (spec.repo.arch, "noarch"):
        return f"{filename}: arch is {info.arch!r}, expected {spec.repo.arch!r} or 'noarch'"
    if filename != info.filename:
        return f"{filename}: file name does not match its .PKGINFO ({info.filename})"
    return ""


def _iso(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def _links_in(directory: Path) -> dict[str, str]:
    """The symlinks of a symlink repository: name -> where it points."""
    found: dict[str, str] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_symlink():
                with contextlib.suppress(OSError):
                    found[entry.name] = os.readlink(entry.path)
            elif entry.name.endswith(".apk"):
                remove(Path(entry.path))  # only links belong here
    return found


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
