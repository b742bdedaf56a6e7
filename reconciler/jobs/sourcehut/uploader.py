"""The uploader an image job runs on builds.sr.ht: its files to the receiver, in chunks.

Not imported by the daemon: the manifest ships this file's text into the job
(`upload.py` beside the job's script) and its last task runs

    python3 upload.py [--chunk-bytes N] [--retry-seconds S] URL TOKEN_FILE ARTIFACTS_DIR

so the job runs exactly the uploader of the daemon that submitted it, and it
stands alone: the standard library only, nothing of reconciler. It speaks the
receiver's protocol (`hooks.upload`): for each regular file of ARTIFACTS_DIR,
sorted by name, HEAD `URL/<name>` says how much the receiver holds; the rest
goes in PUTs of at most N bytes with `Content-Range: bytes <first>-<last>/<size>`,
each from the offset the receiver last reported (a 409 carries the receiver's
offset, which the uploader then continues from). A connection error, 429 or 5xx
is retried, after asking HEAD again, with a growing wait (S, 2S, ... at most
30 s), at most `MAX_FAILURES` times in a row; a 4xx other than 409 and 429
(401, 413, 400) ends the job at once. The token is read from TOKEN_FILE and sent
in `X-Reconciler-Token`, never printed.

Then, as the job's last words, the checksum block of `formats.imagelog` (`image
files (sha256):`, then `sha256 <hex> <name>` per file, sorted by name), hashed
before anything is sent: the daemon publishes the uploaded files only when they
match it. Exit 0 when every file arrived, 1 with an `ERROR:` line otherwise, 2
for a wrong command line.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import stat
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

HEADER = "image files (sha256):"  # formats.imagelog.HEADER (a test keeps them equal)
NAME = re.compile(r"[A-Za-z0-9._+~-]+")  # formats.imagelog's listed names
TOKEN_HEADER = "X-Reconciler-Token"
OFFSET_HEADER = "X-Upload-Offset"
COMPLETE_HEADER = "X-Upload-Complete"
DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024  # config.sourcehut.UPLOAD_CHUNK_BYTES
MAX_FAILURES = 8
MAX_WAIT_SECONDS = 30.0
TIMEOUT_SECONDS = 120.0
TRANSIENT = frozenset({429, 500, 502, 503, 504})
_HASH_BYTES = 1 << 20
# An upload that cannot go on raises RuntimeError saying why (never the token): this
# file defines no exception class of its own, as it cannot derive from reconciler's.
DESCRIPTION = "Upload an image job's files to the receiver, then print their checksum block."


@dataclass(frozen=True, slots=True)
class Answer:
    """What the receiver said: the status, its offset headers and its text."""

    status: int
    offset: int | None
    complete: bool
    text: str


Send = Callable[[str, str, bytes, Mapping[str, str]], Answer]


def send(method: str, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
    """One request; HTTP errors are answers, transport errors raise OSError."""
    request = urllib.request.Request(url, data=body if method == "PUT" else None, method=method)
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            return _answer(response.status, headers, response.read(4096))
    except urllib.error.HTTPError as exc:
        with exc:
            headers = {k.lower(): v for k, v in exc.headers.items()}
            return _answer(exc.code, headers, exc.read(4096))


def _answer(status: int, headers: Mapping[str, str], body: bytes) -> Answer:
    """`headers`: lower-cased names."""
    offset = headers.get(OFFSET_HEADER.lower())
    return Answer(
        status,
        int(offset) if offset is not None and offset.isdigit() else None,
        headers.get(COMPLETE_HEADER.lower()) == "yes",
        body.decode("utf-8", errors="replace").strip()[:200],
    )


class Uploader:
    """Uploads the files of one job to `base` (`<upload URL>/<job id>`)."""

    def __init__(
        self,
        base: str,
        token: str,
        *,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        retry_seconds: float = 2.0,
        send: Send = send,
        sleep: Callable[[float], None] = time.sleep,
        say: Callable[[str], None] = print,
    ) -> None:
        self.base = base.rstrip("/")
        self.token = token
        self.chunk_bytes = chunk_bytes
        self.retry_seconds = retry_seconds
        self._send = send
        self._sleep = sleep
        self._say = say

    def upload(self, path: Path) -> int:
        """Send one file (resuming where the receiver is); the PUTs it took."""
        url = f"{self.base}/{urllib.parse.quote(path.name, safe='+~')}"
        size = path.stat().st_size
        puts = 0
        with open(path, "rb") as file:
            offset, complete = self._ask(url)
            if offset:
                self._say(f"{path.name}: the receiver holds {offset} of {size} bytes")
            if offset > size:
                offset, complete = 0, False  # another file of that name: start again
            failures = 0
            while not (complete and offset == size):
                if complete:
                    raise RuntimeError(f"{path.name}: the receiver holds another {offset} bytes")
                length = min(self.chunk_bytes, size - offset)
                data = os.pread(file.fileno(), length, offset)
                if len(data) != length:
                    raise RuntimeError(f"{path.name}: shrank while being sent")
                answer = self._put(url, data, offset, size)
                puts += 1
                if answer is not None and answer.offset is not None:  # 200, or 409: its offset
                    offset, complete, failures = answer.offset, answer.complete, 0
                    continue
                failures += 1
                if failures >= MAX_FAILURES:
                    raise RuntimeError(f"{path.name}: {failures} tries in a row failed")
                self._sleep(min(self.retry_seconds * 2 ** (failures - 1), MAX_WAIT_SECONDS))
                offset, complete = self._ask(url)
        self._say(f"{path.name}: {size} bytes uploaded ({puts} chunk(s) sent)")
        return puts

    def _put(self, url: str, data: bytes, offset: int, size: int) -> Answer | None:
        """One chunk; None for a transient failure, RuntimeError for a refusal."""
        span = f"bytes {offset}-{offset + len(data) - 1}/{size}" if data else f"bytes */{size}"
        headers = {
            TOKEN_HEADER: self.token,
            "Content-Type": "application/octet-stream",
            "Content-Range": span,
        }
        try:
            answer = self._send("PUT", url, data, headers)
        except OSError as exc:
            self._say(f"PUT {span}: {exc}; trying again")
            return None
        if answer.status in TRANSIENT:
            self._say(f"PUT {span}: HTTP {answer.status}; trying again")
            return None
        if answer.status not in (200, 409) or answer.offset is None:
            raise RuntimeError(f"PUT {span}: HTTP {answer.status} {answer.text}")
        return answer

    def _ask(self, url: str) -> tuple[int, bool]:
        """(bytes held, complete) as the receiver says, retried while it cannot say."""
        for failures in range(1, MAX_FAILURES + 1):
            try:
                answer = self._send("HEAD", url, b"", {TOKEN_HEADER: self.token})
            except OSError as exc:
                self._say(f"HEAD: {exc}; trying again")
            else:
                if answer.status == 200 and answer.offset is not None:
                    return answer.offset, answer.complete
                if answer.status not in TRANSIENT:
                    raise RuntimeError(f"HEAD {url.rsplit('/', 1)[-1]}: HTTP {answer.status}")
                self._say(f"HEAD: HTTP {answer.status}; trying again")
            self._sleep(min(self.retry_seconds * 2 ** (failures - 1), MAX_WAIT_SECONDS))
        raise RuntimeError(f"HEAD {url.rsplit('/', 1)[-1]}: {MAX_FAILURES} tries failed")


def result_files(directory: Path) -> list[Path]:
    """The files to send, sorted by name; RuntimeError for anything that is not a
    plain regular file with a name the checksum block may list."""
    found = []
    for entry in sorted(os.listdir(directory)):
        path = directory / entry
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise RuntimeError(f"{path}: not a regular file")
        if not NAME.fullmatch(entry) or entry.startswith("."):
            raise RuntimeError(f"{entry!r}: not a file name the checksum block may list")
        found.append(path)
    if not found:
        raise RuntimeError(f"{directory}: no file to upload")
    return found


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while data := file.read(_HASH_BYTES):
            digest.update(data)
    return digest.hexdigest()


def checksum_block(sums: Mapping[str, str]) -> str:
    """`formats.imagelog.sha256_block`, spelled out again (this file stands alone)."""
    return "".join([f"{HEADER}\n", *(f"sha256 {sums[n]} {n}\n" for n in sorted(sums))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="upload.py", description=DESCRIPTION)
    parser.add_argument("--chunk-bytes", type=int, default=DEFAULT_CHUNK_BYTES)
    parser.add_argument("--retry-seconds", type=float, default=2.0)
    parser.add_argument("url", help="<upload URL>/<job id>")
    parser.add_argument("token_file")
    parser.add_argument("artifacts", type=Path)
    args = parser.parse_args(argv)
    if args.chunk_bytes < 1 or not args.url.startswith(("http://", "https://")):
        parser.error("expected a positive --chunk-bytes and an http(s) URL")
    try:
        token = Path(args.token_file).read_text(encoding="utf-8").strip()
        if not token:
            raise RuntimeError(f"{args.token_file} is empty: no token to upload with")
        files = result_files(args.artifacts)
        sums = {path.name: sha256_of(path) for path in files}
        uploader = Uploader(
            args.url, token, chunk_bytes=args.chunk_bytes, retry_seconds=args.retry_seconds
        )
        for path in files:
            uploader.upload(path)
    except (RuntimeError, OSError) as exc:
        print(f"ERROR: upload: {exc}", flush=True)
        return 1
    sys.stdout.write(checksum_block(sums))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
