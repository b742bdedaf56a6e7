"""The pmbootstrap image job (`builder.kind: pmbootstrap`): what it does, as a value and a script.

Owns what a real image build does, the way bpo's build_image job does it:

* pmbootstrap is configured for the device and its UI (`config device`,
  `config ui`, `config kernel <name>` when a kernel is named, `config
  extra_space 0`);
* its packages come only from this instance's final repositories:
  `mirrors.pmaports` is their directory or URL (pmbootstrap appends
  `<branch>/`, apk `<arch>/`), the WIP mirrors are unset, and the final
  public key is installed into `<work>/config_apk_keys/` under the name the
  index signature carries (`.SIGN.RSA.<name>`);
* per kernel: `pmbootstrap -y zap -p`, then `pmbootstrap install --no-sshd
  --no-local-pkgs --password <password>` (run under the silence watchdog, like
  builds), then what the device's flash method left is collected into
  `artifacts/`, each file named after the image (`<stem>` =
  `<date>-postmarketOS-<release>-<ui>-<uiversion>-<device>[_<kernel>]`):

  | pmbootstrap leaves | published as |
  |---|---|
  | `chroot_native/home/pmos/rootfs/<device>.img` | `<stem>.img.xz` |
  | or `<device>-root.img` + `<device>-boot.img` | `<stem>.img.xz` + `<stem>-bootpart.img.xz` |
  | `chroot_rootfs_<device>/boot/boot.img*` (Android) | `<stem>-boot.img.xz` |
  | `chroot_rootfs_<device>/boot/lk2nd.img` | `<stem>-lk2nd.img.xz` |
  | what `apk info -v` lists in the rootfs chroot | `<stem>-packages.txt` (sorted) |

  An install that leaves no image fails the job;
* every `.img` is compressed with `xz -0 -T0`;
* where the device asks for it (`android_recovery_zip`), per kernel once more:
  `zap -p`, `install ... --android-recovery-zip
  --recovery-install-partition=data`, and the zip the installer wrote
  (`chroot_*/var/lib/postmarketos-android-recovery-installer/pmos-<device>.zip`)
  becomes `<stem>-android-recovery.zip`;
* beside each published file but the package list, `.sha256` and `.sha512` in
  `sha256sum`'s format (`<hex>  <name>`), as the synthetic image job writes them;
* the log ends with the checksum block of `formats.imagelog` (printed by bash,
  byte for byte what `sha256_block` prints: the header, then `sha256 <hex>
  <name>` per file of `artifacts/`, sorted by name in the C locale), against
  which the daemon checks the files before it publishes them.

`zap` deletes the chroots and the locally built packages of pmbootstrap's work
directory: an image job needs a work directory of its own (builds.sr.ht gives
each job one).

Pure: `PmbImageJob` is the value (kept in the job directory as
`pmbootstrap-image.json`), `render_image_script` writes the bash script.
`jobs.images.image_script_for` makes both from an image job's input.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import asdict, dataclass
from typing import Any

from reconciler.formats.imagelog import HEADER, is_listed_name
from reconciler.model.errors import InputError
from reconciler.model.images import PACKAGES_SUFFIX, is_image_name
from reconciler.model.names import is_safe_arch, is_safe_branch

JOB_FILE = "pmbootstrap-image.json"
ARTIFACTS = "artifacts"
# Where pmbootstrap leaves an image (below its work directory).
ROOTFS_DIR = "chroot_native/home/pmos/rootfs"
RECOVERY_DIR = "var/lib/postmarketos-android-recovery-installer"
# The suffixes of what one install leaves, after the stem.
BOOTPART_SUFFIX = "-bootpart.img"
BOOT_SUFFIX = "-boot.img"
LK2ND_SUFFIX = "-lk2nd.img"
RECOVERY_SUFFIX = "-android-recovery.zip"
# A line of `apk info -v`: name-version (anything else pmbootstrap prints is not).
_PACKAGE_LINE = r"^[A-Za-z0-9_][A-Za-z0-9._+-]*-[0-9][A-Za-z0-9._+~-]*$"
_KEY_NAME = re.compile(r"[A-Za-z0-9_+@-][A-Za-z0-9._+@-]*")


class PmbImageError(InputError):
    """A pmbootstrap image job's value cannot make a safe script."""


@dataclass(frozen=True, slots=True)
class KernelImage:
    """One `pmbootstrap install`: the kernel ("" = the device's only one, left
    as configured) and the stem its files are named by."""

    kernel: str
    stem: str


@dataclass(frozen=True, slots=True)
class PmbImageJob:
    device: str
    ui: str
    branch: str
    arch: str
    images: tuple[KernelImage, ...]  # one install each, in this order
    password: str
    mirror: str  # mirrors.pmaports: the final repositories' dir or URL, ending "/"
    key_file: str  # the final public key (beside the script)
    key_name: str  # its file name in config_apk_keys: the index signature's
    android_recovery_zip: bool
    silence_timeout_seconds: float
    command: str  # the pmbootstrap executable
    aports: str = ""  # the pmaports checkout ("" = pmbootstrap's configured one)

    def check(self) -> None:
        """PmbImageError naming the first field that cannot reach the script safely."""
        names = [self.device, self.ui, *(i.kernel for i in self.images if i.kernel)]
        stems = [i.stem for i in self.images]
        checks = (
            ("device/ui/kernel", all(map(is_image_name, names))),
            ("branch", is_safe_branch(self.branch)),
            ("arch", is_safe_arch(self.arch)),
            ("images", bool(self.images) and len(set(stems)) == len(stems)),
            ("images.stem", all(is_listed_name(s + RECOVERY_SUFFIX + ".sha512") for s in stems)),
            ("images.kernel", "" not in [i.kernel for i in self.images] or len(self.images) == 1),
            ("password", _one_line(self.password)),
            ("mirror", _one_line(self.mirror) and self.mirror.endswith("/")),
            ("key_file", _one_line(self.key_file)),
            ("key_name", bool(_KEY_NAME.fullmatch(self.key_name))),
            ("command", _one_line(self.command)),
            ("aports", not self.aports or _one_line(self.aports)),
            ("silence_timeout_seconds", self.silence_timeout_seconds > 0),
        )
        for name, ok in checks:
            if not ok:
                raise PmbImageError(f"{JOB_FILE}: {name}: unusable value")

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> PmbImageJob:
        raw: dict[str, Any] = json.loads(data)
        images = tuple(KernelImage(**i) for i in raw.pop("images"))
        job = cls(**raw, images=images)
        job.check()
        return job


def _one_line(text: str) -> bool:
    return bool(text) and not any(ch in text for ch in "\n\r\0")


def render_image_script(
    job: PmbImageJob,
    python: str = sys.executable,
    command: str | None = None,
    aports: str | None = None,
) -> str:
    """The bash script, run in the job directory (`artifacts/` beside it);
    `command` and `aports` are shell words (default: the job's, quoted)."""
    job.check()
    q = shlex.quote
    pmb = command if command is not None else q(job.command)
    aports_word = aports if aports is not None else (q(job.aports) if job.aports else "")
    pmb_words = pmb + (f" --aports {aports_word}" if aports_word else "")
    timeout = f"{job.silence_timeout_seconds:g}"
    lines = _setup_lines(job, pmb_words)
    lines += [
        "# pmbootstrap install from binary packages only, under the silence watchdog.",
        f"pmb_install() {{ {q(python)} -m reconciler.jobs.pmbootstrap watch {timeout} --"
        f" {pmb_words} --details-to-stdout install --no-sshd --no-local-pkgs"
        f' --password {q(job.password)} "$@"; }}',
    ]
    for image in job.images:
        lines += _install_lines(job, image)
    lines += [
        "# Compress every image.",
        'for f in "$out"/*.img; do xz -0 -T0 -- "$f"; done',
    ]
    if job.android_recovery_zip:
        for image in job.images:
            lines += _recovery_lines(job, image)
    lines += _checksum_lines()
    return "\n".join(lines) + "\n"


def _setup_lines(job: PmbImageJob, pmb_words: str) -> list[str]:
    """Shell settings, pmbootstrap's configuration, its mirrors and the key."""
    q = shlex.quote
    key_target = f'"$work/config_apk_keys/"{q(job.key_name)}'
    return [
        "#!/bin/bash",
        f"# pmbootstrap image of {job.device} with {job.ui} for {job.branch}/{job.arch}",
        "set -euo pipefail",
        "export LC_ALL=C  # the checksum block lists files in byte order",
        f'pmb() {{ {pmb_words} "$@"; }}',
        'work="$(pmb -q config work)"',
        'echo "pmbootstrap work directory: $work"',
        f'out="$PWD/"{ARTIFACTS}',
        'mkdir -p "$out"',
        f'rootfs="$work/"{q(ROOTFS_DIR)}',
        f'boot="$work/chroot_rootfs_"{q(job.device)}"/boot"',
        "# take SOURCE TARGET: move a file pmbootstrap wrote (as root) into artifacts/.",
        'take() { mv -f -- "$1" "$2" 2>/dev/null || { sudo mv -f -- "$1" "$2"'
        ' && sudo chown "$(id -u):$(id -g)" "$2"; }; echo "collected ${2##*/}"; }',
        f"pmb config device {q(job.device)}",
        f"pmb config ui {q(job.ui)}",
        "pmb config extra_space 0",
        "# Packages only from this instance's final repositories: no WIP mirror.",
        f"pmb config mirrors.pmaports {q(job.mirror)}",
        "pmb config -r mirrors.pmaports_custom",
        "pmb config -r mirrors.systemd_custom",
        'mkdir -p "$work/config_apk_keys"',
        f"cp -- {q(job.key_file)} {key_target} || sudo cp -- {q(job.key_file)} {key_target}",
        f"echo {q(f'installed key {job.key_name} for mirrors.pmaports')}",
    ]


def _install_lines(job: PmbImageJob, image: KernelImage) -> list[str]:
    """One install and what it left, into artifacts/ under the image's stem."""
    q = shlex.quote
    stem, device = q(image.stem), q(job.device)
    out = f'"$out/"{stem}'
    lines = [f"# Image {image.stem}"]
    if image.kernel:
        lines.append(f"pmb config kernel {q(image.kernel)}")
    lines += [
        "pmb -q -y zap -p",
        "pmb_install",
        f'if [ -e "$rootfs/"{device}.img ]; then',
        f'    take "$rootfs/"{device}.img {out}.img',
        f'elif [ -e "$rootfs/"{device}-root.img ]; then',
        "    # Boot and root partitions in two files; -bootpart, not to be taken for boot.img.",
        f'    take "$rootfs/"{device}-root.img {out}.img',
        f'    take "$rootfs/"{device}-boot.img {out}{BOOTPART_SUFFIX}',
        "else",
        '    echo "ERROR: pmbootstrap install left no image in $rootfs"',
        "    exit 1",
        "fi",
        "# Android: the boot.img inside the image, and lk2nd, as files of their own.",
        'for f in "$boot"/boot.img*; do',
        f'    if [ -e "$f" ]; then take "$f" {out}{BOOT_SUFFIX}; fi',
        "done",
        f'if [ -e "$boot/lk2nd.img" ]; then take "$boot/lk2nd.img" {out}{LK2ND_SUFFIX}; fi',
        "# What the image installs, from its rootfs chroot.",
        "pmb -q chroot -r -- apk info -v > .installed",
        f"{{ grep -E {q(_PACKAGE_LINE)} .installed || true; }} | sort -u > {out}{PACKAGES_SUFFIX}",
        "rm -f .installed",
        f"if [ ! -s {out}{PACKAGES_SUFFIX} ]; then",
        '    echo "ERROR: apk info -v listed no installed package"',
        "    exit 1",
        "fi",
    ]
    return lines


def _recovery_lines(job: PmbImageJob, image: KernelImage) -> list[str]:
    """The Android recovery zip of one kernel."""
    q = shlex.quote
    found = f'"$work"/chroot_*/{RECOVERY_DIR}/pmos-{q(job.device)}.zip'
    lines = [f"# Android recovery zip {image.stem}"]
    if image.kernel:
        lines.append(f"pmb config kernel {q(image.kernel)}")
    lines += [
        "pmb -q -y zap -p",
        "pmb_install --android-recovery-zip --recovery-install-partition=data",
        'zip=""',
        f'for f in {found}; do if [ -e "$f" ]; then zip="$f"; fi; done',
        'if [ -z "$zip" ]; then echo "ERROR: the installer wrote no recovery zip"; exit 1; fi',
        f'take "$zip" "$out/"{q(image.stem)}{RECOVERY_SUFFIX}',
    ]
    return lines


def _checksum_lines() -> list[str]:
    """`.sha256`/`.sha512` beside each file but the package lists, then the block."""
    return [
        "# Checksums beside each file, then every file's sha256 as the log's last block.",
        'cd "$out"',
        "for f in *; do",
        f'    case "$f" in *.sha256 | *.sha512 | *{PACKAGES_SUFFIX}) continue ;; esac',
        '    sha256sum -- "$f" > "$f.sha256"',
        '    sha512sum -- "$f" > "$f.sha512"',
        "done",
        "ls -l",
        f"echo {shlex.quote(HEADER)}",
        "for f in *; do",
        '    sum="$(sha256sum -- "$f")"',
        '    printf \'sha256 %s %s\\n\' "${sum%% *}" "$f"',
        "done",
    ]
