"""Desired images: the slot arithmetic, and the matrix against a real tree (the
sample's, read by the desired reader): the device's arch from its APKBUILD, the
UI version from its pkgver, what the image installs and waits for, and a
`file:line` problem for every entry the tree cannot satisfy."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.config.branches import BranchConfig
from reconciler.config.images import DeviceImages, ImageOverride, ImagesConfig
from reconciler.desired.images import desired_images, next_slot_start, pkgver, slot_start
from reconciler.desired.reader import DesiredReader
from reconciler.model.images import (
    ImageTarget,
    image_file_name,
    image_stem,
    is_current,
    is_slot_name,
    packages_file_name,
    slot_epoch,
    slot_name,
)
from reconciler.model.packages import BranchDesired

from .conftest import set_field

ARCHES = ("x86_64", "aarch64", "armv7")
DAY = 86400


def at(text: str) -> float:
    """Epoch seconds of `YYYY-MM-DD HH:MM[:SS]` in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


START = at("2025-06-20 00:00")


# --- slots ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "now", "expected"),
    [
        (7, "2025-06-20 00:00:00", "2025-06-20 00:00"),  # exactly the start
        (7, "2025-06-19 23:59:59", None),  # before the start: no slot yet
        (7, "2024-01-01 00:00:00", None),
        (7, "2025-06-26 23:59:59", "2025-06-20 00:00"),  # the last second of a slot
        (7, "2025-06-27 00:00:00", "2025-06-27 00:00"),  # exactly at a slot start
        (7, "2025-06-27 00:00:01", "2025-06-27 00:00"),
        (7, "2026-12-06 17:00:00", "2026-12-04 00:00"),
        (1, "2025-06-21 12:00:00", "2025-06-21 00:00"),
        (30, "2025-08-18 23:59:00", "2025-07-20 00:00"),
        (30, "2025-08-19 00:00:00", "2025-08-19 00:00"),
    ],
)
def test_the_slot_is_the_start_plus_the_largest_multiple_not_in_the_future(
    days: int, now: str, expected: str | None
) -> None:
    images = ImagesConfig(interval_days=days, start=START)
    found = slot_start(images, at(now))
    assert found == (None if expected is None else at(expected))
    following = START if found is None else found + days * DAY
    assert next_slot_start(images, at(now)) == following
    assert next_slot_start(images, at(now)) > at(now)


@pytest.mark.parametrize(
    ("epoch", "name"),
    [
        (at("2025-06-20 00:00"), "20250620-0000"),
        (at("2026-12-04 23:59:59"), "20261204-2359"),
        (at("2030-01-02 03:04"), "20300102-0304"),
    ],
)
def test_slot_names_are_utc_minutes(epoch: float, name: str) -> None:
    assert slot_name(epoch) == name
    assert slot_epoch(name) == epoch - epoch % 60
    assert is_slot_name(name)


@pytest.mark.parametrize("name", ["", "2025062-0000", "20251320-0000", "20250620-2460", "x" * 13])
def test_names_that_are_not_dates_are_refused(name: str) -> None:
    assert not is_slot_name(name)
    with pytest.raises(ValueError, match="YYYYMMDD-HHMM"):
        slot_epoch(name)


@pytest.mark.parametrize(
    ("date_dir", "slot", "current"),
    [
        ("20250620-0000", "20250620-0000", True),  # dated exactly at the slot start
        ("20250621-0930", "20250620-0000", True),
        ("20250619-2359", "20250620-0000", False),
        ("20260101-0000", "20250620-0000", True),
        ("latest", "20250620-0000", False),
        ("20250620-0000.tmp", "20250620-0000", False),
    ],
)
def test_a_published_image_is_current_when_dated_on_or_after_the_slot(
    date_dir: str, slot: str, current: bool
) -> None:
    assert is_current(date_dir, slot) is current


@pytest.mark.parametrize(("version", "ver"), [("1.0-r0", "1.0"), ("32-r1", "32"), ("2", "2")])
def test_pkgver_drops_the_release(version: str, ver: str) -> None:
    assert pkgver(version) == ver


# --- the matrix against the sample tree ----------------------------------------------

NOW = at("2026-12-06 17:00")  # in the slot of 2026-12-04 00:00
SLOT = "20261204-0000"
DEMO_PHONE_NEEDS = (
    ("device-demo-phone", "3-r0"),
    ("firmware-demo", "20250101-r0"),
    ("foo-gui", "2.0.1-r0"),
    ("foo-utils", "0.9.1_git20250101-r0"),
    ("libfoo", "1.2.3-r1"),
    ("linux-demo", "6.12.8-r1"),
    ("postmarketos-base", "32-r1"),
    ("postmarketos-mkinitfs", "2.4.1-r0"),
    ("postmarketos-ui-demo", "1.0-r0"),
)


def read(tree: Path, *branches: str, arches: tuple[str, ...] = ARCHES) -> dict[str, BranchDesired]:
    reader = DesiredReader(("systemd",))
    return {
        name: reader.read_branch(BranchConfig(name=name, pmaports=tree, arches=arches))
        for name in branches or ("main",)
    }


def matrix(*devices: DeviceImages, branches: tuple[str, ...] = ("main",)) -> ImagesConfig:
    releases = {b: "edge" if b == branches[0] else b for b in branches}
    return ImagesConfig(
        devices=devices,
        branches=branches,
        development_branch=branches[0],
        releases=releases,
        source_file="c.yaml",
    )


def phone(**changes: object) -> DeviceImages:
    values: dict[str, object] = {"codename": "demo-phone", "uis": ("demo",), "line": 7}
    values.update(changes)
    return DeviceImages(**values)  # type: ignore[arg-type]


def test_the_sample_phone_gets_its_arch_ui_version_packages_and_needs(pmaports: Path) -> None:
    (image,), problems = desired_images(matrix(phone()), read(pmaports), NOW)
    assert problems == ()
    assert image.target == ImageTarget("main", "demo-phone", "demo", "", SLOT)
    assert (image.arch, image.release, image.ui_version) == ("aarch64", "edge", "1.0")
    assert (image.device_pretty, image.ui_pretty) == ("Demo Phone", "Demo")  # pkgdesc, allowlist
    assert image.packages == (
        "postmarketos-base",
        "device-demo-phone",
        "device-demo-phone-nonfree-firmware",
        "postmarketos-ui-demo",
    )
    assert image.file_prefix == "postmarketOS-edge-demo-1.0-demo-phone"
    assert image.needs == DEMO_PHONE_NEEDS
    # mkinitfs is a provide of postmarketos-mkinitfs; busybox is Alpine's.
    assert "mkinitfs" in image.tree_names and "busybox" not in image.tree_names
    assert image.repo.arch == "aarch64" and image.intent().repo == image.repo


def test_file_names_follow_bpo(pmaports: Path) -> None:
    (image,), _ = desired_images(matrix(phone(pretty_name="Phone")), read(pmaports), NOW)
    assert image.device_pretty == "Phone"
    stem = "20261206-1700-postmarketOS-edge-demo-1.0-demo-phone"
    assert image_stem("20261206-1700", image) == stem
    assert image_file_name("20261206-1700", image) == stem + ".img.xz"
    assert packages_file_name("20261206-1700", image) == stem + "-packages.txt"


def test_every_branch_has_its_release_and_devices_may_skip_branches(pmaports: Path) -> None:
    trees = read(pmaports, "main", "v25.12")
    both = matrix(phone(), branches=("main", "v25.12"))
    images, problems = desired_images(both, trees, NOW)
    assert problems == ()
    assert [(i.target.branch, i.release) for i in images] == [
        ("main", "edge"),
        ("v25.12", "v25.12"),
    ]
    only_stable = matrix(phone(branches=("v25.12",)), branches=("main", "v25.12"))
    assert [i.target.branch for i in desired_images(only_stable, trees, NOW)[0]] == ["v25.12"]
    disabled = matrix(phone(branches=()), branches=("main", "v25.12"))
    assert desired_images(disabled, trees, NOW) == ((), ())
    # A configured branch without a tree this pass (its fetch failed): nothing, no problem.
    assert len(desired_images(both, {"main": trees["main"]}, NOW)[0]) == 1


def test_nothing_is_desired_before_the_start(pmaports: Path) -> None:
    assert desired_images(matrix(phone()), read(pmaports), START - 1) == ((), ())


def test_the_order_is_branch_device_ui_kernel(pmaports: Path) -> None:
    device = pmaports / "device" / "main" / "device-demo-phone" / "APKBUILD"
    set_field(
        device,
        "subpackages",
        '"$pkgname-nonfree-firmware:nonfree_firmware $pkgname-kernel-a:kernel_a'
        ' $pkgname-kernel-b:kernel_b"',
    )
    ui = pmaports / "main" / "postmarketos-ui-console" / "APKBUILD"
    set_field(ui, "pkgver", "5")
    set_field(ui, "pkgrel", "2")
    devices = (phone(uis=("demo", "console"), kernels=("a", "b")),)
    images, problems = desired_images(matrix(*devices), read(pmaports), NOW)
    assert problems == ()
    assert [(i.target.ui, i.target.kernel, i.ui_version) for i in images] == [
        ("demo", "a", "1.0"),
        ("demo", "b", "1.0"),
        ("console", "a", "5"),
        ("console", "b", "5"),
    ]
    assert images[0].packages == (
        "postmarketos-base",
        "device-demo-phone",
        "device-demo-phone-kernel-a",
        "device-demo-phone-nonfree-firmware",
        "postmarketos-ui-demo",
    )
    assert images[2].needs == (
        ("device-demo-phone", "3-r0"),
        ("firmware-demo", "20250101-r0"),
        ("foo-utils", "0.9.1_git20250101-r0"),
        ("libfoo", "1.2.3-r1"),
        ("linux-demo", "6.12.8-r1"),
        ("postmarketos-base", "32-r1"),
        ("postmarketos-mkinitfs", "2.4.1-r0"),
        ("postmarketos-ui-console", "5-r2"),
    )


def test_per_branch_overrides_change_uis_and_kernels(pmaports: Path) -> None:
    overrides = {"v25.12": ImageOverride(uis=())}
    devices = matrix(phone(overrides=overrides), branches=("main", "v25.12"))
    images, problems = desired_images(devices, read(pmaports, "main", "v25.12"), NOW)
    assert [i.target.branch for i in images] == ["main"] and problems == ()


def test_a_dependency_whose_version_the_tree_does_not_fit_is_left_to_alpine(
    pmaports: Path,
) -> None:
    device = pmaports / "device" / "main" / "device-demo-phone" / "APKBUILD"
    set_field(device, "depends", '"postmarketos-base linux-demo>=7 mkinitfs"')
    (image,), _ = desired_images(matrix(phone()), read(pmaports), NOW)
    assert ("linux-demo", "6.12.8-r1") not in image.needs


# (what to change in the tree, the device entry, the problem's text)
def _no_change(tree: Path) -> None:
    pass


def _break_device(tree: Path) -> None:
    set_field(tree / "device" / "main" / "device-demo-phone" / "APKBUILD", "pkgver", "3a.b")


def _noarch_device(tree: Path) -> None:
    set_field(tree / "device" / "main" / "device-demo-phone" / "APKBUILD", "arch", '"noarch"')


def _two_arch_device(tree: Path) -> None:
    path = tree / "device" / "main" / "device-demo-phone" / "APKBUILD"
    set_field(path, "arch", '"aarch64 armv7"')


def _armv7_device(tree: Path) -> None:
    d = tree / "device" / "main" / "device-arm-phone"
    d.mkdir()
    (d / "APKBUILD").write_text(
        'pkgname=device-arm-phone\npkgver=1\npkgrel=0\narch="armv7"\nlicense="MIT"\n'
        'pkgdesc="Arm Phone"\ndepends="postmarketos-base"\n',
        encoding="utf-8",
    )


def _break_ui(tree: Path) -> None:
    set_field(tree / "main" / "postmarketos-ui-demo" / "APKBUILD", "pkgrel", "x")


PROBLEMS = [
    (_no_change, phone(codename="nope"), "no device-nope package for the branch's arches"),
    (_break_device, phone(), "device-demo-phone: its APKBUILD is broken: "),
    (_noarch_device, phone(), "device-demo-phone is noarch: an image needs a device package"),
    (_two_arch_device, phone(), "device-demo-phone is built for aarch64, armv7: an image needs"),
    (_no_change, phone(uis=("phosh",)), "no postmarketos-ui-phosh package in the tree"),
    (_break_ui, phone(), "postmarketos-ui-demo: its APKBUILD is broken: "),
    (
        _armv7_device,
        phone(codename="arm-phone"),
        "postmarketos-ui-demo is not built for armv7, the device's arch",
    ),
    (
        _no_change,
        phone(kernels=("mainline",)),
        "device-demo-phone has no subpackage device-demo-phone-kernel-mainline",
    ),
]


@pytest.mark.parametrize(("change", "device", "text"), PROBLEMS)
def test_what_the_tree_cannot_satisfy_is_a_problem_at_the_devices_line(
    pmaports: Path, change: object, device: DeviceImages, text: str
) -> None:
    change(pmaports)  # type: ignore[operator]
    images, problems = desired_images(matrix(device), read(pmaports), NOW)
    assert images == ()
    (problem,) = problems
    prefix = f"c.yaml:7: images.devices[0] ({device.codename}): branch main: "
    assert problem.startswith(prefix + text), problem


def test_a_device_arch_the_branch_does_not_build_is_a_problem(pmaports: Path) -> None:
    trees = read(pmaports, arches=("x86_64",))
    images, problems = desired_images(matrix(phone()), trees, NOW)
    assert images == ()
    assert problems == (
        "c.yaml:7: images.devices[0] (demo-phone): branch main: no device-demo-phone package"
        " for the branch's arches (x86_64): it is missing from the tree, or built for another"
        " arch",
    )


def test_problems_are_said_once_and_other_images_still_come(pmaports: Path) -> None:
    devices = (phone(uis=("demo", "phosh")), phone(codename="nope", line=12))
    trees: Mapping[str, BranchDesired] = read(pmaports)
    images, problems = desired_images(matrix(*devices), trees, NOW)
    assert [i.target.ui for i in images] == ["demo"]
    assert [p.split(": ")[0] for p in problems] == ["c.yaml:7", "c.yaml:12"]
