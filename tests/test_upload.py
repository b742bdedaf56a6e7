"""The receiver's upload route and the uploader image jobs run, over real HTTP on
127.0.0.1 (waitress in a thread), and through the real nginx with
deploy/nginx.conf for the route's body limit.

Chunks are small here (the receiver's chunk limit is set to a few KiB) so that a
file of a few KiB arrives in several; the nginx test uses the shipped 16 MiB.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from reconciler.config.settings import load_config
from reconciler.config.sourcehut import UPLOAD_CHUNK_BYTES, UPLOAD_FILES_DIR, UPLOAD_PARTIAL_DIR
from reconciler.formats.imagelog import HEADER, parse_sha256_lines, sha256_block
from reconciler.hooks.jobend import CALLBACK_HEADER
from reconciler.hooks.tokens import TokenStore
from reconciler.hooks.upload import MAX_FILES_PER_JOB, UPLOAD_PREFIX, UploadSettings
from reconciler.hooks.webhook import WebhookSettings, upload_settings
from reconciler.jobs.sourcehut import uploader
from reconciler.model.errors import ConfigError
from reconciler.model.images import ImageTarget
from reconciler.model.jobs import JobKey

from .nginx_server import DEPLOY_CONF, NginxServer, parse_conf, require_tool
from .receiver_helpers import Meddler, serving
from .sourcehut_helpers import SECRET, sourcehut_config

CHUNK = 4096
JOB = JobKey(ImageTarget("main", "demo-phone", "demo", "", "20270101-0000").intent("aarch64"), 1)
OTHER = JobKey(ImageTarget("main", "demo-laptop", "demo", "", "20270101-0000").intent("x86_64"), 1)
NAME = "20270101-0000-postmarketOS-edge-demo-1-demo-phone.img.xz"
CAPS = {"max_file_bytes": 40_000, "max_job_bytes": 60_000, "max_total_bytes": 100_000}


@dataclass
class Receiver:
    port: int
    token: str
    root: Path  # the uploads directory

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        token: str | None = "",
    ) -> tuple[int, dict[str, str], str]:
        sent = dict(headers or {})
        if token is not None:
            sent[CALLBACK_HEADER] = token or self.token
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            text = response.read().decode()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, text
        finally:
            conn.close()

    def put(
        self,
        data: bytes,
        first: int,
        total: int,
        name: str = NAME,
        job: JobKey = JOB,
        token: str | None = "",
    ) -> tuple[int, dict[str, str], str]:
        span = f"bytes {first}-{first + len(data) - 1}/{total}" if data else f"bytes */{total}"
        return self.request("PUT", url_path(job, name), data, {"Content-Range": span}, token=token)

    def held(self, name: str = NAME, job: JobKey = JOB) -> tuple[int, bool]:
        status, headers, _ = self.request("HEAD", url_path(job, name))
        assert status == 200
        return int(headers["x-upload-offset"]), headers["x-upload-complete"] == "yes"

    def files(self, job: JobKey = JOB) -> dict[str, bytes]:
        directory = self.root / job.job_id / UPLOAD_FILES_DIR
        if not directory.is_dir():
            return {}
        return {p.name: p.read_bytes() for p in directory.iterdir()}

    def everything(self) -> list[str]:
        """Every file below the uploads directory but the lock, relative to it."""
        if not self.root.exists():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in self.root.rglob("*")
            if p.is_file() and p.name != ".lock"
        )


def url_path(job: JobKey, name: str) -> str:
    return f"{UPLOAD_PREFIX}{job.job_id}/{name}"


def receiver_settings(tmp_path: Path, **caps: int) -> tuple[WebhookSettings, str]:
    store = TokenStore(tmp_path / "state" / "tokens.json")
    store.create("push-hook")
    token = store.create("job-callback")
    uploads = UploadSettings(root=tmp_path / "uploads", **(CAPS | caps), max_chunk_bytes=CHUNK)
    settings = WebhookSettings(
        token_store=store.path,
        trigger_dir=tmp_path / "triggers",
        branches=("main",),
        uploads=uploads,
    )
    return settings, token


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    settings, token = receiver_settings(tmp_path)
    assert settings.uploads is not None
    with serving(settings) as port:
        yield Receiver(port, token, settings.uploads.root)


def data_of(size: int, seed: int = 0) -> bytes:
    """`size` bytes that differ from file to file (`seed`) and along the file."""
    pattern = bytes((seed + i * 7) % 251 for i in range(251))
    return (pattern * (size // 251 + 1))[:size]


# --- the protocol -----------------------------------------------------------------------


def test_a_file_arrives_in_chunks_and_is_renamed_into_place(receiver: Receiver) -> None:
    data = data_of(10_000)
    assert receiver.held() == (0, False)
    for first in range(0, len(data), CHUNK):
        status, headers, _ = receiver.put(data[first : first + CHUNK], first, len(data))
        end = min(first + CHUNK, len(data))
        assert status == 200 and headers["x-upload-offset"] == str(end)
        assert receiver.held() == (end, end == len(data))
        if end < len(data):  # on its way: in partial/, not among the files
            assert receiver.files() == {}
            partial = receiver.root / JOB.job_id / UPLOAD_PARTIAL_DIR / f"{len(data)}-{NAME}"
            assert partial.stat().st_size == end
    assert receiver.files() == {NAME: data}
    assert receiver.everything() == [f"{JOB.job_id}/{UPLOAD_FILES_DIR}/{NAME}"]
    status, _, text = receiver.request("GET", url_path(JOB, NAME))
    assert (status, text) == (200, "10000 complete\n")
    # The last chunk again (its answer was lost): complete, nothing rewritten.
    assert receiver.put(data[8192:], 8192, len(data))[1]["x-upload-complete"] == "yes"
    assert receiver.files() == {NAME: data}


def test_an_empty_file_is_one_put(receiver: Receiver) -> None:
    assert receiver.put(b"", 0, 0, name="empty.txt")[0] == 200
    assert receiver.files() == {"empty.txt": b""}
    assert receiver.held("empty.txt") == (0, True)


def test_a_chunk_is_taken_only_where_the_file_ends(receiver: Receiver) -> None:
    data = data_of(9000)
    receiver.put(data[:CHUNK], 0, len(data))
    for first in (0, CHUNK + 1, 2 * CHUNK):  # again, past the end, skipping a chunk
        status, headers, text = receiver.put(data[first : first + 100], first, len(data))
        assert status == 409 and headers["x-upload-offset"] == str(CHUNK), text
    # Another size goes on only from the start, which drops what was held.
    assert receiver.put(data[CHUNK : 2 * CHUNK], CHUNK, 9999)[0] == 409
    assert receiver.put(data[:100], 0, 100)[0] == 200
    assert receiver.files() == {NAME: data[:100]}
    # A finished file is never replaced.
    status, headers, _ = receiver.put(b"x" * 10, 0, 10)
    assert status == 409 and headers["x-upload-complete"] == "yes"
    assert receiver.files() == {NAME: data[:100]}


@pytest.mark.parametrize("token", [None, "wrong", "push-hook"])
def test_a_wrong_or_missing_token_gets_401_and_nothing(
    receiver: Receiver, tmp_path: Path, token: str | None
) -> None:
    if token == "push-hook":  # the push hook's token opens nothing here
        token = TokenStore(tmp_path / "state" / "tokens.json").create("push-hook")
    for method in ("PUT", "HEAD", "GET"):
        status, headers, _ = receiver.request(
            method, url_path(JOB, NAME), b"abc", {"Content-Range": "bytes 0-2/3"}, token=token
        )
        assert status == 401 and "x-upload-offset" not in headers
    assert receiver.everything() == [] and not (receiver.root / JOB.job_id).exists()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (url_path(JOB, "../x"), 404),
        (url_path(JOB, ".hidden"), 400),
        (url_path(JOB, "a%20b"), 400),
        (url_path(JOB, "x" * 201), 400),
        (f"{UPLOAD_PREFIX}build@main@main@x86_64@hello@1.0-r0@1/{NAME}", 400),
        (f"{UPLOAD_PREFIX}..%2F..%2Fetc/{NAME}", 404),
        (f"{UPLOAD_PREFIX}{JOB.job_id}/{NAME}/more", 404),
        (f"{UPLOAD_PREFIX}{JOB.job_id}", 404),
    ],
)
def test_names_and_job_ids_are_checked(receiver: Receiver, path: str, status: int) -> None:
    answer = receiver.request("PUT", path, b"abc", {"Content-Range": "bytes 0-2/3"})
    assert answer[0] == status, answer
    assert receiver.everything() == []


def test_other_methods_and_bad_ranges_are_refused(receiver: Receiver) -> None:
    assert receiver.request("POST", url_path(JOB, NAME), b"abc")[0] == 405
    assert receiver.request("DELETE", url_path(JOB, NAME))[0] == 405
    for span in (None, "bytes 0-3/3", "bytes 2-1/3", "bytes 0-1/3", "items 0-2/3", "bytes */3"):
        headers = {"Content-Range": span} if span else {}
        assert receiver.request("PUT", url_path(JOB, NAME), b"abc", headers)[0] == 400, span
    assert receiver.everything() == []


def test_sizes_over_the_caps_are_refused_with_413_and_nothing_kept(receiver: Receiver) -> None:
    # One file over the per-file cap, one chunk over the chunk limit.
    assert receiver.put(b"x" * 100, 0, CAPS["max_file_bytes"] + 1)[0] == 413
    assert receiver.put(b"x" * (CHUNK + 1), 0, 2 * CHUNK)[0] == 413
    assert receiver.everything() == []
    # A job's files together: 30,000 + 30,001 bytes is over 60,000, counted as soon
    # as the first file starts (its size is announced).
    assert receiver.put(b"a" * 100, 0, 30_000, name="a.img")[0] == 200
    status, _, text = receiver.put(b"b" * 100, 0, 30_001, name="b.img")
    assert status == 413 and "a job's files" in text
    assert receiver.put(b"b" * 100, 0, 30_000, name="b.img")[0] == 200
    # All jobs together: 60,000 held by one job, so 40,001 more is over 100,000.
    status, _, text = receiver.put(b"c" * 100, 0, 40_000 + 1, name="c.img", job=OTHER)
    assert status == 413
    assert receiver.put(b"c" * 100, 0, 40_000, name="c.img", job=OTHER)[0] == 200
    assert receiver.everything() == sorted(
        [
            f"{JOB.job_id}/{UPLOAD_PARTIAL_DIR}/30000-a.img",
            f"{JOB.job_id}/{UPLOAD_PARTIAL_DIR}/30000-b.img",
            f"{OTHER.job_id}/{UPLOAD_PARTIAL_DIR}/40000-c.img",
        ]
    )
    assert [(receiver.root / f).stat().st_size for f in receiver.everything()] == [100] * 3


def test_a_job_uploads_a_bounded_number_of_files(receiver: Receiver) -> None:
    for number in range(MAX_FILES_PER_JOB):
        assert receiver.put(b"x", 0, 1, name=f"f{number}")[0] == 200
    assert receiver.put(b"x", 0, 1, name="one-more")[0] == 413
    assert len(receiver.files()) == MAX_FILES_PER_JOB


def test_a_chunk_cut_off_on_the_way_is_not_kept(receiver: Receiver) -> None:
    data = data_of(6000)
    receiver.put(data[:CHUNK], 0, len(data))
    head = (
        f"PUT {url_path(JOB, NAME)} HTTP/1.1\r\nHost: x\r\n{CALLBACK_HEADER}: {receiver.token}\r\n"
        f"Content-Range: bytes {CHUNK}-{len(data) - 1}/{len(data)}\r\n"
        f"Content-Length: {len(data) - CHUNK}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sock:
        sock.sendall(head.encode() + data[CHUNK : CHUNK + 100])  # then the job dies
    assert receiver.held() == (CHUNK, False)
    assert receiver.put(data[CHUNK:], CHUNK, len(data))[0] == 200
    assert receiver.files() == {NAME: data}


def test_a_full_disk_answers_507_and_keeps_nothing_of_the_chunk(
    tiny_mount: Path, tmp_path: Path
) -> None:
    settings, token = receiver_settings(tmp_path, max_file_bytes=2**30, max_job_bytes=2**30)
    settings = replace(
        settings,
        uploads=replace(
            settings.uploads,
            root=tiny_mount / "uploads",
            max_chunk_bytes=2**20,
            max_total_bytes=2**30,
        ),
    )
    chunk = data_of(2**20)
    with serving(settings) as port:
        receiver = Receiver(port, token, tiny_mount / "uploads")
        statuses = [receiver.put(chunk, first, 4 * 2**20)[0] for first in (0, 2**20, 2 * 2**20)]
        assert statuses[:1] == [200] and 507 in statuses, statuses
        held, _ = receiver.held()
        assert held == 2**20 * statuses.index(507)
        partial = receiver.root / JOB.job_id / UPLOAD_PARTIAL_DIR / f"{4 * 2**20}-{NAME}"
        assert partial.stat().st_size == held


# --- the uploader -----------------------------------------------------------------------


def artifacts(tmp_path: Path, sizes: dict[str, int]) -> Path:
    directory = tmp_path / "job" / "artifacts"
    directory.mkdir(parents=True)
    for number, (name, size) in enumerate(sizes.items()):
        (directory / name).write_bytes(data_of(size, number))
    return directory


def make_uploader(receiver: Receiver, base: str | None = None, **kw: object) -> uploader.Uploader:
    url = base or f"http://127.0.0.1:{receiver.port}{UPLOAD_PREFIX}{JOB.job_id}"
    options: dict[str, object] = {"sleep": lambda seconds: None, "say": lambda line: None}
    return uploader.Uploader(url, receiver.token, chunk_bytes=CHUNK, **(options | kw))


def test_the_uploader_runs_standalone_and_ends_with_the_checksum_block(
    receiver: Receiver, tmp_path: Path
) -> None:
    """As the job runs it: a copy of the file, no reconciler on the path."""
    directory = artifacts(tmp_path, {NAME: 10_000, f"{NAME}.sha256": 90, "empty.txt": 0})
    shutil.copy(uploader.__file__, tmp_path / "job" / "upload.py")
    (tmp_path / "token").write_text(receiver.token + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "upload.py",
            "--chunk-bytes",
            str(CHUNK),
            f"http://127.0.0.1:{receiver.port}{UPLOAD_PREFIX}{JOB.job_id}",
            str(tmp_path / "token"),
            "artifacts",
        ],
        cwd=tmp_path / "job",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert receiver.token not in done.stdout + done.stderr
    sent = {p.name: p.read_bytes() for p in directory.iterdir()}
    assert receiver.files() == sent
    sums = {name: hashlib.sha256(data).hexdigest() for name, data in sent.items()}
    assert done.stdout.endswith(sha256_block(sums))
    assert parse_sha256_lines(done.stdout) == sums
    assert f"{NAME}: 10000 bytes uploaded (3 chunk(s) sent)" in done.stdout


def test_the_uploader_spells_the_block_as_formats_imagelog_does() -> None:
    sums = {"b.img.xz": "1" * 64, "a-packages.txt": "2" * 64}
    assert uploader.HEADER == HEADER
    assert uploader.checksum_block(sums) == sha256_block(sums)
    assert uploader.DEFAULT_CHUNK_BYTES == UPLOAD_CHUNK_BYTES


def test_an_interrupted_upload_resumes_where_the_receiver_is(
    receiver: Receiver, tmp_path: Path
) -> None:
    directory = artifacts(tmp_path, {NAME: 5 * CHUNK + 10})
    data = (directory / NAME).read_bytes()
    for first in (0, CHUNK):  # an earlier run got this far
        receiver.put(data[first : first + CHUNK], first, len(data))
    lines: list[str] = []
    puts = make_uploader(receiver, say=lines.append).upload(directory / NAME)
    assert puts == 4  # three whole chunks and the rest, none of the first two again
    assert f"{NAME}: the receiver holds {2 * CHUNK} of {len(data)} bytes" in lines
    assert receiver.files() == {NAME: data}


def test_lost_answers_and_lost_requests_cost_a_retry_each(tmp_path: Path) -> None:
    settings, token = receiver_settings(tmp_path)
    meddler = Meddler(lose={2, 4}, refuse={5})
    with serving(settings, wrap=meddler) as port:
        receiver = Receiver(port, token, tmp_path / "uploads")
        directory = artifacts(tmp_path, {NAME: 5 * CHUNK})
        waits: list[float] = []
        puts = make_uploader(receiver, sleep=waits.append, retry_seconds=0.5).upload(
            directory / NAME
        )
        assert receiver.files() == {NAME: (directory / NAME).read_bytes()}
    assert puts == 5 + 1 and waits == [0.5, 0.5, 1.0]  # a failure waits, then asks again
    # Each chunk reached the receiver once, in order (the lost answers were stored).
    assert meddler.ranges == [
        f"bytes {first}-{first + CHUNK - 1}/{5 * CHUNK}" for first in range(0, 5 * CHUNK, CHUNK)
    ]


def test_the_uploader_stops_at_a_refusal(receiver: Receiver, tmp_path: Path) -> None:
    directory = artifacts(tmp_path, {NAME: 100})
    with pytest.raises(RuntimeError, match="HTTP 401"):
        make_uploader(replace(receiver, token="wrong")).upload(directory / NAME)
    (directory / NAME).write_bytes(b"x" * (CAPS["max_file_bytes"] + 1))
    with pytest.raises(RuntimeError, match="HTTP 413"):
        make_uploader(receiver).upload(directory / NAME)
    assert receiver.everything() == []


def test_the_uploader_refuses_what_the_block_cannot_list(tmp_path: Path) -> None:
    directory = artifacts(tmp_path, {"a b": 1})
    with pytest.raises(RuntimeError, match="may list"):
        uploader.result_files(directory)
    (directory / "a b").unlink()
    (directory / "link").symlink_to("/etc/passwd")
    with pytest.raises(RuntimeError, match="not a regular file"):
        uploader.result_files(directory)
    token = tmp_path / "token"
    token.write_text("t")
    assert uploader.main(["http://127.0.0.1:9/x", str(token), str(directory)]) == 1


# --- the settings ------------------------------------------------------------------------


BASE = (
    f"user: ops\ntoken_file: token\nfinal_key_secret: {SECRET}\n"
    "reconciler_source: https://git.example.org/r\nwip_url: https://x/repo/wip\n"
    "final_url: https://x/repo/final\nsymlink_url: https://x/repo/symlink\n"
)
CALLBACK_SECRET = "99999999-8888-7777-6666-555544443333"


def test_the_upload_settings_are_read_and_checked(tmp_path: Path) -> None:
    config = load_config(sourcehut_config(tmp_path, BASE))
    assert config.jobs.sourcehut is not None and config.jobs.sourcehut.upload_url == ""
    assert upload_settings(config) is None  # no upload route
    good = BASE + (
        f"upload_url: https://x/api/job-upload/\ncallback_secret: {CALLBACK_SECRET}\n"
        "upload_max_file_bytes: 20000000\n"
    )
    config = load_config(sourcehut_config(tmp_path, good))
    uploads = upload_settings(config)
    assert uploads is not None and config.jobs.sourcehut is not None
    assert config.jobs.sourcehut.upload_url == "https://x/api/job-upload"
    assert uploads.root == config.paths.data / "uploads"
    assert (uploads.max_file_bytes, uploads.max_job_bytes) == (20_000_000, 8 * 1024**3)
    assert uploads.max_chunk_bytes == UPLOAD_CHUNK_BYTES
    with pytest.raises(ConfigError) as caught:
        load_config(sourcehut_config(tmp_path, BASE + "upload_url: https://x/api/job-upload\n"))
    assert "upload_url: needs callback_secret" in str(caught.value)
    bad = good + "upload_max_job_bytes: 17000000\n"
    with pytest.raises(ConfigError) as caught:
        load_config(sourcehut_config(tmp_path, bad))
    assert "upload caps" in str(caught.value)


# --- through nginx ----------------------------------------------------------------------


def test_the_shipped_upload_location() -> None:
    conf = parse_conf(DEPLOY_CONF.read_text(encoding="utf-8"))
    api = conf.find("server").find("location", "^~", "/api/")
    location = api.find("location", "^~", UPLOAD_PREFIX)
    assert location in api.blocks
    assert location.values("client_max_body_size") == [[f"{UPLOAD_CHUNK_BYTES // 2**20}m"]]
    assert location.values("proxy_pass") == [["http://reconciler_webhook"]]
    [[zone, burst, nodelay]] = location.values("limit_req")
    assert zone == "zone=reconciler_upload" and burst.startswith("burst=") and nodelay == "nodelay"
    assert any("zone=reconciler_upload:1m" in args for args in conf.values("limit_req_zone")), (
        "no zone for the uploads"
    )
    for name in ("proxy_request_buffering", "proxy_next_upstream", "proxy_set_header"):
        assert not location.values(name), f"the upload location sets {name} again"


def test_through_nginx_a_chunk_over_the_limit_is_413_and_files_arrive(tmp_path: Path) -> None:
    require_tool("nginx", "nginx-light")
    caps = {"max_file_bytes": 2**30, "max_job_bytes": 2**30, "max_total_bytes": 2**30}
    settings, token = receiver_settings(tmp_path, **caps)
    assert settings.uploads is not None
    settings = replace(
        settings, uploads=replace(settings.uploads, max_chunk_bytes=UPLOAD_CHUNK_BYTES)
    )
    for name in ("html", "final", "wip"):
        (tmp_path / name).mkdir()
    with serving(settings) as port:
        server = NginxServer.start(
            tmp_path / "html",
            tmp_path / "final",
            tmp_path / "wip",
            tmp_path / "nginx",
            upstream_port=port,
        )
        try:
            receiver = Receiver(server.port, token, tmp_path / "uploads")
            big = data_of(UPLOAD_CHUNK_BYTES + 1)
            status, _, text = receiver.put(big, 0, len(big))
            assert status == 413 and "nginx" in text  # nginx's own page: the receiver saw nothing
            assert receiver.everything() == []
            # Exactly the limit passes, and the rest follows.
            answer = receiver.put(big[:UPLOAD_CHUNK_BYTES], 0, len(big))
            assert answer[0] == 200, answer
            assert receiver.held() == (UPLOAD_CHUNK_BYTES, False)
            assert receiver.put(big[UPLOAD_CHUNK_BYTES:], UPLOAD_CHUNK_BYTES, len(big))[0] == 200
            assert receiver.files() == {NAME: big}
            # The uploader through nginx, and a wrong token stopped by the receiver.
            directory = artifacts(tmp_path, {"small.txt": 3 * CHUNK})
            base = f"http://127.0.0.1:{server.port}{UPLOAD_PREFIX}{OTHER.job_id}"
            assert make_uploader(receiver, base).upload(directory / "small.txt") == 3
            assert receiver.files(OTHER) == {"small.txt": (directory / "small.txt").read_bytes()}
            status, headers, _ = receiver.put(b"x", 0, 1, name="x", token="wrong")
            assert status == 401 and "x-upload-offset" not in headers
        finally:
            server.stop()
