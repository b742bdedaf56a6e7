"""What plan() tells people about a package that does not build now: the reason in
a maintainer's words (no state restated, "blocked by X (failed)" for what never
comes, "needs X published for x86_64" for a cross build's requirement), its
requirements one by one, the failed try's log excerpt, and the queue of packages
waiting for a job slot, in the order the plan submits them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.model.jobs import JobStatus
from reconciler.model.packages import BrokenPackage
from reconciler.model.progress import PkgState

from .plan_values import ARM, X86, Case, apk, job, repo, spec, submitted

FAILED_3 = [job("z", JobStatus.FAILED, attempt=n) for n in (1, 2, 3)]


def by_name(case: Case) -> dict[str, tuple[PkgState, str, tuple[str, ...]]]:
    return {f"{p.repo.arch}/{p.pkgname}": (p.state, p.reason, p.needs) for p in case.run().packages}


@pytest.mark.parametrize(
    ("case", "name", "expected"),
    [
        # A dependency on its way: what is needed, nothing more.
        (
            Case([spec("a"), spec("b", deps=("a",))]),
            "x86_64/b",
            (PkgState.WAITING, "needs a", ("a",)),
        ),
        # A dependency that failed for good; it sorts after its dependent, so the
        # dependent was planned first: still "blocked by", not "needs".
        (
            Case([spec("b", deps=("z",)), spec("z")], jobs=FAILED_3),
            "x86_64/b",
            (PkgState.WAITING, "blocked by z (failed)", ("z (failed)",)),
        ),
        # Behind a package that is itself blocked.
        (
            Case([spec("a", deps=("b",)), spec("b", deps=("z",)), spec("z")], jobs=FAILED_3),
            "x86_64/a",
            (PkgState.WAITING, "blocked by b (blocked)", ("b (blocked)",)),
        ),
        # Both kinds at once: what blocks it for good first.
        (
            Case(
                [spec("b", deps=("c", "z")), spec("c", deps=("y",)), spec("y"), spec("z")],
                jobs=FAILED_3,
                max_parallel=1,
            ),
            "x86_64/b",
            (PkgState.WAITING, "blocked by z (failed); needs c", ("c", "z (failed)")),
        ),
        # A dependency whose APKBUILD can't be read.
        (
            Case(
                [spec("b", deps=("a",))],
                broken=(
                    BrokenPackage("main/a", "a", "main/a/APKBUILD: pkgrel: expected a number"),
                ),
            ),
            "x86_64/b",
            (
                PkgState.WAITING,
                "blocked by a (its APKBUILD is broken)",
                ("a (its APKBUILD is broken)",),
            ),
        ),
        # A cross build's native requirement reads as a requirement.
        (
            Case(
                [spec("gcc-armv7"), spec("foo", repo=ARM, native=("gcc-armv7",))],
                {X86: repo(wip=(apk("gcc-armv7"),))},
                arches=("x86_64", "armv7"),
            ),
            "armv7/foo",
            (
                PkgState.WAITING,
                "needs gcc-armv7 published for x86_64",
                ("gcc-armv7 published for x86_64",),
            ),
        ),
    ],
    ids=["needs", "blocked-by-failed", "blocked-by-blocked", "both", "broken-apkbuild", "native"],
)
def test_waiting_reasons(
    case: Case, name: str, expected: tuple[PkgState, str, tuple[str, ...]]
) -> None:
    assert by_name(case)[name] == expected


def test_no_reason_restates_its_state() -> None:
    """The page shows "failed: <reason>": a reason that starts with its own state
    word reads "failed: failed, …"."""
    cases = [
        Case([spec("z"), spec("b", deps=("z",))], jobs=FAILED_3),
        Case([spec("z")], jobs=[job("z", JobStatus.FAILED, ended=1e9)]),  # retry is due
        Case([spec("z")], jobs=[job("z", JobStatus.FAILED)]),  # retrying later
        Case([spec("a"), spec("b")], max_parallel=1),
        Case([spec("a")], jobs=[job("a", JobStatus.RUNNING)]),
    ]
    seen = set()
    for case in cases:
        for status in case.run().packages:
            seen.add(status.state)
            first = status.reason.split(" ", 1)[0].strip(":,;")
            assert first != str(status.state), status
    assert {PkgState.FAILED, PkgState.RETRYING, PkgState.QUEUED, PkgState.WAITING} <= seen


def test_a_failed_try_carries_its_log_excerpt() -> None:
    excerpt = "ERROR: hello-1-r0: checksum failed"
    failed = [replace(job("z", JobStatus.FAILED, attempt=n), excerpt=excerpt) for n in (1, 2, 3)]
    (status,) = Case([spec("z")], jobs=failed).run().packages
    assert status.state is PkgState.FAILED
    assert status.excerpt == excerpt
    assert status.reason == "exit code 1 (try 3 of 3)"
    assert status.job_id == failed[-1].key.job_id


def test_the_queue_is_the_submit_order() -> None:
    """With one slot, the queue lists the ready packages the plan did not start, in
    the order it walks them; with more slots, the plan starts exactly the queue's
    head, in that order. Waiting packages are not in the queue."""
    specs = [
        spec("c"),
        spec("a"),
        spec("b"),
        spec("w", deps=("a",)),
        spec("a", repo=ARM),
        spec("d", repo=ARM),
    ]
    one = Case(specs, max_parallel=1, arches=("x86_64", "armv7")).run()
    assert submitted(one) == ["build@main@main@x86_64@a@1-r0@1"]
    queue = [f"{q.repo.arch}/{q.pkgname}" for q in one.queue]
    assert queue == ["x86_64/b", "x86_64/c", "armv7/a", "armv7/d"]
    assert all(q.state is PkgState.QUEUED for q in one.queue)
    # A running build holds the one slot; when the next pass has three slots free,
    # they go to the queue's head.
    running = [job("a", JobStatus.RUNNING)]
    four = Case(specs, jobs=running, max_parallel=4, arches=("x86_64", "armv7")).run()
    starts = [j.split("@")[3] + "/" + j.split("@")[4] for j in submitted(four)]
    assert starts == queue[:3]
    assert [f"{q.repo.arch}/{q.pkgname}" for q in four.queue] == queue[3:]
