#!/usr/bin/env python3
"""Same behaviour before and after a change: run two revisions on the sample tree, compare.

    .venv/bin/python .ci/same_behaviour.py compare BEFORE [AFTER]   (git revisions;
                                                    AFTER defaults to the work tree)
    .venv/bin/python .ci/same_behaviour.py snapshot CODE_DIR OUT.json

`snapshot` runs the daemon of the checkout in CODE_DIR on the sample tree
(examples/pmaports, both branches, the local job service, the synthetic builder,
one package failing on purpose) with fixed RSA keys and a frozen clock, then the
operator's commands and a second run, and writes what a user can see as JSON:

- every final APKINDEX: its entries, field by field, without the build time `t:`
  and the time in its DESCRIPTION;
- every published apk's `datahash`;
- the output and exit code of each CLI command (`run --once`, check-config,
  status, apkbuild, version-compare, index, verify, every operation, bad input);
- the state files (intents.json, cache.json, events.jsonl) and the trigger files
  the commands wrote (processed/, rejected/);
- every page and document of the site, without job durations and without the
  order of the newest-events lists.

`compare` checks out both revisions into the same directory one after the other
(so paths in logs and pages are the same), snapshots each (kept as before.json
and after.json in WORK) and prints the differences; exit 0 when there are none. Events are compared as a sorted list:
which pass sees a finished job first depends on process timing, not on the code.
Only the standard library is used here; the daemon runs with this venv's Python.
"""

from __future__ import annotations

import difflib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

FROZEN_TIME = 1_767_225_600.0  # 2026-01-01T00:00:00Z
REPO = Path(__file__).resolve().parent.parent
WORK = Path(tempfile.gettempdir()) / "reconciler-same-behaviour"
RUN = WORK / "run"
CODE = WORK / "code"

# Loaded by every Python process the snapshot starts (daemon, job runners, builds):
# time.time() stands still, so build dates, index times and job ids repeat exactly.
# A build job's clock stands one second later per try, so that a rebuild makes
# other bytes, as it would in a real run.
SITECUSTOMIZE = f"""\
import json, os, time
if os.environ.get("SAME_BEHAVIOUR_FROZEN"):
    _now = {FROZEN_TIME!r}
    try:
        with open("build.json") as _job:
            _now += json.load(_job).get("attempt", 1) - 1
    except (OSError, ValueError, AttributeError):
        pass
    time.time = lambda: _now
    time.time_ns = lambda: int(_now * 1e9)
"""

CONFIG = """\
paths:
  data: {run}/data
  html_out: {run}/html
branches:
  - name: main
    pmaports: {code}/examples/pmaports
    arches: [x86_64, aarch64, armv7]
  - name: v25.12
    pmaports: {code}/examples/pmaports
    arches: [x86_64, aarch64, armv7]
    ignore_errors: true
jobs:
  max_parallel: 2
builder:
  duration_seconds: 0
  fail: [v25.12/aarch64/hello-x86, v25.12/x86_64/foo-gui]
retries:
  max_tries: 2
  backoff_seconds: 0
loop:
  poll_interval_seconds: 0.05
  settle_seconds: 0
keys:
  wip_private: {keys}/wip.rsa
  final_public: {keys}/final.rsa.pub
  final_private: {keys}/final.rsa
  generate_missing: false
"""

SHA256 = re.compile(r"\b[0-9a-f]{64}\b")
SIGN_JOB = re.compile(r"(sign@[^@\s\"<]+@[^@\s\"<]+@[^@\s\"<]+@-@)[0-9a-f]{64}")
DURATION = re.compile(r"\b\d+\.\d s\b|\bafter \d+\.\d+ s\b")
PID_NAME = re.compile(r"-\d+-\d+\.json")


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "compare":
        return compare(argv[1], argv[2] if len(argv) > 2 else "")
    if len(argv) == 3 and argv[0] == "snapshot":
        Path(argv[2]).write_text(json.dumps(snapshot(Path(argv[1])), indent=1, sort_keys=True))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


# --- compare ---------------------------------------------------------------------


def compare(before: str, after: str) -> int:
    snapshots = []
    keys = WORK / "keys"
    shutil.rmtree(WORK, ignore_errors=True)
    make_keys(keys)
    for revision in (before, after):
        shutil.rmtree(CODE, ignore_errors=True)
        checkout(revision, CODE)
        print(f"snapshot of {revision or 'the work tree'} ...", file=sys.stderr)
        snapshots.append(snapshot(CODE))
    texts = [json.dumps(s, indent=1, sort_keys=True) for s in snapshots]
    for name, text in zip(("before.json", "after.json"), texts, strict=True):
        (WORK / name).write_text(text)
    a, b = (text.splitlines() for text in texts)
    diff = list(difflib.unified_diff(a, b, before or "before", after or "work tree", lineterm=""))
    for line in diff:
        print(line)
    counts = {k: len(v) if isinstance(v, dict | list) else 1 for k, v in snapshots[0].items()}
    print(f"compared: {counts}", file=sys.stderr)
    print("same behaviour" if not diff else f"{len(diff)} lines differ", file=sys.stderr)
    return 0 if not diff else 1


def checkout(revision: str, target: Path) -> None:
    """The files of `revision` (or of the work tree, tracked and untracked) in `target`."""
    target.mkdir(parents=True)
    if revision:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", revision], check=True, capture_output=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
        return
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def make_keys(directory: Path) -> None:
    """Fixed keys for both runs (made once per comparison with openssl)."""
    directory.mkdir(parents=True)
    for name in ("wip.rsa", "final.rsa"):
        private, public = directory / name, directory / f"{name}.pub"
        subprocess.run(["openssl", "genrsa", "-out", str(private), "2048"], check=True,
                       capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", str(private), "-pubout", "-out", str(public)],
                       check=True, capture_output=True)
        private.chmod(0o600)


# --- snapshot --------------------------------------------------------------------


def snapshot(code: Path) -> dict[str, Any]:
    keys = WORK / "keys"
    if not keys.is_dir():
        make_keys(keys)
    shutil.rmtree(RUN, ignore_errors=True)
    RUN.mkdir(parents=True)
    site = RUN / "site-packages"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    config = RUN / "config.yaml"
    config.write_text(CONFIG.format(run=RUN, code=code, keys=keys))
    env = {
        **os.environ,
        "PYTHONPATH": f"{code}{os.pathsep}{site}",
        "SAME_BEHAVIOUR_FROZEN": "1",
        "USER": "tester",
        "LOGNAME": "tester",
    }
    env.pop("RECONCILER_CRASH_AT", None)
    cli: list[dict[str, Any]] = []

    def run(*args: str, stderr: bool = True) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=code,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        result = {
            "argv": [normalize(a, code) for a in args],
            "exit": done.returncode,
            "stdout": normalize(done.stdout, code),
            "stderr": normalize(done.stderr, code) if stderr else "(not compared)",
        }
        cli.append(result)
        return result

    c = ["--config", str(config)]
    final = RUN / "data" / "repo" / "final"
    run("run", "--once", *c, stderr=False)
    run("check-config", *c)
    run("status", *c, stderr=False)
    run("apkbuild", "examples/pmaports/main/foo-utils", "examples/pmaports/cross/gcc-armv7")
    run("apkbuild", "examples/pmaports/no-such-package")
    for pair in (("1.0", "1.0_rc1"), ("1.2.3-r1", "1.2.3-r1"), ("2_p1", "2"), ("1.0", "1..0")):
        run("version-compare", *pair)
    run("version-compare", "1.0_p1", "1.0", "--mode", "2.14")
    run("index", str(final / "main" / "x86_64"), "-o", str(RUN / "index.tar.gz"), "-d", "test")
    index = final / "main" / "x86_64" / "APKINDEX.tar.gz"
    run("verify", str(index), "--key", str(keys / "final.rsa.pub"))
    run("verify", str(index), "--key", str(keys / "wip.rsa.pub"))
    run("verify", str(RUN / "missing"), "--key", str(keys / "final.rsa.pub"))
    apk = next(iter(sorted((final / "main" / "x86_64").glob("*.apk"))))
    run("verify", str(apk), "--key", str(keys / "final.rsa.pub"))
    done_jobs = sorted(p.name for p in (RUN / "data" / "jobs" / "done").iterdir())
    failed_job = next(j for j in done_jobs if "hello-x86" in j)
    ops = [
        ("hold", "--branch", "main", "foo-gui", "--why", "testing", "--expires-hours", "2"),
        ("hold", "--branch", "main", "--arch", "aarch64", "libfoo", "--why", "pinned"),
        ("release", "--branch", "main", "--arch", "aarch64", "libfoo", "--why", "done"),
        ("retry", "--branch", "v25.12", "--arch", "aarch64", "hello-x86", "--why", "flaky"),
        ("requeue", "--branch", "v25.12", "--why", "all of them", "--who", "someone"),
        ("rebuild", "--branch", "main", "--arch", "x86_64", "libfoo", "--why", "bad toolchain"),
        ("rebuild", "--branch", "main", "no-such-package", "--why", "nothing published"),
        ("fail-job", failed_job, "--why", "stuck"),
        ("remove-branch", "--branch", "v25.12", "--why", "still configured"),
        ("remove-branch", "--branch", "old", "--why", "gone"),
        ("fail-job", "not-a-job", "--why", "typo"),
        ("hold", "--branch", "main", "foo gui", "--why", "bad name"),
        ("hold", "--branch", "main", "foo-gui"),
        ("retry", "--branch", "main", "--arch", "X86", "foo", "--why", "bad arch"),
    ]
    for op in ops:
        run(op[0], *c, *op[1:])
    triggers = RUN / "data" / "triggers"
    (triggers / "bad.json").write_text('{"type": "hold", "branch": "main"}')
    (triggers / "worse.json").write_text("not json")
    run("run", "--once", *c, stderr=False)
    run("status", *c, stderr=False)
    run("no-such-command")
    run("hold", "--help")
    return {
        "cli": cli,
        "indexes": indexes(final),
        "datahashes": datahashes(final),
        "state": state_files(RUN / "data" / "state"),
        "triggers": trigger_files(triggers),
        "jobs": sorted(normalize(j, code) for j in done_jobs),
        "site": site_files(RUN / "html", code),
    }


def normalize(text: str, code: Path) -> str:
    """Replace what differs between runs of the same code: sign job ids (they carry
    the sha256 of an index), job durations and pids in trigger file names."""
    text = text.replace(str(code), "<code>")
    text = SIGN_JOB.sub(r"\1<sha256>", text)
    text = DURATION.sub("<duration>", text)
    return PID_NAME.sub("-<ms>-<pid>.json", text)


def indexes(final: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for path in sorted(final.rglob("APKINDEX.tar.gz")):
        members = split_gzip(path.read_bytes())
        signature = tar_names(members[0])
        with tarfile.open(fileobj=io.BytesIO(members[1])) as tar:
            files = {m.name: tar.extractfile(m).read().decode() for m in tar if m.isfile()}  # type: ignore[union-attr]
        entries = []
        for block in files.get("APKINDEX", "").strip().split("\n\n"):
            entries.append([line for line in block.splitlines() if not line.startswith("t:")])
        description = re.sub(r"published=\S+", "published=<time>", files.get("DESCRIPTION", ""))
        rel = str(path.relative_to(final))
        result[rel] = {"signature": signature, "description": description, "entries": entries}
    return result


def split_gzip(data: bytes) -> list[bytes]:
    """The decompressed gzip members of an apk-style archive."""
    import zlib

    members = []
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        members.append(inflater.decompress(data))
        data = inflater.unused_data
    return members


def tar_names(member: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(member + b"\0" * 1024)) as tar:
        return [m.name for m in tar]


def datahashes(final: Path) -> dict[str, str]:
    result = {}
    for path in sorted(final.rglob("*.apk")):
        pkginfo = ""
        for member in split_gzip(path.read_bytes())[:2]:  # [signature,] control, data
            with tarfile.open(fileobj=io.BytesIO(member + b"\0" * 1024)) as tar:
                if ".PKGINFO" in tar.getnames():
                    handle = tar.extractfile(".PKGINFO")
                    pkginfo = handle.read().decode() if handle else ""
                    break
        found = [line.split(" = ", 1)[1] for line in pkginfo.splitlines() if line.startswith("datahash")]
        result[str(path.relative_to(final))] = found[0] if found else ""
    return result


def state_files(state: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name in ("intents.json", "cache.json"):
        path = state / name
        result[name] = json.loads(path.read_text()) if path.exists() else None
    events = []
    for line in (state / "events.jsonl").read_text().splitlines():
        events.append(normalize(line, CODE))
    result["events.jsonl"] = sorted(events)
    result["files"] = sorted(p.name for p in state.iterdir() if not p.name.endswith(".cache"))
    return result


def trigger_files(triggers: Path) -> dict[str, str]:
    result = {}
    for path in sorted(triggers.rglob("*")):
        if path.is_file():
            name = normalize(str(path.relative_to(triggers)), CODE)
            result[name] = normalize(path.read_text(), CODE)
    return result


RECENT_EVENT = re.compile(r"<li><time [^\n]*\n[^\n]*</li>\n|<entry>.*?</entry>\n", re.S)


def without_recent_events(text: str) -> str:
    """A page without its list of the newest events: which of them made the list,
    and in which order, depends on when each pass saw a job end (events.jsonl,
    compared whole, holds them all)."""
    found = RECENT_EVENT.findall(text)
    return RECENT_EVENT.sub("", text) + (f"\n({len(found)} recent events)" if found else "")


def site_files(html: Path, code: Path) -> dict[str, str]:
    result = {}
    for path in sorted(html.rglob("*")):
        rel = str(path.relative_to(html))
        if not path.is_file() or rel.endswith(".gz") or rel.startswith("logs/"):
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        if rel == "metrics.prom":  # per-pass figures: durations, counters since start
            text = "\n".join(
                line for line in text.splitlines()
                if line.startswith(("reconciler_packages", "reconciler_repository_published"))
            )
        result[normalize(rel, code)] = normalize(without_recent_events(text), code)
    logs = sorted(normalize(p.name, code) for p in (html / "logs").glob("*.log"))
    result["logs/"] = "\n".join(logs)
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
