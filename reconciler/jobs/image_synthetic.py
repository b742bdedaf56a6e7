"""The synthetic image builder: runs inside an image job and makes a small, real
device image from the published repository, installing nothing.

`python -m reconciler.synthetic_image image.json artifacts` (the stable entry
point; the input is `jobs.images.ImageJob`, the final public key is
`final.rsa.pub` beside it). Like a strict `pmbootstrap install
--no-local-pkgs`, it uses only published binary packages:

1. it reads the final index of the image's branch and arch (a local path, or a
   URL fetched with a size limit) and checks its signature with the final public
   key (and key name, when given): an index signed by another key fails the job;
2. it resolves what installing the image's packages pulls from that index
   (`formats.installset`: apk's provider rules); a name the branch's tree
   provides that the index cannot satisfy fails the job with
   `cannot resolve X (needed by Y)`; names of the upstream distribution are
   listed as external;
3. into `artifacts/` it writes, named after the image (`<stem>` =
   `<date>-postmarketOS-<release>-<ui>-<uiversion>-<device>[_<kernel>]`):
   `<stem>-packages.txt` (one `name-version` per line, sorted), the image
   `<stem>.img.xz` (a header and the package list, padded to 512-byte sectors,
   compressed as real xz with a CRC64 check), and `<stem>.img.xz.sha256` and
   `.sha512` beside it in `sha256sum`'s format (`<hex>  <name>\\n`);
4. it ends its output with the checksum block of `formats.imagelog`:

       image files (sha256):
       sha256 <hex> <file name>

   one line per file of `artifacts/`, sorted by name: the daemon publishes only
   files whose bytes have these sha256 sums.

Exit 0 on success; 1 with an `ERROR: ...` line when the image cannot be made;
2 for a wrong command line.
"""

from __future__ import annotations

import hashlib
import lzma
import sys
from pathlib import Path

from reconciler.formats.apkindex import parse_index_text, read_index_archive, verify_index
from reconciler.formats.apkversion import VersionMode
from reconciler.formats.imagelog import sha256_block
from reconciler.formats.installset import InstallSet, resolve_install
from reconciler.formats.keys import SignatureError
from reconciler.fs.atomicfile import write_bytes
from reconciler.fs.keyfiles import load_public_key
from reconciler.jobs.images import KEY_FILE, ImageJob, ImageJobError
from reconciler.jobs.synthetic import MAX_INDEX_BYTES, BuildFailure, fetch
from reconciler.model.errors import ReconcilerError
from reconciler.model.images import IMAGE_SUFFIX, PACKAGES_SUFFIX

SECTOR = 512
USAGE = "usage: python -m reconciler.synthetic_image IMAGE_JSON ARTIFACTS_DIR"


class ImageFailure(ReconcilerError):
    """The image cannot be made; the message says why."""


def read_index(job: ImageJob) -> tuple[str, bytes]:
    """(where, bytes) of the job's final index."""
    if job.index_url:
        try:
            data = fetch(job.index_url, MAX_INDEX_BYTES)
        except BuildFailure as exc:
            raise ImageFailure(str(exc)) from exc
        if data is None:
            raise ImageFailure(f"index {job.index_url} does not exist: nothing is published yet")
        return job.index_url, data
    path = Path(job.index_path)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_INDEX_BYTES + 1)
    except FileNotFoundError as exc:
        raise ImageFailure(f"index {path} does not exist: nothing is published yet") from exc
    except OSError as exc:
        raise ImageFailure(f"index {path}: {exc}") from exc
    if len(data) > MAX_INDEX_BYTES:
        raise ImageFailure(f"index {path}: larger than {MAX_INDEX_BYTES} bytes")
    return str(path), data


def resolve(job: ImageJob, key_path: Path) -> InstallSet:
    """The image's packages, from the verified final index."""
    where, data = read_index(job)
    try:
        key_name = verify_index(data, load_public_key(key_path), where, job.key_name or None)
    except SignatureError as exc:
        raise ImageFailure(f"index {where} is not trusted: {exc}") from exc
    print(f"index {where}: signature by {key_name} OK")
    entries = parse_index_text(read_index_archive(data, where).text, where)
    mode = VersionMode.APK2 if job.apk_version == "2.14" else VersionMode.APK3
    found = resolve_install(entries, job.packages, job.tree_names, mode)
    print(f"installing {' '.join(job.packages)}: {len(found.packages)} package(s) from the index")
    if found.external:
        print(f"left to the upstream distribution: {' '.join(found.external)}")
    return found


def image_bytes(job: ImageJob, found: InstallSet) -> bytes:
    """The uncompressed image: a text header and the package list, in whole sectors."""
    t = job.target
    header = [
        "reconciler synthetic image 1",
        f"device: {t.device} ({job.device_pretty})",
        f"ui: {t.ui} {job.ui_version} ({job.ui_pretty})",
        f"kernel: {t.kernel or '(the only one)'}",
        f"release: {job.release} (branch {t.branch}, {job.arch})",
        f"slot: {t.slot}, date: {job.date_dir}",
        "installed:",
        *found.lines(),
        "external:",
        *found.external,
    ]
    text = ("\n".join(header) + "\n").encode()
    return text + b"\0" * (-len(text) % SECTOR)


def make_image(job: ImageJob, out: Path, key_path: Path) -> dict[str, str]:
    """Write the image's files into `out`; their name -> sha256."""
    found = resolve(job, key_path)
    stem = job.stem
    image_name = stem + IMAGE_SUFFIX
    image = lzma.compress(image_bytes(job, found), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64)
    files = {
        stem + PACKAGES_SUFFIX: "".join(f"{line}\n" for line in found.lines()).encode(),
        image_name: image,
        image_name + ".sha256": f"{hashlib.sha256(image).hexdigest()}  {image_name}\n".encode(),
        image_name + ".sha512": f"{hashlib.sha512(image).hexdigest()}  {image_name}\n".encode(),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        write_bytes(out / name, data)
        print(f"wrote {name} ({len(data)} bytes)")
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def run_image(job: ImageJob, out: Path, key_path: Path) -> int:
    """One image as its job's log tells it; the exit code of the job."""
    print(f"synthetic image {job.target} for {job.target.branch}/{job.arch}, try {job.attempt}")
    try:
        sums = make_image(job, out, key_path)
    except (ReconcilerError, OSError) as exc:
        print(f"ERROR: {exc}")
        return 1
    print(sha256_block(sums), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(USAGE, file=sys.stderr)
        return 2
    job_file = Path(args[0])
    try:
        job = ImageJob.from_json(job_file.read_bytes())
    except (ImageJobError, OSError) as exc:
        print(f"ERROR: {exc}")
        return 1
    return run_image(job, Path(args[1]), job_file.parent / KEY_FILE)


if __name__ == "__main__":
    sys.exit(main())
