"""The sample tree's packages: which apks each repository of it publishes, and a
check of a published repository against them.

Shared by the tests that check a whole published repository against the tree.
"""

from __future__ import annotations

import re
from pathlib import Path

from .apkcheck import apk_checksum, pkginfo, read_index, verifies

MAIN = {
    "libfoo": ("main/libfoo", ["libfoo", "libfoo-dev", "libfoo-doc"]),
    "foo-utils": ("main/foo-utils", ["foo-utils", "foo-utils-doc"]),
    "foo-gui": ("main/foo-gui", ["foo-gui"]),
    "postmarketos-base": (
        "main/postmarketos-base",
        ["postmarketos-base", "postmarketos-base-openrc"],
    ),
    "postmarketos-ui-demo": ("main/postmarketos-ui-demo", ["postmarketos-ui-demo"]),
    "postmarketos-ui-console": ("main/postmarketos-ui-console", ["postmarketos-ui-console"]),
    "crossdirect": ("main/crossdirect", ["crossdirect"]),
    "postmarketos-mkinitfs": (
        "main/postmarketos-mkinitfs",
        ["postmarketos-mkinitfs", "postmarketos-mkinitfs-doc"],
    ),
    "hello-x86": ("main/hello-x86", ["hello-x86"]),
    "gcc-aarch64": ("cross/gcc-aarch64", ["gcc-aarch64"]),
    "gcc-armv7": ("cross/gcc-armv7", ["gcc-armv7"]),
    "device-demo-phone": (
        "device/main/device-demo-phone",
        ["device-demo-phone", "device-demo-phone-nonfree-firmware"],
    ),
    "device-demo-laptop": ("device/main/device-demo-laptop", ["device-demo-laptop"]),
    "linux-demo": ("device/main/linux-demo", ["linux-demo"]),
    "firmware-demo": ("device/community/firmware-demo", ["firmware-demo"]),
}
SYSTEMD = {
    "systemd": ("extra-repos/systemd/systemd", ["systemd", "systemd-dev", "systemd-openrc"]),
    "foo-utils": ("extra-repos/systemd/foo-utils", ["foo-utils"]),
    "postmarketos-base-systemd": (
        "extra-repos/systemd/postmarketos-base-systemd",
        ["postmarketos-base-systemd"],
    ),
}
COMMON = [
    "libfoo",
    "foo-utils",
    "postmarketos-base",
    "crossdirect",
    "postmarketos-mkinitfs",
    "postmarketos-ui-console",
]
PER_ARCH = {
    "x86_64": [
        *COMMON,
        "foo-gui",
        "postmarketos-ui-demo",
        "hello-x86",
        "gcc-aarch64",
        "gcc-armv7",
        "device-demo-laptop",
    ],
    "aarch64": [
        *COMMON,
        "foo-gui",
        "postmarketos-ui-demo",
        "device-demo-phone",
        "linux-demo",
        "firmware-demo",
    ],
    "armv7": [*COMMON, "linux-demo"],
}


def version_of(apkbuild: Path) -> str:
    text = apkbuild.read_text()
    pkgver = re.search(r"^pkgver=(\S+)", text, re.M)
    pkgrel = re.search(r"^pkgrel=(\d+)", text, re.M)
    assert pkgver and pkgrel
    return f"{pkgver.group(1)}-r{pkgrel.group(1)}"


def expected_files(tree: Path, arch: str, splitrepo: str) -> set[str]:
    """Files the test expects in final, for the packages still in the tree."""
    table = SYSTEMD if splitrepo else MAIN
    names = list(SYSTEMD) if splitrepo else PER_ARCH[arch]
    files = set()
    for origin in names:
        if not (tree / table[origin][0]).exists():
            continue
        path, artifacts = table[origin]
        version = version_of(tree / path / "APKBUILD")
        files |= {f"{name}-{version}.apk" for name in artifacts}
    return files


def check_final(final_dir: Path, expected: set[str], final_pub: bytes, wip_pub: bytes) -> None:
    index = read_index(final_dir / "APKINDEX.tar.gz")
    assert index.signature_name == ".SIGN.RSA.reconciler-local.rsa.pub"
    assert verifies(index, final_pub), "final index must verify with the final key"
    assert not verifies(index, wip_pub), "final index must not verify with the WIP key"
    listed = {f"{e['P']}-{e['V']}.apk": e for e in index.entries}
    on_disk = {p.name for p in final_dir.glob("*.apk")}
    assert set(listed) == on_disk == expected
    arch = final_dir.name
    for name, entry in listed.items():
        path = final_dir / name
        assert int(entry["S"]) == path.stat().st_size
        assert entry["C"] == apk_checksum(path)
        assert entry["A"] == arch  # noarch packages are indexed under the repo's arch
        assert pkginfo(path)["pkgver"] == entry["V"]
    assert index.description is not None and "published=" in index.description
