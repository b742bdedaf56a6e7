"""Build manifests for builds.sr.ht: the local job scripts, wrapped for a remote guest.

Pure apart from reading the public keys a build job is given and the uploader's
source an image job is given. A job's identity travels as tags (one per JobKey
field, none containing '/', which sourcehut joins tags with) and in its note.
Only the sign job's manifest names the final-key secret; build jobs reach the
WIP and final repositories at their public URLs. A build job returns one tarball
of its apks, which `extract_apks` unpacks safely. A pmbootstrap build clones
pmbootstrap and pmaports and runs the same script as a local one, with public
URLs and guest paths. With a callback configured, a last task POSTs to the
daemon with a token read from a secret file (never echoed: the manifest is
public), and a failure trigger pokes the unauthenticated look-now URL.

An image job keeps no artifact on builds.sr.ht (at most 8 of at most 1 GiB
each, which an image set exceeds): it reads the final index at its public URL
(a pmbootstrap image also uses the final repositories there as its mirror),
and its `upload` task runs `uploader` (shipped as `upload.py`) to send every
file of `artifacts/` to the receiver's `upload_url` in chunks, authenticated
with the job-callback token from the callback secret's file (tracing off, never
shown), then prints the checksum block the daemon checks the uploads against.
"""

from __future__ import annotations

import base64
import json
import shlex
import shutil
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from reconciler.config.sourcehut import UPLOAD_CHUNK_BYTES
from reconciler.jobs import images, pmbootstrap_build, pmbootstrap_image
from reconciler.jobs.scripts import remote_sign_script, synthetic_script
from reconciler.jobs.service import JobServiceError, JobSpec
from reconciler.jobs.sourcehut import uploader
from reconciler.model.jobs import JobKey, JobKind
from reconciler.model.layout import INDEX_NAME
from reconciler.model.names import is_safe_name, split_staging

BUILD_ARTIFACT = "out/apks.tar.gz"  # one tarball of every apk (sourcehut keeps at most 8)
SIGN_ARTIFACT = f"out/{INDEX_NAME}"
GUEST_PYTHON = "python3"
MAX_APKS = 1000  # members of a build's apk tarball
UPLOADER_FILE = "upload.py"  # the uploader's source, beside an image job's script
_EOF = "RECONCILER_EOF"


@dataclass(frozen=True, slots=True)
class ManifestSettings:
    image: str
    packages: tuple[str, ...]
    reconciler_source: str  # git URL, cloned by sourcehut into ~/<its basename>
    final_key_secret: str  # UUID of the secret file with the final private key
    final_key_path: str  # where that secret file lands in the guest ("~/..." allowed)
    final_key_name: str  # the .SIGN.RSA.<name> of the final signature
    url_roots: tuple[tuple[Path, str], ...]  # local repository root -> its public URL
    symlink_url: str  # public URL of the symlink repository (unsigned indexes)
    tag: str = "reconciler"
    # pmbootstrap builds: where the guest clones pmbootstrap (branch per pmaports
    # branch, others master) and each branch's pmaports from.
    pmbootstrap_git: str = ""
    pmbootstrap_branches: tuple[tuple[str, str], ...] = ()
    pmaports_git: tuple[tuple[str, str], ...] = ()  # branch -> git URL
    # The job-end callback: URL, the secret (UUID) holding its token and where the
    # token file lands in the guest; the failure webhook's look-now URL.
    callback_url: str = ""
    callback_secret: str = ""
    callback_token_path: str = "~/.reconciler-callback-token"
    look_now_url: str = ""
    # Image jobs upload their files to the receiver (`<upload_url>/<job id>/<name>`),
    # with the callback secret's token, in chunks of at most `upload_chunk_bytes`;
    # a failed request is tried again after `upload_retry_seconds`, doubling.
    upload_url: str = ""
    upload_chunk_bytes: int = UPLOAD_CHUNK_BYTES
    upload_retry_seconds: float = 2.0


@dataclass(frozen=True, slots=True)
class _Tasks:
    """A job's own part of the manifest: its script and input files, the setup
    lines, the task after the script (its name and text) and its secrets."""

    script: str
    files: Mapping[str, bytes]
    setup: tuple[str, ...]
    last: tuple[str, str]
    secrets: tuple[str, ...]
    packages: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Submission:
    """What `submit` sends: the manifest text, tags, note and whether secrets are on."""

    manifest: str
    tags: tuple[str, ...]
    note: str
    secrets: bool
    artifact: str  # guest path of the job's one result ("" for an image job: it uploads)


def job_tags(tag: str, key: JobKey) -> tuple[str, ...]:
    """The marker tag, then one tag per JobKey field (kind, branch, ..., attempt)."""
    tags = (tag, *key.job_id.split("@"))
    assert not any("/" in t for t in tags), tags
    return tags


def key_from_tags(tag: str, tags: list[str]) -> JobKey | None:
    """The JobKey a job's tags carry, or None for jobs that are not ours."""
    if len(tags) != 8 or tags[0] != tag:
        return None
    try:
        return JobKey.from_job_id("@".join(tags[1:]))
    except ValueError:
        return None


def artifact_path(key: JobKey) -> str:
    """The guest path of a job's one artifact; "" for an image job (it uploads)."""
    if key.intent.kind is JobKind.IMAGE:
        return ""
    return SIGN_ARTIFACT if key.intent.kind is JobKind.SIGN else BUILD_ARTIFACT


def build_submission(spec: JobSpec, settings: ManifestSettings) -> Submission:
    """The manifest, tags and note of a job: its own tasks (setup, the job's script,
    collecting its one artifact or uploading an image's files) and, when
    configured, the callback task."""
    key = spec.key
    checkout = settings.reconciler_source.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    image = key.intent.kind is JobKind.IMAGE
    own = _image_tasks(spec, settings) if image else _job_tasks(spec, settings)
    script, setup, secrets = own.script, list(own.setup), list(own.secrets)
    for name, data in sorted(own.files.items()):
        encoded = base64.encodebytes(data).decode()
        setup.append(f"base64 -d > {shlex.quote(name)} <<'{_EOF}'\n{encoded}{_EOF}")
    if f"\n{_EOF}\n" in f"\n{script}":
        raise JobServiceError(f"the script of {key.job_id} contains the line {_EOF}")
    setup.append(f"cat > script.sh <<'{_EOF}'\n{script.rstrip()}\n{_EOF}")  # readable on the site
    run = f'cd ~/job\nexport PYTHONPATH="$HOME"/{shlex.quote(checkout)}\nbash script.sh'
    packages = list(settings.packages)
    last_name, last_text = own.last
    tasks = [
        {"setup": "\n".join(setup) + "\n"},
        {str(key.intent.kind): run + "\n"},
        {last_name: last_text},
    ]
    if settings.callback_url:
        if settings.callback_secret not in secrets:
            secrets.append(settings.callback_secret)
        tasks.append({"callback": callback_task(settings, key)})
    needed = ["curl"] if settings.callback_url else []
    needed += ["git"] if pmbootstrap_build.JOB_FILE in spec.files else []
    packages += [name for name in (*needed, *own.packages) if name not in packages]
    manifest: dict[str, Any] = {
        "image": settings.image,
        "packages": packages,
        "sources": [settings.reconciler_source],
        "environment": {"RECONCILER_JOB": key.job_id},
    }
    if secrets:
        manifest["secrets"] = secrets
    manifest["tasks"] = tasks
    if artifact_path(key):
        manifest["artifacts"] = [artifact_path(key)]
    if settings.look_now_url:
        manifest["triggers"] = [
            {"action": "webhook", "condition": "failure", "url": settings.look_now_url}
        ]
    note = f"{spec.note}\n\nreconciler job `{key.job_id}`"
    return Submission(
        manifest=yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, width=1000),
        tags=job_tags(settings.tag, key),
        note=note,
        secrets=bool(secrets),
        artifact=artifact_path(key),
    )


def _job_tasks(spec: JobSpec, settings: ManifestSettings) -> _Tasks:
    """The own tasks of a build or sign job for the guest: a sign job downloads its
    index and gets the final key; a build reaches indexes at their public URLs;
    either ends collecting its one artifact."""
    key = spec.key
    setup = list(_SETUP)
    if key.intent.kind is JobKind.SIGN:
        url = f"{settings.symlink_url}/{key.intent.repo.relpath}/{INDEX_NAME}"
        script = remote_sign_script(
            url, key.intent.version, "final.rsa", settings.final_key_name, GUEST_PYTHON
        )
        setup.append(f"ln -sf {_guest_path(settings.final_key_path)} final.rsa")
        collect = f"cd ~/job\ncp artifacts/{INDEX_NAME} ~/{SIGN_ARTIFACT}\n"
        # The guest downloads the unsigned index itself.
        return _Tasks(script, {}, tuple(setup), ("collect", collect), (settings.final_key_secret,))
    files, script = dict(spec.files), spec.script
    if "build.json" in files:  # the synthetic builder: reach indexes over HTTP
        files = _remote_build_inputs(files, settings)
        script = synthetic_script(GUEST_PYTHON)
    elif pmbootstrap_build.JOB_FILE in files:
        files, script, clone = _remote_pmbootstrap(files, settings)
        setup += clone
    collect = (
        "cd ~/job\ncd artifacts\n"
        'set -- *.apk\n[ -e "$1" ] || { echo "the build produced no .apk"; exit 1; }\n'
        'sha512sum -- "$@"\n'
        f'tar -czf ~/{BUILD_ARTIFACT} -- "$@"\n'
    )
    return _Tasks(script, files, tuple(setup), ("collect", collect), ())


def _image_tasks(spec: JobSpec, settings: ManifestSettings) -> _Tasks:
    """The own tasks of an image job: its script with the final index at its public
    URL (a pmbootstrap image with the final repositories there as its mirror and
    pmbootstrap and pmaports cloned), then the upload of its files."""
    key = spec.key
    if not (settings.upload_url and settings.callback_secret):
        raise JobServiceError(
            f"image job {key.job_id}: image jobs on builds.sr.ht upload their files to the"
            " receiver: set jobs.sourcehut.upload_url and callback_secret"
        )
    files, script = dict(spec.files), spec.script
    setup: list[str] = list(_SETUP)
    packages: tuple[str, ...] = ()
    if images.JOB_FILE in files:
        job = images.ImageJob.from_json(files[images.JOB_FILE])
        url = job.index_url or _public_url(Path(job.index_path), settings.url_roots)
        job = replace(job, index_url=url, index_path="")
        job.check()
        files[images.JOB_FILE] = job.to_json()
        if pmbootstrap_image.JOB_FILE in files:
            script, clone = _remote_pmbootstrap_image(files, job, settings)
            setup += clone
            packages = ("git", "xz")
        else:
            script, _ = images.image_script(job, files[images.KEY_FILE], GUEST_PYTHON)
    files[UPLOADER_FILE] = Path(uploader.__file__).read_bytes()
    last = ("upload", upload_task(settings, key))
    return _Tasks(script, files, tuple(setup), last, (settings.callback_secret,), packages)


def upload_task(settings: ManifestSettings, key: JobKey) -> str:
    """The task after an image job's script: every file of artifacts/ to the receiver,
    then their checksum block. Tracing off first: the task names only the token
    file's path, which the uploader reads and never prints."""
    q = shlex.quote
    target = f"{settings.upload_url.rstrip('/')}/{key.job_id}"
    return (
        "set +x\n"
        "cd ~/job\n"
        f"{GUEST_PYTHON} {UPLOADER_FILE} --chunk-bytes {settings.upload_chunk_bytes}"
        f" --retry-seconds {settings.upload_retry_seconds:g}"
        f" {q(target)} {_guest_path(settings.callback_token_path)} {images.ARTIFACTS}\n"
    )


def extract_apks(tarball: Path, target: Path, max_bytes: int) -> str:
    """Extract plain *.apk files (no paths, no links) from a tarball; '' or the problem."""
    total = 0
    try:
        with tarfile.open(tarball, "r:*") as tar:
            members = tar.getmembers()
            if len(members) > MAX_APKS:
                return f"more than {MAX_APKS} members"
            for member in members:
                name = member.name.removeprefix("./")
                if not member.isreg() or not name.endswith(".apk") or not is_safe_name(name):
                    return f"{member.name!r} is not a plain .apk file"
                total += member.size
                if total > max_bytes:
                    return f"more than {max_bytes} bytes unpacked"
                source = tar.extractfile(member)
                assert source is not None
                with source, open(target / name, "xb") as out:
                    shutil.copyfileobj(source, out)
    except (tarfile.TarError, OSError, EOFError) as exc:
        return f"not a readable tarball: {exc}"
    return "" if members else "it holds no apk"


def _remote_build_inputs(files: dict[str, bytes], settings: ManifestSettings) -> dict[str, bytes]:
    """Rewrite build.json's index paths into public URLs and ship the public keys along."""
    job = json.loads(files["build.json"])
    out = dict(files)
    indexes = []
    for source in job["indexes"]:
        key_path = Path(source["public_key"])
        guest_key = f"keys/{key_path.name}"
        try:
            out[guest_key] = key_path.read_bytes()
        except OSError as exc:
            raise JobServiceError(f"cannot read public key {key_path}: {exc}") from exc
        url = source.get("url") or _public_url(Path(source["path"]), settings.url_roots)
        indexes.append({"url": url, "public_key": guest_key})
    job["indexes"] = indexes
    out["build.json"] = json.dumps(job, indent=1).encode()
    return out


def callback_task(settings: ManifestSettings, key: JobKey) -> str:
    """The last task: POST the job's id with the token from the secret file, never shown.

    Tracing is off first (builds.sr.ht runs tasks with `set -x`), the token goes
    into a header file (not onto a command line) and a failed callback does not
    fail the job: polling finds the job anyway.
    """
    body = shlex.quote(json.dumps({"job": key.job_id}))
    return (
        "set +x\n"
        f"token_file={_guest_path(settings.callback_token_path)}\n"
        'if [ ! -s "$token_file" ]; then echo "no callback token: not calling back"; exit 0; fi\n'
        "umask 077\n"
        "{ printf 'X-Reconciler-Token: '; tr -d '\\r\\n' < \"$token_file\"; printf '\\n'; }"
        ' > "$HOME/.callback-header"\n'
        'curl -fsS --max-time 20 --retry 3 -X POST -H @"$HOME/.callback-header"'
        f" -H 'Content-Type: application/json' --data-binary {body}"
        f" {shlex.quote(settings.callback_url)}"
        ' || echo "the callback failed; the daemon polls the job anyway"\n'
        'rm -f "$HOME/.callback-header"\n'
    )


def _remote_pmbootstrap(
    files: dict[str, bytes], settings: ManifestSettings
) -> tuple[dict[str, bytes], str, list[str]]:
    """A pmbootstrap job for the guest: mirrors at public URLs, keys shipped, clones."""
    job = pmbootstrap_build.PmbJob.from_json(files[pmbootstrap_build.JOB_FILE])
    out = dict(files)
    mirrors = []
    for mirror in job.mirrors:
        key_path = Path(mirror.key_file)
        guest_key = f"keys/{key_path.name}"
        try:
            out[guest_key] = key_path.read_bytes()
        except OSError as exc:
            raise JobServiceError(f"cannot read public key {key_path}: {exc}") from exc
        location = mirror.location
        if not location.startswith(("http://", "https://")):
            location = _public_url(Path(location), settings.url_roots).rstrip("/") + "/"
        mirrors.append(replace(mirror, location=location, key_file=guest_key))
    job = replace(job, mirrors=tuple(mirrors), command="pmbootstrap.py", aports="")
    out[pmbootstrap_build.JOB_FILE] = job.to_json()
    clone = _clones(job.branch, job.commit, settings, "build")
    script = pmbootstrap_build.render_script(
        job, GUEST_PYTHON, command='"$HOME"/pmbootstrap/pmbootstrap.py', aports='"$HOME"/pmaports'
    )
    return out, script, clone


def _remote_pmbootstrap_image(
    files: dict[str, bytes], image: images.ImageJob, settings: ManifestSettings
) -> tuple[str, list[str]]:
    """A pmbootstrap image for the guest (`files` updated): the final repositories
    at the public URL of the image's index as the mirror, pmbootstrap and
    pmaports cloned (pmaports at the branch's head); (script, setup lines)."""
    pmb = pmbootstrap_image.PmbImageJob.from_json(files[pmbootstrap_image.JOB_FILE])
    mirror, split = pmbootstrap_build.mirror_base(image.index_url)
    if split or not mirror.startswith(("http://", "https://")):
        raise JobServiceError(f"image {image.target}: {image.index_url} is not a final index")
    pmb = replace(pmb, mirror=mirror, command="pmbootstrap.py", aports="")
    pmb.check()
    files[pmbootstrap_image.JOB_FILE] = pmb.to_json()
    clone = _clones(pmb.branch, "", settings, "image")
    script = pmbootstrap_image.render_image_script(
        pmb, GUEST_PYTHON, command='"$HOME"/pmbootstrap/pmbootstrap.py', aports='"$HOME"/pmaports'
    )
    return script, clone


def _clones(branch: str, commit: str, settings: ManifestSettings, what: str) -> list[str]:
    """Setup lines cloning pmbootstrap and pmaports (at `commit`, when given) and
    making pmbootstrap ready for foreign arches."""
    origin = (split_staging(branch) or (branch,))[0]  # a staging branch: its origin's
    pmaports_git = dict(settings.pmaports_git).get(origin, "")
    if not (settings.pmbootstrap_git and pmaports_git):
        raise JobServiceError(
            f"a pmbootstrap {what} of {branch} on builds.sr.ht needs builder.pmbootstrap_git"
            " and a public pmaports git URL (builder.pmaports_git or the branch's remote)"
        )
    pmb_branch = dict(settings.pmbootstrap_branches).get(origin, "master")
    q = shlex.quote
    commit = q(commit)
    return [
        f"git clone --depth 1 -b {q(pmb_branch)} {q(settings.pmbootstrap_git)} ~/pmbootstrap",
        f"git clone --depth 1 -b {q(branch)} {q(pmaports_git)} ~/pmaports",
        f'if [ -n {commit} ] && [ "$(git -C ~/pmaports rev-parse HEAD)" != {commit} ]; then\n'
        f"  git -C ~/pmaports fetch --depth 1 origin {commit}\n"
        f"  git -C ~/pmaports checkout --detach {commit}\nfi",
        'echo "pmbootstrap $(git -C ~/pmbootstrap rev-parse HEAD)'
        ' pmaports $(git -C ~/pmaports rev-parse HEAD)"',
        "sudo modprobe binfmt_misc 2>/dev/null || true",
        "mountpoint -q /proc/sys/fs/binfmt_misc"
        " || sudo mount -t binfmt_misc none /proc/sys/fs/binfmt_misc || true",
        "yes '' | ~/pmbootstrap/pmbootstrap.py --aports ~/pmaports -q init",
    ]


def _public_url(path: Path, roots: tuple[tuple[Path, str], ...]) -> str:
    for root, url in roots:
        if path.is_relative_to(root):
            return f"{url}/{path.relative_to(root).as_posix()}"
    raise JobServiceError(f"{path} is not below a repository with a public URL")


def _guest_path(path: str) -> str:
    """A guest path for the shell, with a leading ~/ expanded by the guest's shell."""
    if path.startswith("~/"):
        return f'"$HOME"/{shlex.quote(path[2:])}'
    return shlex.quote(path)


_SETUP = ("mkdir -p ~/job/artifacts ~/job/keys ~/out", "cd ~/job")


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (the tasks) as YAML literal blocks."""


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_presenter)
