"""The queue is the plan: the packages the queue page lists as next to start are
the ones the loop submits next, in that order, across branches (in configured
order), arches (native first, foreign ones after their cross compilers publish)
and dependencies (a package starts only after what it needs is built), while
builds end and make other packages ready."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from reconciler.model.jobs import JobKind

from .conftest import ConfigFactory, DaemonFactory
from .fake_clock import FakeClock
from .memory_jobs import JobTable

TWO_BRANCHES = """\
branches:
  - name: main
    pmaports: {tree}
    arches: [x86_64, aarch64]
  - name: v25.06
    pmaports: {tree}
    arches: [x86_64, aarch64]
"""


class QueueList(HTMLParser):
    """(repository, package) of each entry of the queue page's "starts next" list."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[tuple[str, str]] = []
        self._in_list = False
        self._field = ""
        self._name = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "ol" and "queue" in classes:
            self._in_list = True
        elif self._in_list and tag == "a":
            self._field = "name"
        elif self._in_list and tag == "span" and "repo" in classes:
            self._field = "repo"

    def handle_endtag(self, tag: str) -> None:
        if tag == "ol":
            self._in_list = False
        self._field = ""

    def handle_data(self, data: str) -> None:
        if self._field == "name":
            self._name = data.strip()
        elif self._field == "repo":
            self.entries.append((data.strip(), self._name))


def queue_page(html_out: Path) -> list[tuple[str, str]]:
    parser = QueueList()
    parser.feed((html_out / "queue.html").read_text(encoding="utf-8"))
    return parser.entries


def test_the_queue_lists_the_next_submits_in_order(
    make_config: ConfigFactory,
    fake_daemon: DaemonFactory,
    pmaports: Path,
    clock: FakeClock,
    job_table: JobTable,
) -> None:
    config = make_config(
        branches=TWO_BRANCHES.format(tree=pmaports), builder="duration_seconds: 30"
    )
    daemon = fake_daemon(config)
    result = daemon.run_pass(full=True)
    queues: list[tuple[int, list[tuple[str, str]]]] = []  # (submits so far, queue then)
    for _ in range(200):
        builds = [k for k in job_table.jobs if k.intent.kind is JobKind.BUILD]
        shown = queue_page(config.paths.html_out)
        assert shown == [(str(q.repo), q.pkgname) for q in result.plan.queue]
        queues.append((len(builds), shown))
        if not result.progressed and not result.live_jobs:
            break
        clock.advance(31)  # every running build ends
        result = daemon.run_pass()
    builds = [k for k in job_table.jobs if k.intent.kind is JobKind.BUILD]  # in submit order
    submits = [(str(k.intent.repo), k.intent.pkgname) for k in builds]
    assert len(submits) == len(set(submits)) > 40, "every package of both branches built once"
    assert sum(len(q) for _, q in queues) > 20, "the scenario keeps packages waiting for slots"
    for done, queue in queues:
        assert submits[done : done + len(queue)] == queue
    # Native first: no aarch64 build started before its branch's x86_64 cross
    # compiler was submitted; dependencies first: foo-gui after libfoo.
    for branch in ("main", "v25.06"):
        first_aarch64 = submits.index(next(s for s in submits if s[0] == f"{branch}/aarch64"))
        assert submits.index((f"{branch}/x86_64", "gcc-aarch64")) < first_aarch64
        for arch in ("x86_64", "aarch64"):
            repo = f"{branch}/{arch}"
            assert submits.index((repo, "libfoo")) < submits.index((repo, "foo-gui"))
