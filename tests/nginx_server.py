"""A generated sample site, served by a real nginx on 127.0.0.1 with deploy/nginx.conf.

`generate_site` copies the sample tree, writes a config the way conftest does
(with one package failing on purpose, so there is a failure with a log) and
converges a daemon (fake clock, in-memory jobs). `NginxServer.start` turns the *shipped*
deploy/nginx.conf into a test server block by replacing only its production
paths, its `listen 80;` and (with `upstream_port`) the receiver's address,
wraps it in a minimal main config under a private prefix and runs nginx in the
foreground until `stop()`. `debian_main_config` wraps the same block in Debian's
default /etc/nginx/nginx.conf instead (bench/burst.py); `parse_conf` reads the
shipped file's blocks and directives for tests that check what it says.

Fixtures (import them into a test module to use them; they are module-scoped):
  generated_site  the GeneratedSite, built once per module
  nginx_url       base URL ("http://127.0.0.1:PORT/") of nginx serving it
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import requests

from reconciler.config.settings import Config, load_config
from reconciler.loop import PassResult

from .fake_clock import FakeClock
from .fake_daemon import fake_daemon
from .memory_jobs import JobTable

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_TREE = ROOT / "examples" / "pmaports"
DEPLOY_CONF = ROOT / "deploy" / "nginx.conf"

# The production paths in deploy/nginx.conf that a test server replaces.
PROD_HTML_OUT = "/var/lib/reconciler/html_out"
PROD_FINAL = "/var/lib/reconciler/data/repo/final"
PROD_WIP = "/var/lib/reconciler/data/repo/wip"
PROD_SYMLINK = "/var/lib/reconciler/data/repo/symlink"
PROD_JOB_LOGS = "/var/lib/reconciler/data/jobs/logs"
PROD_IMAGES = "/var/lib/reconciler/data/images"
PROD_LISTEN = "listen 80;"
PROD_UPSTREAM = "server 127.0.0.1:8081;"  # the receiver, in `upstream reconciler_webhook`
DEBIAN_MAIN_CONF = Path("/etc/nginx/nginx.conf")

SITE_URL = "https://build.example.org/"
FAILING = "main/x86_64/hello-x86"
CONVERGE_SECONDS = 120.0
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def in_ci() -> bool:
    """True on CI (CI=true), where a missing tool must fail the run instead of skipping."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_tool(path_or_name: str, package: str) -> str:
    """The tool's path; otherwise fail on CI, skip (with the reason) elsewhere."""
    found = shutil.which(path_or_name)
    if found:
        return found
    reason = (
        f"{path_or_name} is not installed (Debian package {package}); "
        "run `bash .ci/system-packages.sh` as root to install it"
    )
    if in_ci():
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


# -- the site ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GeneratedSite:
    root: Path
    pmaports: Path
    config: Config
    result: PassResult
    started: float  # the clock around the converge, to check the pages' pass times
    finished: float

    @property
    def html_out(self) -> Path:
        return self.config.paths.html_out

    @property
    def final(self) -> Path:
        return self.config.paths.final_repo

    @property
    def wip(self) -> Path:
        return self.config.paths.wip_repo

    @property
    def data(self) -> Path:
        return self.config.paths.data


def write_config(
    root: Path,
    pmaports: Path,
    *,
    arches: Sequence[str] = ("x86_64", "aarch64", "armv7"),
    fail: Sequence[str] = (FAILING,),
) -> Config:
    """A config for the tree at `pmaports`, everything under `root` (like conftest's)."""
    fail_yaml = ", ".join(f'"{pattern}"' for pattern in fail)
    text = textwrap.dedent(
        f"""\
        paths:
          data: {root}/data
          html_out: {root}/html
        jobs:
          max_parallel: 2
        builder: {{duration_seconds: 0, fail: [{fail_yaml}]}}
        retries:
          max_tries: 1
          backoff_seconds: 0.05
          backoff_max_seconds: 0.2
        loop:
          poll_interval_seconds: 0.5
          settle_seconds: 0
        site:
          url: "{SITE_URL}"
        branches:
          - name: main
            pmaports: {pmaports}
            arches: [{", ".join(arches)}]
        """
    )
    path = root / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def generate_site(
    root: Path,
    prepare: Callable[[Path], None] | None = None,
    *,
    arches: Sequence[str] = ("x86_64", "aarch64", "armv7"),
    fail: Sequence[str] = (FAILING,),
) -> GeneratedSite:
    """Copy the sample tree (then let `prepare` edit it), converge, return the result."""
    pmaports = root / "pmaports"
    shutil.copytree(SAMPLE_TREE, pmaports)
    if prepare is not None:
        prepare(pmaports)
    config = write_config(root, pmaports, arches=arches, fail=fail)
    clock = FakeClock(time.time())
    started = clock()
    daemon = fake_daemon(config, clock, JobTable(root / "memory-jobs"))
    result = daemon.converge(max_seconds=CONVERGE_SECONDS)
    return GeneratedSite(root, pmaports, config, result, started, clock())


# -- nginx ---------------------------------------------------------------------


def render_server_block(
    html_out: Path,
    final: Path,
    wip: Path,
    port: int,
    symlink: Path | None = None,
    *,
    upstream_port: int | None = None,
    job_logs: Path | None = None,
    images: Path | None = None,
) -> str:
    """deploy/nginx.conf with the test's directories and a loopback listen address
    (the symlink repository defaults to `symlink` beside `wip`, the jobs' logs to
    `jobs/logs` and the images to `images` beside `repo`, as in paths.data); with
    `upstream_port`, the receiver is looked for there instead of on 8081."""
    text = DEPLOY_CONF.read_text(encoding="utf-8")
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    needles = (PROD_HTML_OUT, PROD_FINAL, PROD_WIP, PROD_SYMLINK, PROD_JOB_LOGS, PROD_IMAGES)
    needles += (PROD_LISTEN,)
    for needle in (*needles, PROD_UPSTREAM):
        if needle not in code:
            raise AssertionError(f"{DEPLOY_CONF} no longer uses {needle!r}; update {__file__}")
    listens = re.findall(r"^\s*listen\s+[^;]*;", code, flags=re.MULTILINE)
    if [item.strip() for item in listens] != [PROD_LISTEN]:
        raise AssertionError(f"expected exactly one `{PROD_LISTEN}` in {DEPLOY_CONF}: {listens}")
    if code.count(PROD_UPSTREAM) != 1:
        raise AssertionError(f"expected exactly one `{PROD_UPSTREAM}` in {DEPLOY_CONF}")
    upstream = PROD_UPSTREAM if upstream_port is None else f"server 127.0.0.1:{upstream_port};"
    # Longest first, so no replacement touches the result of another one.
    for old, new in (
        (PROD_FINAL, str(final)),
        (PROD_SYMLINK, str(symlink or wip.parent / "symlink")),
        (PROD_JOB_LOGS, str(job_logs or wip.parent.parent / "jobs" / "logs")),
        (PROD_IMAGES, str(images or wip.parent.parent / "images")),
        (PROD_WIP, str(wip)),
        (PROD_HTML_OUT, str(html_out)),
        (PROD_LISTEN, f"listen 127.0.0.1:{port};"),
        (PROD_UPSTREAM, upstream),
    ):
        text = text.replace(old, new)
    leftover = [
        line for line in text.splitlines() if "/var/lib/reconciler" in line.split("#", 1)[0]
    ]
    if leftover:
        raise AssertionError(f"production paths the test cannot map: {leftover}")
    return text


def _disabled_modules(nginx: str) -> set[str]:
    """Modules this nginx was built without (their *_temp_path directives do not exist)."""
    version = subprocess.run(
        [nginx, "-V"], capture_output=True, text=True, timeout=10, check=False
    ).stderr
    return set(re.findall(r"--without-http_(\w+)_module", version))


def temp_path_lines(prefix: Path, nginx: str) -> str:
    """http-context lines that move every temp directory this nginx has under `prefix`."""
    temp = ["client_body_temp_path"] + [
        f"{module}_temp_path"
        for module in ("proxy", "fastcgi", "uwsgi", "scgi")
        if module not in _disabled_modules(nginx)
    ]
    return "\n".join(f"    {name} {prefix}/{name.removesuffix('_path')};" for name in temp)


def main_config(prefix: Path, server_block: Path, nginx: str) -> str:
    """A complete nginx.conf whose pid, logs and temp files all live under `prefix`."""
    temp_lines = temp_path_lines(prefix, nginx)
    # As root the workers would drop to `nobody` and could not read pytest's 0700 tmp dirs.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}"
        "daemon off;\n"
        "worker_processes 1;\n"
        f"pid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/error.log info;\n"
        "events {\n    worker_connections 512;\n}\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n"
        "    default_type application/octet-stream;\n"
        f"    access_log {prefix}/access.log;\n"
        f"{temp_lines}\n"
        f"    include {server_block};\n"
        "}\n"
    )


def debian_main_config(
    prefix: Path,
    server_block: Path,
    nginx: str,
    *,
    worker_connections: int | None = None,
    source: Path = DEBIAN_MAIN_CONF,
) -> tuple[str, list[str]]:
    """Debian's default nginx.conf as shipped, with the server block included where
    `include /etc/nginx/sites-enabled/*;` was, pid, logs and temp files under
    `prefix`, in the foreground; `worker_connections` raises that limit (and the
    workers' file limit with it). Returns the text and each change, in words."""
    text = source.read_text(encoding="utf-8")
    changes: list[str] = []

    def swap(pattern: str, replacement: str, what: str) -> None:
        nonlocal text
        text, found = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
        if found != 1:
            raise AssertionError(f"{source}: no line matching {pattern!r}")
        changes.append(what)

    swap(
        r"^(\s*)include /etc/nginx/sites-enabled/\*;",
        rf"\1include {server_block};",
        f"include /etc/nginx/sites-enabled/* -> include {server_block}",
    )
    swap(r"^(\s*)pid .*;", rf"\1pid {prefix}/nginx.pid;", f"pid -> {prefix}/nginx.pid")
    swap(r"^(\s*)error_log .*;", rf"\1error_log {prefix}/error.log;", "error_log -> prefix")
    swap(r"^(\s*)access_log .*;", rf"\1access_log {prefix}/access.log;", "access_log -> prefix")
    temp = temp_path_lines(prefix, nginx)
    swap(r"^http \{", "http {\n" + temp.replace("\\", "\\\\"), "temp paths -> prefix")
    if os.geteuid() != 0:
        swap(r"^(\s*)user .*;", "", "`user` removed (not root)")
    if worker_connections is not None:
        swap(
            r"^(\s*)worker_connections \d+;",
            rf"\1worker_connections {worker_connections};",
            f"worker_connections {worker_connections} (Debian: 768)",
        )
        files = 2 * worker_connections + 64
        text = f"worker_rlimit_nofile {files};\n" + text
        changes.append(f"worker_rlimit_nofile {files} added")
    text = "daemon off;\n" + text
    changes.append("daemon off added")
    return text, changes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class NginxError(RuntimeError):
    pass


@dataclass
class NginxServer:
    prefix: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def error_log(self) -> str:
        parts = []
        for name in ("error.log", "stderr.log"):
            path = self.prefix / name
            if path.exists():
                parts.append(path.read_text(encoding="utf-8", errors="replace"))
        return "".join(parts)

    @classmethod
    def start(
        cls,
        html_out: Path,
        final: Path,
        wip: Path,
        prefix: Path,
        *,
        upstream_port: int | None = None,
        edit: Callable[[str], str] | None = None,
        job_logs: Path | None = None,
        images: Path | None = None,
    ) -> NginxServer:
        """Start nginx on a free loopback port; a port lost to a race is retried twice.
        `upstream_port`: where the receiver is (default: the shipped 8081); `edit`
        changes the rendered server block (a test's shorter timeouts)."""
        nginx = require_tool("nginx", "nginx-light")
        last = ""
        for attempt in range(3):
            run_dir = prefix / f"run{attempt}"
            run_dir.mkdir(parents=True)
            port = free_port()
            server_block = run_dir / "reconciler.conf"
            block = render_server_block(
                html_out,
                final,
                wip,
                port,
                upstream_port=upstream_port,
                job_logs=job_logs,
                images=images,
            )
            server_block.write_text(edit(block) if edit else block, encoding="utf-8")
            conf = run_dir / "nginx.conf"
            conf.write_text(main_config(run_dir, server_block, nginx), encoding="utf-8")
            command = [nginx, "-e", str(run_dir / "error.log"), "-p", str(run_dir), "-c", str(conf)]
            check = subprocess.run(
                [*command, "-t", "-q"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            if check.returncode != 0:
                log = (run_dir / "error.log").read_text(encoding="utf-8", errors="replace")
                raise NginxError(f"nginx -t rejects the config:\n{check.stderr}{log}")
            with open(run_dir / "stderr.log", "wb") as stderr:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
            server = cls(run_dir, port, process)
            if server._wait_ready():
                return server
            server.stop()
            last = server.error_log()
            if "Address already in use" not in last:
                break
        raise NginxError(f"nginx did not start:\n{last}")

    def _wait_ready(self) -> bool:
        """Poll until the port accepts connections (bounded); False if nginx exited."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if port_open(self.port):
                return self.process.poll() is None
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # fast shutdown
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="module", name="generated_site")
def generated_site_fixture(tmp_path_factory: pytest.TempPathFactory) -> GeneratedSite:
    """The sample tree converged once per test module, main/x86_64/hello-x86 failing."""
    return generate_site(tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="module", name="nginx_url")
def nginx_url_fixture(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Base URL of a real nginx (deploy/nginx.conf) serving `generated_site`."""
    require_tool("nginx", "nginx-light")  # before the site is built for nothing
    generated_site: GeneratedSite = request.getfixturevalue("generated_site")
    server = NginxServer.start(
        generated_site.html_out,
        generated_site.final,
        generated_site.wip,
        tmp_path_factory.mktemp("nginx"),
    )
    try:
        yield server.base_url
    finally:
        server.stop()


TIMEOUT = 10.0


SECRET = "reconciler-test-secret"  # written into every probe that must never be served


def url_of(base: str, relpath: str) -> str:
    return base + quote(relpath)


def media_type(response: requests.Response) -> tuple[str, str]:
    """(media type, charset) of the response's Content-Type, lower-cased."""
    value = response.headers.get("Content-Type", "")
    kind, _, params = value.partition(";")
    charset = ""
    for param in params.split(";"):
        name, _, val = param.strip().partition("=")
        if name.lower() == "charset":
            charset = val.strip().strip('"').lower()
    return kind.strip().lower(), charset


def raw_get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET `path` exactly as written (no client-side normalisation of `..` or `%2e`)."""
    parts = urlsplit(base)
    assert parts.hostname == "127.0.0.1"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def repo_index(root: Path) -> tuple[Path, str]:
    """An APKINDEX.tar.gz under root with apks beside it, and its path relative to root."""
    found = sorted(p for p in root.rglob("APKINDEX.tar.gz") if any(p.parent.glob("*.apk")))
    assert found, f"no APKINDEX.tar.gz with apks beside it under {root}"
    return found[0], found[0].relative_to(root).as_posix()


# -- reading deploy/nginx.conf ----------------------------------------------------


@dataclass
class ConfBlock:
    """A block of an nginx config: its header words (["location", "=", "/x"]), its
    simple directives (each a list of words, quotes removed) and its nested blocks."""

    words: list[str]
    directives: list[list[str]]
    blocks: list[ConfBlock]

    def find(self, *words: str) -> ConfBlock:
        found = [b for b in self.walk() if b.words == list(words)]
        assert len(found) == 1, f"expected one block {' '.join(words)!r}, found {len(found)}"
        return found[0]

    def walk(self) -> Iterator[ConfBlock]:
        yield self
        for block in self.blocks:
            yield from block.walk()

    def values(self, name: str) -> list[list[str]]:
        """The arguments of each `name` directive directly in this block."""
        return [d[1:] for d in self.directives if d[0] == name]


_CONF_TOKEN = re.compile(r"""#[^\n]*|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[{};]|[^\s{};"'#]+""")


def parse_conf(text: str) -> ConfBlock:
    """nginx's syntax as far as deploy/nginx.conf uses it (no `#` inside words)."""
    root = ConfBlock([], [], [])
    stack = [root]
    words: list[str] = []
    for token in _CONF_TOKEN.findall(text):
        if token.startswith("#"):
            continue
        if token == "{":
            block = ConfBlock(words, [], [])
            stack[-1].blocks.append(block)
            stack.append(block)
            words = []
        elif token == "}":
            assert not words, f"unterminated directive {words}"
            stack.pop()
        elif token == ";":
            stack[-1].directives.append(words)
            words = []
        else:
            words.append(token[1:-1] if token[0] in "\"'" else token)
    assert len(stack) == 1 and not words, "unbalanced braces"
    return root


def seconds(value: str) -> float:
    """An nginx time ("10s", "1m", "500ms", "30") in seconds."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h)?", value)
    assert match, value
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}[match.group(2)]
    return int(match.group(1)) * scale
