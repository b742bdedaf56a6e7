"""A fake builds.sr.ht on 127.0.0.1: real HTTP, every request checked against the real schema.

Each POST /query is parsed and validated with graphql-core against the schema
copied from builds.sr.ht (tests/data/); a request the real service would reject is
recorded in `invalid` (tests assert it stays empty) and answered with errors.
Jobs live in memory; tags are stored joined by '/' as sourcehut does; `cancel`
works only on running jobs; artifacts exist only for successful jobs (at most 8).
Each job's tasks run as local bash scripts with HOME in a scratch directory
(sources map to local checkouts, secrets to local files), unless `decide` says
otherwise. Each task has its own log (`Task.log.fullURL`, like sourcehut); the
job's top-level log here also holds every task's output, so tests can look for
what must never appear in any log. Faults: HTTP errors, timeouts and lost answers
on any call (queued one-shot, or at random with a seeded rate), stuck,
artifact-less and pruned jobs.
The same server serves static directories (the WIP, final and symlink repos).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from graphql import GraphQLError, build_schema, graphql_sync, parse, validate
from graphql.language import OperationDefinitionNode

SCHEMA_PATH = Path(__file__).parent / "data" / "builds.sr.ht.schema.graphqls"
TOKEN = "test-token"
FAULTS = ("502", "503", "504", "429", "timeout", "lost")
LIVE = ("PENDING", "QUEUED", "RUNNING")


@dataclass
class Fault:
    kind: str  # an HTTP status ("503"), "timeout" or "lost" (done, answer dropped)
    op: str = "any"  # "submit", "cancel", "jobs", "job", "artifact", "log" or "any"


@dataclass
class Job:
    id: int
    manifest: dict[str, Any]
    manifest_text: str
    tags: str  # joined with '/', like sourcehut
    note: str | None
    secrets: bool
    created: float
    status: str = "QUEUED"
    updated: float = 0.0
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    log: str = ""
    proc: subprocess.Popen[bytes] | None = None
    tasks: list[dict[str, str]] = field(default_factory=list)  # name, status, log


# The reconciler source URL jobs name; the fake clones this checkout for it.
SOURCE = "https://git.example.org/~ops/reconciler"
CHECKOUT = Path(__file__).resolve().parent.parent


@contextmanager
def checked_fake(root: Path, page_size: int = 2) -> Iterator[FakeSourcehut]:
    """A running fake whose jobs get this checkout as SOURCE; when it stops, every
    request it received must have been one the real builds.sr.ht accepts."""
    with FakeSourcehut(root, page_size=page_size) as server:
        server.sources[SOURCE] = CHECKOUT
        yield server
    assert server.invalid == [], "a request the real builds.sr.ht would reject"


class FakeSourcehut:
    def __init__(self, root: Path, page_size: int = 4) -> None:
        self.root = root
        self.schema = build_schema(SCHEMA_PATH.read_text(encoding="utf-8"))
        self.page_size = page_size
        self.lock = threading.RLock()
        self.jobs: dict[int, Job] = {}
        self.invalid: list[str] = []
        self.calls: list[str] = []
        self.faults: list[Fault] = []
        self.fault_rate = 0.0
        self.random = random.Random(1)
        self.hold_seconds = 1.0  # a "timeout" fault holds the answer this long
        self.sources: dict[str, Path] = {}  # manifest source URL -> local checkout
        self.secret_files: dict[str, tuple[str, bytes]] = {}  # uuid -> (path, data)
        self.static: dict[str, Path] = {}  # URL prefix ("repo/wip") -> directory
        # decide(job) -> None (run the tasks), "stuck", "SUCCESS", "FAILED", "no_artifacts",
        # "pruned" (run, then drop the artifacts' URLs)
        self.decide: Callable[[Job], str | None] = lambda job: None
        self.rewrite: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self._stop = threading.Event()
        self._bin = root / "bin"
        self._bin.mkdir(parents=True, exist_ok=True)
        python3 = self._bin / "python3"
        if not python3.exists():
            python3.symlink_to(sys.executable)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll interval: shutdown() waits for the loop to notice.
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> FakeSourcehut:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for job in self.jobs.values():
                if job.proc is not None and job.proc.poll() is None:
                    os.killpg(job.proc.pid, 9)

    # --- faults ------------------------------------------------------------------
    def fault_for(self, op: str) -> str | None:
        with self.lock:
            for fault in self.faults:
                if fault.op in (op, "any"):
                    self.faults.remove(fault)
                    return fault.kind
            if self.fault_rate and self.random.random() < self.fault_rate:
                return self.random.choice(FAULTS)
        return None

    # --- GraphQL -------------------------------------------------------------------
    def handle_query(self, body: dict[str, Any]) -> tuple[str, Callable[[], dict[str, Any]]]:
        """Validate now; return the operation's field name and a function executing it."""
        query = str(body.get("query", ""))
        try:
            document = parse(query)
        except GraphQLError as exc:
            message = exc.message
            self.invalid.append(f"{message}: {query}")
            return "invalid", lambda: {"errors": [{"message": message}]}
        errors = validate(self.schema, document)
        if errors:
            self.invalid.append("; ".join(e.message for e in errors) + f": {query}")
            return "invalid", lambda: {"errors": [e.formatted for e in errors]}
        op = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
        first = op.selection_set.selections[0]
        name = getattr(first, "name").value  # noqa: B009

        def run() -> dict[str, Any]:
            with self.lock:
                result = graphql_sync(
                    self.schema, query, _Root(self), variable_values=body.get("variables") or {}
                )
            answer: dict[str, Any] = {"data": result.data}
            if result.errors:
                answer["errors"] = [e.formatted for e in result.errors]
            return self.rewrite(answer) if self.rewrite else answer

        return name, run

    def page(self, cursor: str | None) -> dict[str, Any]:
        ordered = sorted(self.jobs.values(), key=lambda j: -j.id)
        if cursor is not None:
            ordered = [j for j in ordered if j.id < int(cursor)]
        page = ordered[: self.page_size]
        more = len(ordered) > self.page_size
        return {
            "results": [self.view(j) for j in page],
            "cursor": str(page[-1].id) if more else None,
        }

    def submit(self, manifest: str, **args: Any) -> dict[str, Any]:
        parsed = yaml.safe_load(manifest)
        if not isinstance(parsed, dict) or not isinstance(parsed.get("image"), str):
            raise ValueError("manifest: image is required")
        if len(parsed.get("artifacts") or []) > 8:
            raise ValueError("a job may keep at most 8 artifacts")
        job = Job(
            id=max(self.jobs, default=100) + 1,
            manifest=parsed,
            manifest_text=manifest,
            tags="/".join(args.get("tags") or []),
            note=args.get("note"),
            secrets=bool(args.get("secrets", True)),
            created=time.time(),
        )
        job.updated = job.created
        self.jobs[job.id] = job
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return self.view(job)

    def cancel(self, job_id: int) -> dict[str, Any]:
        job = self.jobs.get(job_id)
        if job is None or job.status != "RUNNING":
            raise ValueError("only running jobs can be cancelled")
        job.status, job.updated = "CANCELLED", time.time()
        if job.proc is not None and job.proc.poll() is None:
            os.killpg(job.proc.pid, 9)
        return self.view(job)

    def view(self, job: Job) -> dict[str, Any]:
        stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
        return {
            "id": job.id,
            "created": stamp(job.created),
            "updated": stamp(job.updated),
            "status": job.status,
            "manifest": job.manifest_text,
            "note": job.note,
            "tags": job.tags.split("/") if job.tags else [],
            "visibility": "PUBLIC",
            "image": job.manifest["image"],
            "runner": None if job.status in ("PENDING", "QUEUED") else "fake",
            "tasks": [
                {
                    "id": job.id * 100 + number,
                    "created": stamp(job.created),
                    "updated": stamp(job.updated),
                    "name": task["name"],
                    "status": task["status"],
                    "log": {
                        "last128KiB": task["log"][-131072:],
                        "fullURL": f"{self.url}/logs/{job.id}/{number}",
                    },
                }
                for number, task in enumerate(job.tasks)
            ],
            "artifacts": [dict(a, created=stamp(job.updated)) for a in job.artifacts],
            "log": {"last128KiB": job.log[-131072:], "fullURL": f"{self.url}/logs/{job.id}"},
            "secrets": None,
        }

    # --- running jobs ---------------------------------------------------------------
    def _run(self, job: Job) -> None:
        decision = self.decide(job)
        if decision == "stuck":
            return
        with self.lock:
            job.status, job.updated = "RUNNING", time.time()
        ok = self._execute(job) if decision in (None, "no_artifacts", "pruned") else True
        if decision == "FAILED":
            ok = False
        with self.lock:
            if job.status != "RUNNING":  # cancelled meanwhile
                return
            artifacts = self._artifacts(job) if ok and decision != "SUCCESS" else []
            if ok and artifacts is None:
                ok, artifacts = False, []
                job.log += "artifact missing\n"
            if decision == "no_artifacts":
                artifacts = []
            if decision == "pruned":
                artifacts = [dict(a, url=None) for a in artifacts or []]
            job.artifacts = artifacts or []
            job.status, job.updated = ("SUCCESS" if ok else "FAILED"), time.time()

    def _execute(self, job: Job) -> bool:
        home = self.root / f"job{job.id}"
        home.mkdir(parents=True)
        with self.lock:
            job.tasks = [
                {"name": name, "status": "PENDING", "log": ""}
                for task in job.manifest.get("tasks") or []
                for name in task
            ]
        for source in job.manifest.get("sources") or []:
            local = self.sources.get(source)
            if local is not None:
                (home / source.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")).symlink_to(
                    local
                )
        for uuid in job.manifest.get("secrets") or [] if job.secrets else []:
            if uuid in self.secret_files:
                path, data = self.secret_files[uuid]
                target = home / path.removeprefix("~/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env |= {str(k): str(v) for k, v in (job.manifest.get("environment") or {}).items()}
        env |= {
            "HOME": str(home),
            "PATH": f"{self._bin}:{env.get('PATH', '')}",
            "JOB_ID": str(job.id),
        }
        for number, task in enumerate(job.manifest.get("tasks") or []):
            ((name, script),) = task.items()
            with self.lock:
                if job.status != "RUNNING" or self._stop.is_set():
                    return False
                job.tasks[number]["status"] = "RUNNING"
                job.proc = subprocess.Popen(
                    ["bash", "-c", "set -xe\n" + script],
                    cwd=home,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            out, _ = job.proc.communicate(timeout=120)
            text = out.decode(errors="replace")
            with self.lock:
                job.log += f"[{name}]\n" + text
                job.tasks[number]["log"] = text
                job.tasks[number]["status"] = "SUCCESS" if job.proc.returncode == 0 else "FAILED"
            if job.proc.returncode != 0:
                return False
        return True

    def _artifacts(self, job: Job) -> list[dict[str, Any]] | None:
        result = []
        for index, path in enumerate(job.manifest.get("artifacts") or []):
            source = self.root / f"job{job.id}" / str(path).removeprefix("~/")
            if not source.is_file():
                return None
            name = source.name
            target = self.root / "artifacts" / str(job.id) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            url = f"{self.url}/artifacts/{job.id}/{name}"
            result.append(
                {"id": job.id * 10 + index, "path": path, "size": target.stat().st_size, "url": url}
            )
        return result

    def submitted_keys(self) -> list[str]:
        with self.lock:
            return [j.tags for j in sorted(self.jobs.values(), key=lambda j: j.id)]


class _Root:
    """The root value: graphql-core calls its attributes with (info, **arguments)."""

    def __init__(self, fake: FakeSourcehut) -> None:
        self.fake = fake

    def jobs(self, _info: Any, cursor: str | None = None) -> dict[str, Any]:
        return self.fake.page(cursor)

    def job(self, _info: Any, id: int) -> dict[str, Any] | None:
        job = self.fake.jobs.get(id)
        return None if job is None else self.fake.view(job)

    def submit(self, _info: Any, manifest: str, **args: Any) -> dict[str, Any]:
        return self.fake.submit(manifest, **args)

    def cancel(self, _info: Any, jobId: int) -> dict[str, Any]:
        return self.fake.cancel(jobId)


def _handler(fake: FakeSourcehut) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, code: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _fault(self, op: str, *, before: bool) -> str | None:
            kind = fake.fault_for(op)
            if kind is None:
                return None
            fake.calls.append(f"fault {kind} on {op}")
            if kind.isdigit():
                self._send(int(kind), json.dumps({"errors": [{"message": kind}]}).encode())
                return kind
            self.close_connection = True  # no answer at all
            if kind == "timeout":
                fake._stop.wait(fake.hold_seconds)
            return "lost" if kind == "lost" and before else kind

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path != "/query":
                return self._send(404, b"{}")
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                message = {"errors": [{"message": "Invalid or expired OAuth 2.0 bearer token"}]}
                return self._send(401, json.dumps(message).encode())
            op, run = fake.handle_query(json.loads(raw))
            fake.calls.append(op)
            fault = self._fault(op, before=True)
            if fault is not None and fault != "lost":
                return None
            answer = run()
            if fault == "lost":  # done, but the answer never arrives
                self.close_connection = True
                return None
            return self._send(200, json.dumps(answer).encode())

        def do_GET(self) -> None:
            parts = self.path.lstrip("/").split("/")
            if parts[0] == "artifacts" and len(parts) == 3:
                if self._fault("artifact", before=False):
                    return None
                path = fake.root / "artifacts" / parts[1] / parts[2]
            elif parts[0] == "logs" and len(parts) in (2, 3):
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, b"unauthorized", "text/plain")
                if self._fault("log", before=False):
                    return None
                job = fake.jobs.get(int(parts[1]))
                if len(parts) == 3:  # a task's log
                    tasks = job.tasks if job else []
                    number = int(parts[2])
                    if number >= len(tasks):
                        return self._send(404, b"not found", "text/plain")
                    return self._send(200, tasks[number]["log"].encode(), "text/plain")
                return self._send(200, (job.log if job else "").encode(), "text/plain")
            else:
                prefix = next((p for p in fake.static if self.path.startswith(f"/{p}/")), None)
                if prefix is None or ".." in parts:
                    return self._send(404, b"not found", "text/plain")
                path = fake.static[prefix] / self.path[len(prefix) + 2 :]
            if not path.is_file():
                return self._send(404, b"not found", "text/plain")
            return self._send(200, path.read_bytes(), "application/octet-stream")

    return Handler
