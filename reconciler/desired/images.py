"""Which device images should exist now: the configured matrix, the clock and
the branches' trees -> one `DesiredImage` per branch, device, UI and kernel.

Pure: no I/O, no clock (`now` is given). The current slot starts at the
configured start plus the largest multiple of the interval that is not in the
future; before the start there is no slot and nothing is desired. Whether a
slot's image is already published (a date directory on or after the slot's
start, `model.images.is_current`) is the plan's question, answered from the
images directory; this module does not look.

From the branch's tree: the device's arch is the one arch its `device-<codename>`
package is built for; the UI version is `postmarketos-ui-<ui>`'s pkgver; what
the image installs follows pmbootstrap (`model.images.DesiredImage.packages`),
and its closure over the tree's dependencies (names, then subpackage names,
then provides, as `desired.resolve`; other names are Alpine's) is what the
image waits for. An entry the tree cannot satisfy (no device package, a device
package of no single configured arch, no UI package for the device's arch, a
named kernel without its subpackage) is a problem `file:line: ...` at the
device's entry in the config, and that image is not desired.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.config.images import DeviceImages, ImagesConfig
from reconciler.formats import apkversion
from reconciler.formats.dependency import Dependency, parse_dependency
from reconciler.model.images import DesiredImage, ImageTarget, file_prefix, slot_name
from reconciler.model.names import split_staging
from reconciler.model.packages import BranchDesired, BrokenPackage, PkgSpec

BASE_PACKAGE = "postmarketos-base"
UI_PREFIX = "postmarketos-ui-"


def slot_start(images: ImagesConfig, now: float) -> float | None:
    """The current slot's start: `start` plus the largest multiple of the interval
    that is not after `now`; None before `start` (no slot yet)."""
    if now < images.start:
        return None
    interval = images.interval_seconds
    return images.start + math.floor((now - images.start) / interval) * interval


def next_slot_start(images: ImagesConfig, now: float) -> float:
    """When the next slot begins (the first one, before `start`)."""
    current = slot_start(images, now)
    return images.start if current is None else current + images.interval_seconds


def ui_package(ui: str) -> str:
    return f"{UI_PREFIX}{ui}"


def kernel_package(codename: str, kernel: str) -> str:
    """pmbootstrap's package for a named kernel of a device."""
    return f"device-{codename}-kernel-{kernel}"


def firmware_package(codename: str) -> str:
    """The device's non-free firmware subpackage, installed when it exists
    (pmbootstrap's default `nonfree_firmware`)."""
    return f"device-{codename}-nonfree-firmware"


def pkgver(version: str) -> str:
    """`1.2-r3` -> `1.2`."""
    head, sep, rel = version.rpartition("-r")
    return head if sep and rel.isdigit() else version


def desired_images(
    images: ImagesConfig, branches: Mapping[str, BranchDesired], now: float
) -> tuple[tuple[DesiredImage, ...], tuple[str, ...]]:
    """The current slot's images of every configured branch (in `images.branches`
    order, those with a tree in `branches`), device, UI and kernel, in that
    order; and the problems, each `file:line: ...`, once each."""
    start = slot_start(images, now)
    if start is None or not images.devices:
        return (), ()
    slot = slot_name(start)
    found: list[DesiredImage] = []
    problems: dict[str, None] = {}
    for branch in images.branches or tuple(b for b in branches if not split_staging(b)):
        desired = branches.get(branch)
        if desired is None:
            continue
        tree = _Tree.of(desired)
        for index, device in enumerate(images.devices):
            if not device.builds_on(branch):
                continue
            where = f"{images.where(device)}: images.devices[{index}] ({device.codename})"
            made, said = _device_images(images, tree, device, branch, slot)
            found.extend(made)
            problems.update((f"{where}: branch {branch}: {p}", None) for p in said)
    return tuple(found), tuple(problems)


def _device_images(
    images: ImagesConfig, tree: _Tree, device: DeviceImages, branch: str, slot: str
) -> tuple[list[DesiredImage], list[str]]:
    """One device's images on one branch, and what keeps others from being desired."""
    uis = device.uis_for(branch)
    if not uis:
        return [], []
    arch, problem = tree.device_arch(device.package)
    if arch is None:
        return [], [problem]
    specs = tree.by_arch[arch]
    device_spec = specs[device.package]
    subpackages = {s.name for s in device_spec.subpackages}
    problems: list[str] = []
    kernels = []
    for kernel in device.kernels_for(branch):
        name = kernel_package(device.codename, kernel)
        if kernel and name not in subpackages:
            problems.append(f"{device.package} has no subpackage {name} (kernel {kernel!r})")
        else:
            kernels.append(kernel)
    firmware = firmware_package(device.codename)
    extra = (firmware,) if firmware in subpackages else ()
    made: list[DesiredImage] = []
    for ui in uis:
        ui_spec, problem = tree.ui_spec(ui_package(ui), arch)
        if ui_spec is None:
            problems.append(problem)
            continue
        version = pkgver(ui_spec.version)
        release = images.release(branch)
        for kernel in kernels:
            kernel_names = (kernel_package(device.codename, kernel),) if kernel else ()
            packages = (BASE_PACKAGE, device.package, *kernel_names, *extra, ui_package(ui))
            needs, tree_names = tree.closure(arch, packages)
            made.append(
                DesiredImage(
                    target=ImageTarget(branch, device.codename, ui, kernel, slot),
                    arch=arch,
                    release=release,
                    device_pretty=device.pretty_name or device_spec.description or device.codename,
                    ui_pretty=images.ui_names.get(ui, ui),
                    ui_version=version,
                    packages=packages,
                    file_prefix=file_prefix(release, ui, version, device.codename),
                    needs=needs,
                    tree_names=tree_names,
                )
            )
    return made, problems


# (origin spec, the dependency tokens of the package or subpackage, its version)
_Provider = tuple[PkgSpec, tuple[str, ...], str]


@dataclass(frozen=True, slots=True)
class _Tree:
    """One branch's main repositories, looked up by package name per arch."""

    by_arch: dict[str, dict[str, PkgSpec]]  # arch -> pkgname -> spec, configured order
    broken: dict[str, BrokenPackage]
    # arch -> its provider map, made once per call of desired_images
    made: dict[str, dict[str, _Provider]] = field(default_factory=dict)

    @staticmethod
    def of(desired: BranchDesired) -> _Tree:
        by_arch = {
            key.arch: {spec.pkgname: spec for spec in specs.values()}
            for key, specs in desired.repos.items()
            if not key.splitrepo
        }
        return _Tree(by_arch, {b.pkgname: b for b in desired.broken})

    def device_arch(self, package: str) -> tuple[str | None, str]:
        """(the arch the device package is built for, "") or (None, why not)."""
        arches = [arch for arch, specs in self.by_arch.items() if package in specs]
        if not arches:
            broken = self.broken.get(package)
            if broken is not None:
                return None, f"{package}: its APKBUILD is broken: {broken.reason}"
            configured = ", ".join(self.by_arch)
            return None, (
                f"no {package} package for the branch's arches ({configured}):"
                " it is missing from the tree, or built for another arch"
            )
        if self.by_arch[arches[0]][package].pkgarch == "noarch":
            return None, f"{package} is noarch: an image needs a device package of one arch"
        if len(arches) > 1:
            return None, f"{package} is built for {', '.join(arches)}: an image needs one arch"
        return arches[0], ""

    def ui_spec(self, package: str, arch: str) -> tuple[PkgSpec | None, str]:
        """(the UI package for `arch`, "") or (None, why there is none)."""
        spec = self.by_arch[arch].get(package)
        if spec is not None:
            return spec, ""
        broken = self.broken.get(package)
        if broken is not None:
            return None, f"{package}: its APKBUILD is broken: {broken.reason}"
        if any(package in specs for specs in self.by_arch.values()):
            return None, f"{package} is not built for {arch}, the device's arch"
        return None, f"no {package} package in the tree"

    def providers(self, arch: str) -> dict[str, _Provider]:
        """Names -> what provides them for `arch`: package names, then subpackage
        names, then provides (the first package wins among equals)."""
        found = self.made.get(arch)
        if found is None:
            found = self.made[arch] = self._providers(arch)
        return found

    def _providers(self, arch: str) -> dict[str, _Provider]:
        specs = list(self.by_arch[arch].values())
        provided: dict[str, _Provider] = {}
        for spec in reversed(specs):
            for sub in reversed(spec.subpackages):
                provided.update(_provides(spec, sub.provides, sub.depends))
            provided.update(_provides(spec, spec.provides, spec.depends))
        subs: dict[str, _Provider] = {}
        for spec in reversed(specs):
            for sub in reversed(spec.subpackages):
                subs[sub.name] = (spec, sub.depends, spec.version)
        names = {spec.pkgname: (spec, spec.depends, spec.version) for spec in specs}
        return {**provided, **subs, **names}

    def closure(
        self, arch: str, packages: tuple[str, ...]
    ) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
        """(origin, version) of every package of the tree installing `packages`
        pulls in, and every name of the closure the tree provides; both sorted.
        A name of a broken APKBUILD counts with the version it was read at."""
        providers = self.providers(arch)
        needs: set[tuple[str, str]] = set()
        names: set[str] = set()
        queue = deque(packages)
        while queue:
            token = queue.popleft()
            dep = _parse(token)
            if dep is None or dep.name in names:
                continue
            hit = providers.get(dep.name)
            if hit is None:
                broken = self.broken.get(dep.name)
                if broken is not None:
                    names.add(dep.name)
                    needs.add((broken.pkgname, broken.version))
                continue  # Alpine's
            spec, depends, version = hit
            if not _fits(version, dep):
                continue  # this tree's version does not fit: Alpine must provide it
            names.add(dep.name)
            needs.add((spec.pkgname, spec.version))
            queue.extend(depends)
        return tuple(sorted(needs)), tuple(sorted(names))


def _parse(token: str) -> Dependency | None:
    try:
        dep = parse_dependency(token)
    except ValueError:
        return None
    return None if dep.conflict else dep


def _provides(
    spec: PkgSpec, tokens: tuple[str, ...], depends: tuple[str, ...]
) -> dict[str, _Provider]:
    """Provider entries of one package's (or subpackage's) provides, the first
    entry of a name winning; a provide's version is its own, else the package's."""
    found: dict[str, _Provider] = {}
    for token in reversed(tokens):
        dep = _parse(token)
        if dep is not None:
            version = dep.version if dep.op == "=" and dep.version else spec.version
            found[dep.name] = (spec, depends, version)
    return found


def _fits(version: str, dep: Dependency) -> bool:
    """Whether the tree's version fits the token's constraint (a checksum pin: yes)."""
    if not dep.op or not dep.version or dep.op == "><":
        return True
    try:
        return apkversion.satisfies(version, dep.op, dep.version)
    except (apkversion.InvalidVersion, ValueError):
        return False
