"""Benchmark: the receiver's routes behind the shipped nginx config (issue 16), as one table.

Starts nginx with the SHIPPED deploy/nginx.conf inside Debian's default
/etc/nginx/nginx.conf (a copy: its `include /etc/nginx/sites-enabled/*;` names
the rendered server block, pid, logs and temp files live in a temporary prefix,
nginx runs in the foreground, and `worker_connections` is raised from Debian's
768 to --worker-connections, which the table says), on a free loopback port, in
front of the real receiver (`python -m reconciler webhook --listen
127.0.0.1:<port> --config <a temporary config>` after `reconciler token new
push-hook`; the rendered server block's upstream points at that port). Then,
each phase after the push bucket has refilled:

1. pushes: --pushes valid GitLab push events (X-Gitlab-Token, round robin over 3
   branches) started evenly over one second, each on its own connection (asyncio,
   raw sockets) -> answers counted as 2xx, 429, 5xx and other, and the trigger
   files the receiver wrote (right away, and once no more appear);
2. slow clients: --slow connections held open against nginx, each sending a
   partial request to the push hook (request line, then a header one byte every
   --drip seconds) -> the receiver's RSS and nginx's workers' RSS (VmRSS in
   /proc/<pid>/status) while they are open, and meanwhile the latency (median,
   max) of --probes well-behaved look-now requests and --probes pushes; then
   when nginx cut the slow connections off (client_header_timeout);
3. wrong tokens: --wrong pushes with a wrong token at once -> total time, and
   how they were answered.

The table goes to stdout and to bench/results/<date>-burst.txt. The receiver
is the one in the working tree at the time of the run (the table names its
commit and whether reconciler/hooks has uncommitted changes). Run as root, nginx's
workers run as Debian's `www-data`. A quick run:

    .venv/bin/python bench/burst.py --pushes 100 --slow 100 --wrong 20
    .venv/bin/python bench/burst.py [--pushes N] [--slow N] [--wrong N] [--probes N]
                                    [--hold S] [--drip S] [--worker-connections N] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from tests.nginx_server import (  # noqa: E402 (needs ROOT on the path)
    debian_main_config,
    free_port,
    port_open,
    render_server_block,
)

PUSH = "/api/push-hook/gitlab"
LOOK_NOW = "/api/look-now"
BRANCHES = ("main", "v25.06", "v24.12")
ANSWER_TIMEOUT = 60.0  # seconds a client waits for its answer
REFILL_SECONDS = 6.0  # the push bucket (burst 50 at 10 r/s) refills in 5 s
PYTHON = sys.executable


# -- the processes ----------------------------------------------------------------


@dataclass
class Setup:
    work: Path
    config: Path
    token: str
    triggers: Path
    receiver: subprocess.Popen[bytes]
    receiver_port: int
    nginx: subprocess.Popen[bytes]
    nginx_port: int
    prefix: Path
    notes: list[str] = field(default_factory=list)


def wait_port(port: int, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while not port_open(port):
        if process.poll() is not None or time.monotonic() > deadline:
            text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
            raise SystemExit(f"{what} did not start:\n{text}")
        time.sleep(0.05)


def start(work: Path, worker_connections: int) -> Setup:
    nginx = shutil.which("nginx")
    if not nginx:
        raise SystemExit("nginx is not installed (Debian package nginx-light)")
    os.chmod(work, 0o755)  # nginx's workers (www-data when run as root) use the prefix
    config = work / "config.yaml"
    branches = "".join(
        f"  - name: {b}\n    pmaports: {work}/pmaports-{b}\n    arches: [x86_64]\n"
        for b in BRANCHES
    )
    config.write_text(
        f"paths:\n  data: {work}/data\n  html_out: {work}/html\nbranches:\n{branches}",
        encoding="utf-8",
    )
    made = subprocess.run(
        [PYTHON, "-m", "reconciler", "token", "new", "push-hook", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    if made.returncode != 0:
        raise SystemExit(f"reconciler token new failed:\n{made.stderr}")
    token = made.stdout.split()[0]
    receiver_port = free_port()
    receiver_log = work / "receiver.log"
    command = [PYTHON, "-m", "reconciler", "webhook", "--listen", f"127.0.0.1:{receiver_port}"]
    command += ["--config", str(config)]
    with open(receiver_log, "wb") as out:
        receiver = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_port(receiver_port, receiver, "the receiver", receiver_log)
        process, nginx_port, prefix, notes = start_nginx(
            work, nginx, receiver_port, worker_connections
        )
    except BaseException:
        stop(receiver)
        raise
    triggers = work / "data" / "triggers"
    return Setup(
        work, config, token, triggers, receiver, receiver_port, process, nginx_port, prefix, notes
    )


def start_nginx(
    work: Path, nginx: str, receiver_port: int, worker_connections: int
) -> tuple[subprocess.Popen[bytes], int, Path, list[str]]:
    """nginx with the shipped server block in Debian's main config, in front of the
    receiver: the process, its port, its prefix and what the copy changed."""
    prefix = work / "nginx"
    prefix.mkdir()
    for name in ("html", "final", "wip"):
        (work / name).mkdir(exist_ok=True)
    nginx_port = free_port()
    block = prefix / "reconciler.conf"
    block.write_text(
        render_server_block(
            work / "html", work / "final", work / "wip", nginx_port, upstream_port=receiver_port
        ),
        encoding="utf-8",
    )
    main_text, changes = debian_main_config(
        prefix, block, nginx, worker_connections=worker_connections
    )
    main = prefix / "nginx.conf"
    main.write_text(main_text, encoding="utf-8")
    # No -p: Debian's dynamic modules load relative to its compiled-in prefix.
    base = [nginx, "-e", str(prefix / "error.log"), "-c", str(main)]
    check = subprocess.run([*base, "-t"], capture_output=True, text=True, timeout=30, check=False)
    if check.returncode != 0:
        raise SystemExit(f"nginx -t:\n{check.stderr}")
    with open(prefix / "stderr.log", "wb") as err:
        process = subprocess.Popen(base, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        wait_port(nginx_port, process, "nginx", prefix / "error.log")
    except BaseException:
        stop(process)
        raise
    notes = [
        f"main config: /etc/nginx/nginx.conf with {'; '.join(changes)}",
        f"server block: deploy/nginx.conf with the bench's paths, listen 127.0.0.1:{nginx_port},"
        f" upstream 127.0.0.1:{receiver_port} (the receiver)",
    ]
    return process, nginx_port, prefix, notes


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:") and int(line.split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


@dataclass(frozen=True)
class Memory:
    receiver: int  # KiB, the receiver's process and any children
    workers: tuple[int, ...]  # KiB per nginx worker
    master: int

    def describe(self) -> str:
        workers = " + ".join(f"{w / 1024:.1f}" for w in self.workers)
        return (
            f"receiver {self.receiver / 1024:.1f} MiB; nginx workers {workers} ="
            f" {sum(self.workers) / 1024:.1f} MiB (master {self.master / 1024:.1f} MiB)"
        )


def memory(setup: Setup) -> Memory:
    receiver = rss_kib(setup.receiver.pid) + sum(rss_kib(c) for c in children(setup.receiver.pid))
    workers = tuple(rss_kib(pid) for pid in children(setup.nginx.pid))
    return Memory(receiver, workers, rss_kib(setup.nginx.pid))


# -- HTTP on raw sockets ------------------------------------------------------------


def push_body(number: int) -> bytes:
    branch = BRANCHES[number % len(BRANCHES)]
    after = hashlib.sha1(f"push {number}".encode()).hexdigest()
    before = hashlib.sha1(f"push {number - len(BRANCHES)}".encode()).hexdigest()
    event = {
        "object_kind": "push",
        "event_name": "push",
        "before": before,
        "after": after,
        "ref": f"refs/heads/{branch}",
        "checkout_sha": after,
        "user_username": "bench",
        "project_id": 1,
        "project": {"path_with_namespace": "postmarketOS/pmaports"},
        "commits": [{"id": after, "message": f"bench push {number}"}],
        "total_commits_count": 1,
    }
    return json.dumps(event).encode()


def request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass(frozen=True)
class Answer:
    status: int  # 0: no answer (connection refused, reset, timed out)
    seconds: float
    error: str = ""


async def exchange(port: int, data: bytes) -> Answer:
    """One request on its own connection; the status of the answer and the time taken."""
    started = time.monotonic()
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), ANSWER_TIMEOUT
        )
        writer.write(data)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), ANSWER_TIMEOUT)
        took = time.monotonic() - started
        head = answer.split(b"\r\n", 1)[0].split()
        if len(head) >= 2 and head[1].isdigit():
            return Answer(int(head[1]), took)
        return Answer(0, took, f"no status line: {answer[:40]!r}")
    except (OSError, TimeoutError) as exc:
        return Answer(0, time.monotonic() - started, type(exc).__name__)
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def classes(answers: list[Answer]) -> Counter[str]:
    counted: Counter[str] = Counter()
    for answer in answers:
        if 200 <= answer.status < 300:
            counted["2xx"] += 1
        elif answer.status == 429:
            counted["429"] += 1
        elif 500 <= answer.status < 600:
            counted["5xx"] += 1
        else:
            counted["other"] += 1
    return counted


def statuses(answers: list[Answer]) -> str:
    counted = Counter(a.status if a.status else a.error or "none" for a in answers)
    return ", ".join(f"{status}: {n}" for status, n in sorted(counted.items(), key=str))


async def spread(port: int, payloads: list[bytes], seconds: float) -> list[Answer]:
    """Start each request at its share of `seconds`; all answers."""
    loop = asyncio.get_running_loop()
    start_at = loop.time() + 0.05

    async def one(index: int, data: bytes) -> Answer:
        await asyncio.sleep(max(0.0, start_at + seconds * index / len(payloads) - loop.time()))
        return await exchange(port, data)

    return list(await asyncio.gather(*(one(i, d) for i, d in enumerate(payloads))))


def receiver_connections(port: int) -> int:
    """TCP connections to `port` open or recently closed (TIME_WAIT lasts 60 s): nginx's
    end of each, or the receiver's end of those the receiver closed first."""
    hex_port = f"{port:04X}"
    count = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            to_receiver = remote.endswith(":" + hex_port)
            closed_by_receiver = local.endswith(":" + hex_port) and state == "06"  # TIME_WAIT
            count += to_receiver or closed_by_receiver
    return count


def count_triggers(triggers: Path) -> Counter[str]:
    """Trigger files written (pending and processed ones, if a daemon ran): per branch."""
    found: Counter[str] = Counter()
    for path in triggers.rglob("*.json"):
        if path.name.startswith("."):
            continue
        try:
            found[str(json.loads(path.read_text(encoding="utf-8")).get("branch"))] += 1
        except (OSError, ValueError):
            found["unreadable"] += 1
    return found


# -- the phases ----------------------------------------------------------------------


def phase_pushes(setup: Setup, pushes: int) -> list[str]:
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": setup.token}
    headers["Content-Type"] = "application/json"
    payloads = [request(PUSH, push_body(n), headers) for n in range(pushes)]
    before = memory(setup)
    connections = receiver_connections(setup.receiver_port)
    started = time.monotonic()
    answers = asyncio.run(spread(setup.nginx_port, payloads, 1.0))
    took = time.monotonic() - started
    connections = receiver_connections(setup.receiver_port) - connections
    counted = classes(answers)
    right_away = count_triggers(setup.triggers)
    # Deferred (coalesced) writes may follow: wait until no new file shows for 3 s.
    settled, last, quiet_since = right_away, sum(right_away.values()), time.monotonic()
    deadline = time.monotonic() + 30
    while time.monotonic() - quiet_since < 3 and time.monotonic() < deadline:
        time.sleep(0.25)
        settled = count_triggers(setup.triggers)
        if sum(settled.values()) != last:
            last, quiet_since = sum(settled.values()), time.monotonic()
    after = memory(setup)
    accepted = sorted(a.seconds for a in answers if 200 <= a.status < 300)
    refused = sorted(a.seconds for a in answers if a.status == 429)
    per_branch = ", ".join(f"{b} {settled[b]}" for b in BRANCHES)
    rows = [
        f"{pushes} pushes over 1 s (3 branches)  2xx {counted['2xx']}, 429 {counted['429']},"
        f" 5xx {counted['5xx']}, other {counted['other']}",
        f"    answers: {statuses(answers)}; all answered {took:.2f} s after the first was sent;"
        f" nginx used {connections} connections to the receiver (upstream keepalive)",
        f"    2xx latency median {ms(accepted)} max {ms(accepted, max)};"
        f" 429 latency median {ms(refused)} max {ms(refused, max)}",
        f"    trigger files written: {sum(settled.values())} ({per_branch});"
        f" {sum(right_away.values())} right after the last answer",
        f"    memory before: {before.describe()}",
        f"    memory after:  {after.describe()}",
    ]
    return rows


def ms(values: list[float], how: Callable[[list[float]], float] = statistics.median) -> str:
    return f"{how(values) * 1000:.1f} ms" if values else "-"


async def slow_client(port: int, drip: float, closed_at: list[float], t0: float) -> None:
    """A partial request to the push hook, one more header byte every `drip` seconds,
    until nginx closes the connection (its time goes into `closed_at`)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        closed_at.append(-1.0)
        return
    try:
        writer.write(f"POST {PUSH} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".encode())
        await writer.drain()
        while True:
            try:
                data = await asyncio.wait_for(reader.read(4096), drip)
            except TimeoutError:
                writer.write(b"a")
                await writer.drain()
                continue
            if not data:
                break
    except OSError:
        pass
    finally:
        closed_at.append(time.monotonic() - t0)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def slow_phase(
    setup: Setup, slow: int, drip: float, hold: float, probes: int
) -> tuple[list[float], list[Answer], list[Answer], Memory, Memory, int]:
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()
    closed_at: list[float] = []
    tasks = []
    for _ in range(slow):
        tasks.append(loop.create_task(slow_client(setup.nginx_port, drip, closed_at, t0)))
        await asyncio.sleep(0.5 / slow)  # all open within half a second
    await asyncio.sleep(1.0)
    open_now = slow - len(closed_at)
    peak = memory(setup)
    look = request(LOOK_NOW, b'{"id": 1, "status": "failed"}', {})
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": setup.token}
    looks, pushes = [], []
    for n in range(probes):
        looks.append(await exchange(setup.nginx_port, look))
        pushes.append(await exchange(setup.nginx_port, request(PUSH, push_body(n), headers)))
        await asyncio.sleep(0.2)
    during = memory(setup)
    remaining = hold - (time.monotonic() - t0)
    if remaining > 0:
        await asyncio.wait(tasks, timeout=remaining)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return closed_at, looks, pushes, peak, during, open_now


def phase_slow(setup: Setup, slow: int, drip: float, hold: float, probes: int) -> list[str]:
    before = memory(setup)
    closed_at, looks, pushes, peak, during, open_now = asyncio.run(
        slow_phase(setup, slow, drip, hold, probes)
    )
    cut = sorted(t for t in closed_at if t >= 0)
    by_nginx = [t for t in cut if t < hold]
    when = f", {min(by_nginx):.1f}-{max(by_nginx):.1f} s after the first opened" if by_nginx else ""
    failed = f"; {slow - len(cut)} could not connect" if len(cut) < slow else ""
    look_ok = sorted(a.seconds for a in looks if 200 <= a.status < 300)
    push_ok = sorted(a.seconds for a in pushes if 200 <= a.status < 300)
    return [
        f"{slow} slow connections (partial request, 1 byte / {drip:g} s)"
        f"  {open_now} open 1 s after the last connected",
        f"    memory before:        {before.describe()}",
        f"    memory all open:      {peak.describe()}",
        f"    memory while probing: {during.describe()}",
        f"    meanwhile {len(looks)} look-now: median {ms(look_ok)}, max {ms(look_ok, max)}"
        f" ({statuses(looks)})",
        f"    meanwhile {len(pushes)} pushes:   median {ms(push_ok)}, max {ms(push_ok, max)}"
        f" ({statuses(pushes)})",
        f"    nginx closed {len(by_nginx)} of them within the {hold:g} s held{when}{failed}",
    ]


def phase_wrong(setup: Setup, wrong: int) -> list[str]:
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "wrong-" + "x" * 38}
    payloads = [request(PUSH, push_body(n), headers) for n in range(wrong)]
    started = time.monotonic()
    answers = asyncio.run(spread(setup.nginx_port, payloads, 0.0))
    took = time.monotonic() - started
    unauthorized = sorted(a.seconds for a in answers if a.status == 401)
    return [
        f"{wrong} wrong tokens at once  total {took * 1000:.0f} ms ({statuses(answers)})",
        f"    401 from the receiver: median {ms(unauthorized)}, max {ms(unauthorized, max)};"
        " the rest answered by nginx",
    ]


# -- the table -----------------------------------------------------------------------


def machine() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}"


def receiver_version() -> str:
    """The commit and whether the receiver's code differs from it (read-only git)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else "?"

    commit = git("log", "-1", "--format=%h %cd", "--date=format:%Y-%m-%d %H:%M")
    changed = [line for line in git("status", "--porcelain", "reconciler/hooks").splitlines()]
    state = f", {len(changed)} uncommitted changes in reconciler/hooks" if changed else ""
    return f"{commit}{state}"


def raise_file_limit(needed: int) -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return f"open files: soft limit {soft} (enough)"
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        return f"open files: soft limit {soft}, could not raise it to {needed}: {exc}"
    return f"open files: soft limit raised {soft} -> {target}"


def nginx_version() -> str:
    done = subprocess.run(["nginx", "-v"], capture_output=True, text=True, timeout=10, check=False)
    return done.stderr.strip().removeprefix("nginx version: ")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=1000, help="valid pushes over 1 s")
    parser.add_argument("--slow", type=int, default=1000, help="slow connections held open")
    parser.add_argument("--wrong", type=int, default=200, help="wrong-token pushes at once")
    parser.add_argument("--probes", type=int, default=20, help="well-behaved requests of each")
    parser.add_argument("--hold", type=float, default=13.0, help="seconds the slow ones try")
    parser.add_argument("--drip", type=float, default=2.0, help="seconds between slow bytes")
    parser.add_argument("--worker-connections", type=int, default=4096)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    started = time.time()
    limit_note = raise_file_limit(max(args.pushes, args.slow, args.wrong) + 256)
    work = Path(tempfile.mkdtemp(prefix="reconciler-burst-"))
    setup = start(work, args.worker_connections)
    rows: list[str] = []
    try:
        first = memory(setup)
        rows += phase_pushes(setup, args.pushes)
        time.sleep(REFILL_SECONDS)
        rows += phase_slow(setup, args.slow, args.drip, args.hold, args.probes)
        time.sleep(REFILL_SECONDS)
        rows += phase_wrong(setup, args.wrong)
        alive = "up" if setup.receiver.poll() is None else f"EXITED {setup.receiver.returncode}"
    finally:
        stop(setup.nginx)
        stop(setup.receiver)
    argv = " ".join(shlex.quote(a) for a in sys.argv[1:])
    header = [
        f"reconciler burst bench, {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))},"
        f" {machine()}, nginx {nginx_version()}",
        f"command: .venv/bin/python bench/burst.py {argv}".rstrip(),
        f"receiver: `python -m reconciler webhook` at {receiver_version()}",
        *setup.notes,
        f"worker_connections raised 768 -> {args.worker_connections} in the bench's copy of the"
        " main config; " + limit_note,
        f"at start: {first.describe()}",
        "",
    ]
    footer = [
        "",
        f"receiver {alive} at the end; {time.time() - started:.0f} s in all",
    ]
    lines = header + rows + footer
    print("\n".join(lines))
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    full = (args.pushes, args.slow, args.wrong) == (1000, 1000, 200)
    suffix = "-burst" if full else f"-burst-n{args.pushes}"
    out = results / f"{time.strftime('%Y-%m-%d', time.localtime(started))}{suffix}.txt"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\nwritten to {out.relative_to(ROOT)}")
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
