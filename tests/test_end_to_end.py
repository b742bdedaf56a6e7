"""The whole loop, end to end, on the sample tree with the local job service.

What was published is checked with this file's own readers (tests/apkcheck.py):
gzip split by zlib, tar read by tarfile, signatures checked with cryptography.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from reconciler.loop import Daemon

from .apkcheck import apk_checksum, pkginfo, read_index, verifies
from .conftest import ConfigFactory, set_field

MAIN = {
    "libfoo": ("main/libfoo", ["libfoo", "libfoo-dev", "libfoo-doc"]),
    "foo-utils": ("main/foo-utils", ["foo-utils", "foo-utils-doc"]),
    "foo-gui": ("main/foo-gui", ["foo-gui"]),
    "postmarketos-base": (
        "main/postmarketos-base",
        ["postmarketos-base", "postmarketos-base-openrc"],
    ),
    "postmarketos-ui-demo": ("main/postmarketos-ui-demo", ["postmarketos-ui-demo"]),
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
COMMON = ["libfoo", "foo-utils", "postmarketos-base", "crossdirect", "postmarketos-mkinitfs"]
PER_ARCH = {
    "x86_64": [*COMMON, "foo-gui", "postmarketos-ui-demo", "hello-x86", "gcc-aarch64", "gcc-armv7"],
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


def test_sample_tree_publishes_then_exactly_the_next_change(
    make_config: ConfigFactory, pmaports: Path
) -> None:
    config = make_config()
    daemon = Daemon(config)
    result = daemon.converge(max_seconds=120)
    assert result.all_published, result.plan.repos

    final_pub = config.keys.final_public.read_bytes()
    wip_pub = config.keys.wip_public.read_bytes()
    assert final_pub != wip_pub
    for arch in ("x86_64", "aarch64", "armv7"):
        for splitrepo, prefix in (("", ""), ("systemd", "extra-repos/systemd/")):
            final_dir = config.paths.final_repo / f"{prefix}main/{arch}"
            check_final(final_dir, expected_files(pmaports, arch, splitrepo), final_pub, wip_pub)
            wip_index = config.paths.wip_repo / f"{prefix}main/{arch}" / "APKINDEX.tar.gz"
            assert verifies(read_index(wip_index), wip_pub), "WIP index verifies with the WIP key"
    assert (config.paths.html_out / "index.html").is_file()

    # A pkgrel bump, a deleted package and a dropped trigger file.
    before = {p: p.stat().st_mtime_ns for p in config.paths.final_repo.rglob("*.apk")}
    set_field(pmaports / "main/foo-gui/APKBUILD", "pkgrel", "1")
    shutil.rmtree(pmaports / "main/hello-x86")
    trigger = config.paths.triggers / ".push.json.tmp"
    trigger.write_text('{"type": "push", "branch": "main"}')
    trigger.rename(config.paths.triggers / "push.json")
    result = daemon.converge(max_seconds=120)
    assert result.all_published, result.plan.repos
    for arch in ("x86_64", "aarch64", "armv7"):
        for splitrepo, prefix in (("", ""), ("systemd", "extra-repos/systemd/")):
            final_dir = config.paths.final_repo / f"{prefix}main/{arch}"
            check_final(final_dir, expected_files(pmaports, arch, splitrepo), final_pub, wip_pub)
    after = {p: p.stat().st_mtime_ns for p in config.paths.final_repo.rglob("*.apk")}
    changed = {p.name for p in after if before.get(p) != after[p]}
    removed = {p.name for p in before if p not in after}
    assert changed == {"foo-gui-2.0.1-r1.apk"}, "only the bumped package is new"
    assert removed == {"foo-gui-2.0.1-r0.apk", "hello-x86-1.0.0-r0.apk"}
    assert (config.paths.triggers / "processed" / "push.json").is_file()
