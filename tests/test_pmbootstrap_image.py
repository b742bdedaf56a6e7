"""The pmbootstrap image script, run for real by bash with a fake `pmbootstrap` first on PATH.

The fake records every call and keeps what `config device`/`config kernel` set;
`install` refuses to run without the final key installed under its signature
name, then leaves, per test case, what each flash method leaves where
pmbootstrap leaves it (`FAKE_LEAVES`: a combined image, split root and boot
images, an Android boot.img, lk2nd.img; with `--android-recovery-zip`, the
recovery installer's zip); `zap` removes the chroots; `chroot -r -- apk info -v`
prints the installed packages (unsorted, with a line that is not one). The test
checks what the job publishes, that the daemon's own check accepts it, and what
pmbootstrap was asked.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from reconciler.config.builder import BuilderConfig
from reconciler.execute.images import ImageStore
from reconciler.formats.imagelog import parse_sha256_lines, sha256_block
from reconciler.jobs import pmbootstrap_image
from reconciler.jobs.images import (
    JOB_FILE,
    KEY_FILE,
    ImageJob,
    ImageJobError,
    image_job,
    image_script,
    image_script_for,
    pmbootstrap_image_job,
)
from reconciler.jobs.pmbootstrap_image import KernelImage, PmbImageError, PmbImageJob
from reconciler.model.images import DesiredImage, ImageTarget, file_prefix
from reconciler.model.jobs import JobObservation, JobStatus

ROOT = Path(__file__).resolve().parent.parent
SLOT = "20270101-0000"
DATE = "20270102-0300"
KEY_NAME = "test-final-5f6b1a6f.rsa.pub"
PUBLIC_KEY = b"-----BEGIN PUBLIC KEY-----\nFINAL\n-----END PUBLIC KEY-----\n"
STEM = f"{DATE}-postmarketOS-edge-phosh-22.1-demo-phone"

FAKE_PMBOOTSTRAP = r"""#!/bin/bash
# A fake pmbootstrap: records its calls; install leaves what $FAKE_LEAVES says.
set -eu
printf '%s\n' "$(printf '%q ' "$@")" >> "$FAKE_CALLS"
args=" $* "
w="$FAKE_WORK"
if [[ $args == *" config work "* ]]; then echo "$w"; exit 0; fi
if [[ $args == *" config device "* ]]; then echo "${@: -1}" > "$w/.device"; exit 0; fi
if [[ $args == *" config kernel "* ]]; then echo "${@: -1}" > "$w/.kernel"; exit 0; fi
if [[ $args == *" config "* ]]; then exit 0; fi
device="$(cat "$w/.device")"
kernel="$(cat "$w/.kernel" 2>/dev/null || true)"
if [[ $args == *" zap "* ]]; then rm -rf "$w"/chroot_*; exit 0; fi
if [[ $args == *" install "* ]]; then
    if [ ! -f "$w/config_apk_keys/$FAKE_KEY_NAME" ]; then
        echo "ERROR: no key $FAKE_KEY_NAME"; exit 1
    fi
    echo "installing $device (kernel: ${kernel:-default})"
    if [[ $args == *" --android-recovery-zip "* ]]; then
        zips="$w/chroot_buildroot_aarch64/var/lib/postmarketos-android-recovery-installer"
        mkdir -p "$zips"
        echo "recovery zip of $device $kernel" > "$zips/pmos-$device.zip"
        exit 0
    fi
    rootfs="$w/chroot_native/home/pmos/rootfs"
    boot="$w/chroot_rootfs_$device/boot"
    mkdir -p "$rootfs" "$boot"
    image() {
        { echo "$1 of $device, kernel ${kernel:-default}"; head -c 65536 /dev/zero; } > "$2"
    }
    for leaf in $FAKE_LEAVES; do
        case $leaf in
            combined) image "image" "$rootfs/$device.img" ;;
            split)
                image "root" "$rootfs/$device-root.img"
                image "boot" "$rootfs/$device-boot.img" ;;
            bootimg) image "android boot" "$boot/boot.img-qcom" ;;
            lk2nd) image "lk2nd" "$boot/lk2nd.img" ;;
        esac
    done
    exit 0
fi
if [[ $args == *" chroot "* ]]; then
    echo "postmarketos-ui-phosh-22.1-r0"
    echo "device-$device-1-r3"
    [ -z "$kernel" ] || echo "device-$device-kernel-$kernel-6.12.1-r0"
    echo "WARNING: this line is not a package"
    echo "postmarketos-base-35-r0"
    exit 0
fi
echo "fake pmbootstrap: unexpected call: $*"; exit 1
"""


@dataclass
class Run:
    code: int
    log: str
    calls: list[str]
    artifacts: dict[str, bytes]
    job_dir: Path
    work: Path

    def installs(self) -> list[str]:
        return [c for c in self.calls if " install " in f" {c}"]

    def calls_of(self, word: str) -> list[str]:
        return [c for c in self.calls if f" {word} " in f" {c} "]


def desired(kernel: str = "") -> DesiredImage:
    target = ImageTarget("main", "demo-phone", "phosh", kernel, SLOT)
    prefix = file_prefix("edge", "phosh", "22.1", "demo-phone")
    packages = ("postmarketos-base", "device-demo-phone", "postmarketos-ui-phosh")
    return DesiredImage(target, "aarch64", "edge", "Demo Phone", "Phosh", "22.1", packages, prefix)


def the_job(
    tmp_path: Path, *, kernel: str = "", index_url: str = "", password: str = "147147"
) -> ImageJob:
    index = tmp_path / "repo" / "final" / "main" / "aarch64" / "APKINDEX.tar.gz"
    return image_job(
        desired(kernel),
        1,
        DATE,
        str(index),
        index_url=index_url,
        key_name=KEY_NAME,
        password=password,
    )


def run_script(tmp_path: Path, script: str, files: dict[str, bytes], leaves: str) -> Run:
    bindir, work, job_dir = tmp_path / "bin", tmp_path / "work", tmp_path / "job"
    for directory in (bindir, work, job_dir / "artifacts"):
        directory.mkdir(parents=True, exist_ok=True)
    fake = bindir / "pmbootstrap"
    fake.write_text(FAKE_PMBOOTSTRAP)
    fake.chmod(0o755)
    (job_dir / "script.sh").write_text(script)
    for name, data in files.items():
        (job_dir / name).write_bytes(data)
    env = {
        **os.environ,
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "FAKE_CALLS": str(tmp_path / "calls"),
        "FAKE_WORK": str(work),
        "FAKE_LEAVES": leaves,
        "FAKE_KEY_NAME": KEY_NAME,
    }
    proc = subprocess.run(
        ["bash", "script.sh"],
        cwd=job_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=60,
        check=False,
    )
    calls = (tmp_path / "calls").read_text().splitlines()
    artifacts = {p.name: p.read_bytes() for p in sorted((job_dir / "artifacts").iterdir())}
    return Run(proc.returncode, proc.stdout.decode(), calls, artifacts, job_dir, work)


def run_image(
    tmp_path: Path,
    leaves: str,
    *,
    recovery: bool = False,
    job: ImageJob | None = None,
) -> Run:
    job = job or the_job(tmp_path)
    builder = BuilderConfig(kind="pmbootstrap")
    script, files = image_script_for(
        builder, job, PUBLIC_KEY, android_recovery_zip=recovery, pmaports="/srv/pmaports"
    )
    return run_script(tmp_path, script, files, leaves)


def with_sums(*names: str) -> list[str]:
    return sorted(n + s for n in names for s in ("", ".sha256", ".sha512"))


def check_files(run: Run) -> None:
    """xz files are valid, each checksum file matches its file, and the log's last
    block is exactly sha256_block of every file."""
    assert run.code == 0, run.log
    for name, data in run.artifacts.items():
        if name.endswith(".xz"):
            subprocess.run(["xz", "-t", str(run.job_dir / "artifacts" / name)], check=True)
        for suffix, algorithm in ((".sha256", hashlib.sha256), (".sha512", hashlib.sha512)):
            if name.endswith(suffix):
                target = name.removesuffix(suffix)
                digest = algorithm(run.artifacts[target]).hexdigest()
                assert data == f"{digest}  {target}\n".encode(), name
    sums = {name: hashlib.sha256(data).hexdigest() for name, data in run.artifacts.items()}
    assert parse_sha256_lines(run.log) == sums
    assert run.log.endswith(sha256_block(sums)), run.log[-2000:]


def unxz(run: Run, name: str) -> bytes:
    path = run.job_dir / "artifacts" / name
    return subprocess.run(["xz", "-dc", str(path)], capture_output=True, check=True).stdout


def test_a_combined_image_is_installed_from_the_final_repositories_only(tmp_path: Path) -> None:
    run = run_image(tmp_path, "combined")
    check_files(run)
    assert sorted(run.artifacts) == sorted([*with_sums(f"{STEM}.img.xz"), f"{STEM}-packages.txt"])
    assert unxz(run, f"{STEM}.img.xz").startswith(b"image of demo-phone, kernel default\n")
    # The package list: what apk info -v printed, sorted, without the noise.
    assert run.artifacts[f"{STEM}-packages.txt"] == (
        b"device-demo-phone-1-r3\npostmarketos-base-35-r0\npostmarketos-ui-phosh-22.1-r0\n"
    )
    # pmbootstrap was configured for the device and UI, with no kernel named.
    aports = "--aports /srv/pmaports"
    for call in ("config device demo-phone", "config ui phosh", "config extra_space 0"):
        assert f"{aports} {call} " in run.calls
    assert not run.calls_of("kernel")
    # Mirrors: this instance's final repositories, no WIP; the final key under its name.
    final = tmp_path / "repo" / "final"
    assert f"{aports} config mirrors.pmaports {final}/ " in run.calls
    assert f"{aports} config -r mirrors.pmaports_custom " in run.calls
    assert f"{aports} config -r mirrors.systemd_custom " in run.calls
    assert not [c for c in run.calls if "mirrors.pmaports_custom /" in c]
    assert (run.work / "config_apk_keys" / KEY_NAME).read_bytes() == PUBLIC_KEY
    assert f"installed key {KEY_NAME} for mirrors.pmaports" in run.log
    # One install, from binary packages only, with the password, after zap -p.
    (install,) = run.installs()
    assert install == (
        f"{aports} --details-to-stdout install --no-sshd --no-local-pkgs --password 147147 "
    )
    assert run.calls.index(f"{aports} -q -y zap -p ") < run.calls.index(install)
    assert run.calls.index(f"{aports} config ui phosh ") < run.calls.index(install)
    assert f"{aports} -q chroot -r -- apk info -v " in run.calls


@pytest.mark.parametrize(
    ("leaves", "images"),
    [
        ("split", ["", "-bootpart"]),
        ("combined bootimg", ["", "-boot"]),
        ("combined lk2nd", ["", "-lk2nd"]),
        ("combined bootimg lk2nd", ["", "-boot", "-lk2nd"]),
        ("split bootimg", ["", "-bootpart", "-boot"]),
    ],
)
def test_each_flash_methods_files_are_collected_and_compressed(
    tmp_path: Path, leaves: str, images: list[str]
) -> None:
    run = run_image(tmp_path, leaves)
    check_files(run)
    expected = [*with_sums(*(f"{STEM}{suffix}.img.xz" for suffix in images))]
    assert sorted(run.artifacts) == sorted([*expected, f"{STEM}-packages.txt"])
    first = {
        "": b"root" if "split" in leaves else b"image",
        "-bootpart": b"boot",
        "-boot": b"android boot",
        "-lk2nd": b"lk2nd",
    }
    for suffix in images:
        assert unxz(run, f"{STEM}{suffix}.img.xz").startswith(first[suffix] + b" of demo-phone")
    assert len(run.installs()) == 1


def test_an_android_recovery_zip_where_configured(tmp_path: Path) -> None:
    run = run_image(tmp_path, "combined bootimg", recovery=True)
    check_files(run)
    assert sorted(run.artifacts) == sorted(
        [
            *with_sums(f"{STEM}.img.xz", f"{STEM}-boot.img.xz", f"{STEM}-android-recovery.zip"),
            f"{STEM}-packages.txt",
        ]
    )
    assert run.artifacts[f"{STEM}-android-recovery.zip"] == b"recovery zip of demo-phone \n"
    image, recovery = run.installs()
    assert "--android-recovery-zip" not in image
    assert recovery.endswith(
        " install --no-sshd --no-local-pkgs --password 147147"
        " --android-recovery-zip --recovery-install-partition=data "
    )
    # zap -p before each install; the images were compressed before the zip was made.
    zaps = [n for n, c in enumerate(run.calls) if " zap -p " in f" {c}"]
    installs = [run.calls.index(c) for c in (image, recovery)]
    assert len(zaps) == 2 and zaps[0] < installs[0] < zaps[1] < installs[1]


def test_a_named_kernel_is_configured_and_in_the_file_names(tmp_path: Path) -> None:
    job = the_job(tmp_path, kernel="mainline")
    run = run_image(tmp_path, "combined", job=job, recovery=True)
    check_files(run)
    stem = f"{STEM}_mainline"
    assert job.stem == stem
    assert sorted(run.artifacts) == sorted(
        [*with_sums(f"{stem}.img.xz", f"{stem}-android-recovery.zip"), f"{stem}-packages.txt"]
    )
    assert unxz(run, f"{stem}.img.xz").startswith(b"image of demo-phone, kernel mainline\n")
    assert b"device-demo-phone-kernel-mainline-6.12.1-r0\n" in run.artifacts[f"{stem}-packages.txt"]
    kernel_calls = [n for n, c in enumerate(run.calls) if "config kernel mainline" in c]
    installs = [run.calls.index(c) for c in run.installs()]
    assert len(kernel_calls) == 2 and kernel_calls[0] < installs[0] < kernel_calls[1] < installs[1]


def test_one_install_per_kernel(tmp_path: Path) -> None:
    """A job value may carry several kernels, as bpo's job does: one install each,
    each after its `config kernel` and a zap, each image under its own stem."""
    job = pmbootstrap_image_job(the_job(tmp_path), BuilderConfig(kind="pmbootstrap"))
    stems = {k: f"{STEM}_{k}" for k in ("lts", "virt")}
    two = replace(job, images=tuple(KernelImage(k, s) for k, s in stems.items()), aports="")
    run = run_script(
        tmp_path,
        pmbootstrap_image.render_image_script(two),
        {KEY_FILE: PUBLIC_KEY},
        "split",
    )
    check_files(run)
    installs = run.installs()
    assert len(installs) == 2
    assert installs[0] == "--details-to-stdout install --no-sshd --no-local-pkgs --password 147147 "
    order = [c for c in run.calls if "config kernel" in c or " install " in f" {c}"]
    assert order == ["config kernel lts ", installs[0], "config kernel virt ", installs[1]]
    for kernel, stem in stems.items():
        for suffix, first in (("", b"root"), ("-bootpart", b"boot")):
            content = unxz(run, f"{stem}{suffix}.img.xz")
            assert content.startswith(first + f" of demo-phone, kernel {kernel}\n".encode())
        assert f"-kernel-{kernel}-".encode() in run.artifacts[f"{stem}-packages.txt"]
    assert len(run.artifacts) == 2 * (2 * 3 + 1)


def test_an_install_that_leaves_no_image_fails_and_lists_nothing(tmp_path: Path) -> None:
    run = run_image(tmp_path, "bootimg")
    assert run.code != 0
    assert "ERROR: pmbootstrap install left no image in " in run.log
    assert "image files (sha256):" not in run.log


def test_no_recovery_zip_where_one_is_configured_fails(tmp_path: Path) -> None:
    script, files = image_script_for(
        BuilderConfig(kind="pmbootstrap"), the_job(tmp_path), PUBLIC_KEY, android_recovery_zip=True
    )
    script = script.replace("--android-recovery-zip --recovery", "--recovery")  # leaves no zip
    run = run_script(tmp_path, script, files, "combined")
    assert run.code != 0 and "ERROR: the installer wrote no recovery zip" in run.log


def test_what_the_job_leaves_is_what_the_daemon_publishes(tmp_path: Path) -> None:
    run = run_image(tmp_path, "split bootimg lk2nd", recovery=True)
    check_files(run)
    log = tmp_path / "job.log"
    log.write_text(run.log)
    job = the_job(tmp_path)
    observation = JobObservation(
        job.key,
        JobStatus.SUCCESS,
        1.0,
        2.0,
        log_path=str(log),
        artifacts_dir=str(run.job_dir / "artifacts"),
    )
    store = ImageStore(tmp_path / "images", tmp_path / "site-logs")
    message = store.publish(observation, desired())
    assert message.startswith(f"published {len(run.artifacts)} file(s)")
    published = tmp_path / "images" / "edge" / "demo-phone" / "phosh" / DATE
    assert sorted(p.name for p in published.iterdir() if p.name != ".job") == sorted(run.artifacts)


def test_a_remote_index_gives_a_url_mirror(tmp_path: Path) -> None:
    url = "https://build.example.org/repo/final/main/aarch64/APKINDEX.tar.gz"
    run = run_image(tmp_path, "combined", job=the_job(tmp_path, index_url=url))
    check_files(run)
    mirror = "config mirrors.pmaports https://build.example.org/repo/final/ "
    assert f"--aports /srv/pmaports {mirror}" in run.calls
    assert str(tmp_path / "repo") not in "\n".join(run.calls)


def test_values_reach_pmbootstrap_quoted(tmp_path: Path) -> None:
    password = "a b'c\"$(touch pwned)`id`"
    run = run_image(tmp_path, "combined", job=the_job(tmp_path, password=password))
    check_files(run)
    (install,) = run.installs()
    assert install.endswith(f" --password {_q(password)} ")
    assert not (run.job_dir / "pwned").exists()


def _q(value: str) -> str:
    """How the fake's `printf %q` writes one argument."""
    done = subprocess.run(
        ["bash", "-c", 'printf "%q" "$1"', "_", value], capture_output=True, check=True
    )
    return done.stdout.decode()


def test_the_builder_kind_picks_the_script_and_its_files(tmp_path: Path) -> None:
    job = the_job(tmp_path)
    synthetic = image_script_for(BuilderConfig(), job, PUBLIC_KEY, python="python3")
    assert synthetic == image_script(job, PUBLIC_KEY, "python3")
    script, files = image_script_for(
        BuilderConfig(kind="pmbootstrap", pmbootstrap="/opt/pmb/pmbootstrap.py"),
        job,
        PUBLIC_KEY,
        python="python3",
    )
    assert sorted(files) == sorted([JOB_FILE, KEY_FILE, pmbootstrap_image.JOB_FILE])
    assert files[KEY_FILE] == PUBLIC_KEY
    value = PmbImageJob.from_json(files[pmbootstrap_image.JOB_FILE])
    assert value.images == (KernelImage("", STEM),)
    assert (value.mirror, value.key_name, value.key_file) == (
        f"{tmp_path}/repo/final/",
        KEY_NAME,
        KEY_FILE,
    )
    assert 'pmb() { /opt/pmb/pmbootstrap.py "$@"; }' in script
    assert "python3 -m reconciler.jobs.pmbootstrap watch 900 --" in script
    assert "reconciler.synthetic_image" not in script


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"key_name": "../x"}, "key_name"),
        ({"key_name": ".hidden"}, "key_name"),
        ({"password": "two\nlines"}, "password"),
        ({"mirror": "/no/slash"}, "mirror"),
        ({"device": "Bad_Device"}, "device/ui/kernel"),
        ({"images": ()}, "images"),
        ({"images": (KernelImage("a b", STEM),)}, "device/ui/kernel"),
        ({"images": (KernelImage("", "x/y"),)}, "images.stem"),
        ({"images": (KernelImage("", STEM), KernelImage("k", STEM))}, "images"),
        ({"aports": "a\nb"}, "aports"),
    ],
)
def test_an_unsafe_value_makes_no_script(
    tmp_path: Path, change: dict[str, object], field: str
) -> None:
    job = pmbootstrap_image_job(the_job(tmp_path), BuilderConfig(kind="pmbootstrap"))
    bad = replace(job, **change)  # type: ignore[arg-type]
    with pytest.raises(PmbImageError, match=f"{pmbootstrap_image.JOB_FILE}: {field}: "):
        pmbootstrap_image.render_image_script(bad)
    with pytest.raises(PmbImageError):
        PmbImageJob.from_json(bad.to_json())


def test_an_image_job_without_a_key_name_has_no_pmbootstrap_script(tmp_path: Path) -> None:
    job = replace(the_job(tmp_path), key_name="")
    with pytest.raises(ImageJobError, match="key_name"):
        image_script_for(BuilderConfig(kind="pmbootstrap"), job, PUBLIC_KEY)
    assert image_script_for(BuilderConfig(), job, PUBLIC_KEY)[0]  # the synthetic one needs none


def test_the_script_quotes_its_words() -> None:
    job = PmbImageJob(
        device="demo-phone",
        ui="phosh",
        branch="main",
        arch="aarch64",
        images=(KernelImage("", STEM),),
        password="147147",
        mirror="/srv/my repos/final/",
        key_file=KEY_FILE,
        key_name=KEY_NAME,
        android_recovery_zip=False,
        silence_timeout_seconds=60,
        command="pmbootstrap",
        aports="/srv/pm aports",
    )
    script = pmbootstrap_image.render_image_script(job)
    assert f"pmb config mirrors.pmaports {shlex.quote(job.mirror)}" in script
    assert "pmbootstrap --aports '/srv/pm aports'" in script
    assert PmbImageJob.from_json(job.to_json()) == job
