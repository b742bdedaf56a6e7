"""Operator commands for device images: `hold`, `release` and `retry` with
`--image`, `fail-job` of an image job, `build-image` and `remove-images`.

Each from the real command line (in this process) through its trigger file,
the standing intents and the record on the operations page, to the plan and
the images tree of a daemon on the fake clock with the in-memory job service;
the operations' own rules (fields, refusals, what settles them) table by table.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.config.settings import Config
from reconciler.formats.keys import generate_private_key
from reconciler.fs.keyfiles import write_public_key
from reconciler.loop import Daemon, PassResult
from reconciler.model.images import DesiredImage, ImageTarget
from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation, JobStatus
from reconciler.model.names import RepoKey
from reconciler.model.observations import ImageFile, ObservedState, PublishedImage
from reconciler.model.progress import ImageStatus, OperationRecord, PkgState
from reconciler.operator.intents import (
    ImageHold,
    ImageRemoval,
    ImageRequest,
    ImageRetry,
    Intents,
)
from reconciler.operator.operations import (
    OPERATIONS,
    BuildImage,
    HoldPackage,
    OperationError,
    ReleasePackage,
    RemoveImages,
    RetryPackage,
    parse_image,
)
from reconciler.operator.store import IntentError, load_intents, save_intents
from reconciler.operator.world import World

from .command_line import Ran, run_cli
from .conftest import ConfigFactory, DaemonFactory
from .fake_clock import FakeClock
from .memory_jobs import JobTable
from .test_images_loop import BRANCHES, DAY, IMAGES, dates, image_jobs

IMAGE = "main:demo-phone:demo"
WHO = {"who": "ana", "why": "because"}
NOW = 1_800_000_000.0
SLOT = "20270114-0000"


def cli(config: Config, *args: str) -> Ran:
    return run_cli(*args, "--config", config.source, "--who", "ana")


def image_status(result: PassResult, slot: str | None = None) -> ImageStatus:
    found = [s for s in result.plan.images if slot is None or s.target.slot == slot]
    assert len(found) == 1, result.plan.images
    return found[0]


def records(daemon: Daemon, operation: str) -> list[OperationRecord]:
    return [r for r in daemon.operations.recent() if r.operation == operation]


def operations_page(config: Config) -> str:
    return (config.paths.html_out / "operations.html").read_text(encoding="utf-8")


def image_config(make_config: ConfigFactory, pmaports: Path, extra: str = IMAGES) -> Config:
    return make_config(branches=BRANCHES.format(tree=pmaports), extra=extra)


# --- fields and triggers ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fields", "message"),
    [
        ("hold", {"image": "main:demo-phone"}, "field 'image': expected BRANCH:DEVICE:UI"),
        ("hold", {"image": "main:Demo:demo"}, "field 'image': 'main:Demo:demo': 'Demo' is not"),
        ("retry", {"image": "../x:demo-phone:demo"}, "field 'image': '../x:demo-phone:demo'"),
        ("release", {"image": "main:demo-phone:demo:a_b"}, "'a_b' is not a valid kernel"),
        ("hold", {"image": 7}, "field 'image'"),
        ("hold", {"image": IMAGE, "pkgname": "a"}, "field 'pkgname': not with 'image'"),
        ("retry", {"image": IMAGE, "branch": "main"}, "field 'branch': not with 'image'"),
        ("hold", {"image": IMAGE, "arch": "x86_64"}, "field 'arch': not with 'image'"),
        ("hold", {}, "field 'branch': expected a branch name (or give 'image')"),
        ("release", {"branch": "main"}, "field 'pkgname': expected a package name (or give"),
        ("build-image", {"branch": "main", "ui": "demo"}, "field 'device': expected a device"),
        ("build-image", {"branch": "main", "device": "demo-phone"}, "field 'ui': expected a UI"),
        (
            "build-image",
            {"branch": "main", "device": "demo-phone", "ui": "demo", "kernel": "A"},
            "field 'kernel': expected a kernel name or nothing",
        ),
        ("remove-images", {"release": "ed_ge", "device": "demo-phone"}, "field 'release'"),
        ("remove-images", {"release": "edge", "device": "../x"}, "field 'device'"),
        ("remove-images", {"release": "edge", "device": "x", "ui": "none\n"}, "field 'ui'"),
    ],
)
def test_a_bad_image_field_is_refused_naming_the_file_and_the_field(
    name: str, fields: dict[str, object], message: str
) -> None:
    data = {"type": name, **WHO, **fields}
    with pytest.raises(OperationError, match=r"^t\.json: ") as caught:
        OPERATIONS[name].from_trigger("t.json", data)
    assert message in str(caught.value)


def test_the_image_operations_go_through_their_triggers_unchanged() -> None:
    for data in (
        {"type": "hold", "image": IMAGE, "expires": NOW + 3600},
        {"type": "release", "image": f"{IMAGE}:mainline"},
        {"type": "retry", "image": IMAGE},
        {"type": "build-image", "branch": "main", "device": "demo-phone", "ui": "demo"},
        {"type": "remove-images", "release": "edge", "device": "demo-phone", "ui": "demo"},
        {"type": "remove-images", "release": "v25.12", "device": "demo-phone"},
    ):
        operation = OPERATIONS[str(data["type"])]
        parsed = operation.from_trigger("t.json", {**WHO, "requested_at": NOW, **data})
        assert operation.from_trigger("again.json", parsed.trigger()) == parsed, data
    hold = OPERATIONS["hold"].from_trigger("t.json", {"type": "hold", **WHO, "image": IMAGE})
    assert hold == HoldPackage(
        who="ana", why="because", branch="", arch="", pkgname="", image=IMAGE
    )
    package = OPERATIONS["hold"].from_trigger(
        "t.json", {"type": "hold", **WHO, "branch": "main", "pkgname": "a"}
    )
    assert package.image is None and "image" not in package.trigger()  # type: ignore[attr-defined]


def test_an_image_is_named_as_bpo_does() -> None:
    assert parse_image("main:demo-phone:demo") == ("main", "demo-phone", "demo", "")
    assert parse_image("v25.12:pine64-pinephone:phosh:mainline") == (
        "v25.12",
        "pine64-pinephone",
        "phosh",
        "mainline",
    )
    for bad in ("main", "main:a:b:c:d", "main::demo", "main:a:b:", "main:a:b:c\n"):
        with pytest.raises(ValueError):
            parse_image(bad)


def test_the_intents_file_keeps_every_image_intent(tmp_path: Path) -> None:
    intents = Intents(
        image_holds=(ImageHold("main", "demo-phone", "demo", "", "ana", "w", NOW, NOW + 60),),
        image_retries=(ImageRetry("main", "demo-phone", "demo", "", SLOT, 3, "ana", "w", NOW),),
        image_requests=(
            ImageRequest("main", "demo-phone", "demo", "k", "20270115-0800", "ana", "w", NOW),
        ),
        image_removals=(ImageRemoval("edge", "old-phone", "", "ana", "w", NOW),),
    )
    path = tmp_path / "intents.json"
    save_intents(path, intents)
    assert load_intents(path) == intents
    document = json.loads(path.read_text())
    assert document["image_removals"] == [
        {"release": "edge", "device": "old-phone", "ui": "", "who": "ana", "why": "w", "at": NOW}
    ]
    document["image_holds"][0]["kernel"] = 7
    path.write_text(json.dumps(document))
    with pytest.raises(IntentError, match=r"image_holds\[0\]\.kernel: expected str"):
        load_intents(path)


# --- the operations on hand-made worlds -----------------------------------------

ARM = RepoKey("main", "", "aarch64")
TARGET = ImageTarget("main", "demo-phone", "demo", "", SLOT)
MATRIX = frozenset(
    {
        ("main", "edge", "demo-phone", "demo", ""),
        ("main", "edge", "demo-phone", "console", ""),
    }
)


def desired_image(ui: str = "demo", kernel: str = "", slot: str = SLOT) -> DesiredImage:
    prefix = f"postmarketOS-edge-{ui}-1.0-demo-phone"
    target = ImageTarget("main", "demo-phone", ui, kernel, slot)
    return DesiredImage(target, "aarch64", "edge", "Demo", ui, "1.0", (), prefix)


def image_job(status: JobStatus, attempt: int, target: ImageTarget = TARGET) -> JobObservation:
    return JobObservation(JobKey(target.intent("aarch64"), attempt), status, NOW - 100, NOW - 50)


def published(date: str, ui: str = "demo", device: str = "demo-phone") -> PublishedImage:
    name = f"{date}-postmarketOS-edge-{ui}-1.0-{device}.img.xz"
    return PublishedImage("edge", device, ui, date, (ImageFile(name, 10),), f"image@{date}")


def world(
    *jobs: JobObservation,
    images: tuple[PublishedImage, ...] = (),
    now: float = NOW,
    matrix: frozenset[tuple[str, str, str, str, str]] = MATRIX,
) -> World:
    observed = ObservedState({}, {j.key: j for j in jobs}, {}, images=images)
    desired = (desired_image(), desired_image("console"))
    return World.of(observed, {}, now, images=desired, matrix=matrix)


def test_hold_and_release_of_an_image_and_of_every_kernel() -> None:
    hold = HoldPackage(who="ana", why="w", branch="", arch="", pkgname="", image=IMAGE)
    applied = hold.apply(Intents(), world())
    assert applied.intents.image_holds == (
        ImageHold("main", "demo-phone", "demo", "", "ana", "w", NOW),
    )
    assert applied.record is not None and applied.record.target == IMAGE
    assert applied.record.effect == "held: no job of it starts"
    typo = replace(hold, image="main:demo-phone:dmeo").apply(Intents(), world())
    assert typo.record is not None and "(no such image is configured now)" in typo.record.effect
    kernels = (
        ImageHold("main", "demo-phone", "demo", "a", "ana", "w", NOW),
        ImageHold("main", "demo-phone", "demo", "b", "ana", "w", NOW),
    )
    one = ReleasePackage(who="ana", why="w", branch="", arch="", pkgname="", image=f"{IMAGE}:a")
    assert one.apply(Intents(image_holds=kernels), world()).intents.image_holds == kernels[1:]
    every = ReleasePackage(who="ana", why="w", branch="", arch="", pkgname="", image=IMAGE)
    assert every.apply(Intents(image_holds=kernels), world()).intents.image_holds == ()
    none = every.apply(Intents(), world())
    assert none.record is not None and (none.record.outcome, none.record.effect) == (
        "no-op",
        "nothing of it was held",
    )


def test_retry_forgives_the_tries_of_each_failed_slot_of_the_image() -> None:
    request = replace(TARGET, slot="20270115-0800")
    jobs = (
        image_job(JobStatus.FAILED, 1),
        image_job(JobStatus.FAILED, 2),
        image_job(JobStatus.FAILED, 1, request),
        image_job(JobStatus.SUCCESS, 1, replace(TARGET, ui="console")),
    )
    retry = RetryPackage(who="ana", why="flaky", branch="", arch="", pkgname="", image=IMAGE)
    applied = retry.apply(Intents(), world(*jobs))
    assert applied.intents.image_retries == (
        ImageRetry("main", "demo-phone", "demo", "", SLOT, 2, "ana", "flaky", NOW),
        ImageRetry("main", "demo-phone", "demo", "", request.slot, 1, "ana", "flaky", NOW),
    )
    grants = applied.intents
    assert grants.image_retried_after(TARGET.intent("aarch64")) == 2
    assert grants.image_retried_after(replace(TARGET, slot="20270121-0000").intent("aarch64")) == 0
    assert grants.image_retried_after(JobIntent(JobKind.BUILD, ARM, "demo-phone", SLOT)) == 0
    console = replace(retry, image="main:demo-phone:console").apply(Intents(), world(*jobs))
    assert console.record is not None and console.record.outcome == "no-op"
    # A live try is not failing; a try declared dead is.
    live = retry.apply(Intents(), world(image_job(JobStatus.RUNNING, 1)))
    assert live.intents.image_retries == ()


def test_build_image_asks_for_each_kernel_with_a_slot_of_its_own_or_is_refused() -> None:
    build = BuildImage(
        who="ana", why="fix", branch="main", device="demo-phone", ui="demo", kernel=""
    )
    applied = build.apply(Intents(), world())
    (request,) = applied.intents.image_requests
    assert (request.slot, request.kernel) == ("20270115-0800", "")
    assert applied.record is not None and applied.record.outcome == "applied"
    assert (
        applied.record.effect
        == "built now, outside its slot: main:demo-phone:demo as of 20270115-0800"
    )
    # The minute after the newest published directory when this minute has one,
    # and never the slot's own name.
    taken = world(images=(published("20270115-0800"),))
    assert build.apply(Intents(), taken).intents.image_requests[0].slot == "20270115-0801"
    at_start = world(now=1_799_884_800.0)  # 2027-01-14 00:00, the slot's start
    assert build.apply(Intents(), at_start).intents.image_requests[0].slot == "20270114-0001"
    # Asked again: the earlier request is replaced.
    again = build.apply(applied.intents, world(now=NOW + 600))
    assert [r.slot for r in again.intents.image_requests] == ["20270115-0810"]

    for asked, reason in (
        (replace(build, branch="v1"), "branch v1 builds no images"),
        (
            replace(build, device="nope"),
            "device nope is not configured on main (configured: demo-phone)",
        ),
        (
            replace(build, ui="phosh"),
            "demo-phone has no UI phosh on main (configured: console, demo)",
        ),
        (replace(build, kernel="k"), 'demo-phone has no kernel k on main (configured: "")'),
    ):
        refused = asked.apply(Intents(), world())
        assert refused.intents == Intents()
        assert refused.record is not None
        assert (refused.record.outcome, refused.record.effect) == ("refused", reason)
        assert "refused" in refused.events[0].message
    none = build.apply(Intents(), replace(world(matrix=frozenset()), images=()))
    assert none.record is not None and none.record.effect == "no images are configured"
    unbuilt = replace(build, ui="demo").apply(
        Intents(), replace(world(), images=(desired_image("console"),))
    )
    assert unbuilt.record is not None and "configured but not built in this slot" in (
        unbuilt.record.effect
    )


def test_remove_images_is_refused_while_configured_or_with_nothing_published() -> None:
    old = (published("20270101-0000", device="old-phone"), published("20270108-0000"))
    remove = RemoveImages(who="ana", why="EOL", release="edge", device="demo-phone", ui="")
    refused = remove.apply(Intents(), world(images=old))
    assert refused.record is not None and refused.record.outcome == "refused"
    assert refused.record.effect == (
        "edge/demo-phone is still configured: branch main builds demo-phone with UI console,"
        " demo as release edge; take it out of images.devices first"
    )
    ui = replace(remove, ui="demo").apply(Intents(), world(images=old))
    assert ui.record is not None and ui.record.outcome == "refused"
    nothing = replace(remove, device="gone").apply(Intents(), world(images=old))
    assert nothing.record is not None
    assert (nothing.record.outcome, nothing.record.effect) == (
        "refused",
        "nothing is published under edge/gone",
    )
    gone = replace(remove, device="old-phone").apply(Intents(), world(images=old))
    assert gone.intents.image_removals == (
        ImageRemoval("edge", "old-phone", "", "ana", "EOL", NOW),
    )
    assert gone.record is not None and gone.record.target == "images/edge/old-phone"
    assert gone.record.effect == (
        "1 published date directory removed with their logs: demo/20270101-0000"
    )
    assert gone.events[0].kind == "removed"


def test_settle_drops_the_image_requests_that_are_done() -> None:
    request = ImageRequest("main", "demo-phone", "demo", "", "20270115-0800", "ana", "w", NOW)
    removal = ImageRemoval("edge", "old-phone", "", "ana", "w", NOW)
    grant = ImageRetry("main", "demo-phone", "demo", "", SLOT, 1, "ana", "w", NOW)
    intents = Intents(image_requests=(request,), image_removals=(removal,), image_retries=(grant,))
    old = published("20270101-0000", device="old-phone")
    pending = world(image_job(JobStatus.FAILED, 1), images=(old, published("20270115-0759")))
    assert pending.settle(intents) == intents
    done = world(images=(published("20270115-0800"),))
    assert done.settle(intents) == Intents()
    unconfigured = replace(pending, images=())
    assert unconfigured.settle(intents).image_requests == ()
    configured_again = replace(pending, matrix=MATRIX | {("main", "edge", "old-phone", "demo", "")})
    assert configured_again.settle(intents).image_removals == ()
    unreachable = replace(
        pending, observed=replace(pending.observed, jobs={}, job_service_error="down")
    )
    assert unreachable.settle(intents).image_retries == (grant,)


# --- through the command line and the loop --------------------------------------


def test_hold_and_release_an_image_through_the_cli_and_the_loop(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path, job_table: JobTable
) -> None:
    config = image_config(make_config, pmaports)
    done = cli(config, "hold", "--image", IMAGE, "--why", "bad kernel")
    assert done.returncode == 0, done.stderr
    (trigger,) = config.paths.triggers.glob("hold-*.json")
    assert json.loads(trigger.read_text())["image"] == IMAGE
    daemon = fake_daemon(config)
    result = daemon.converge(max_seconds=3600)
    assert result.all_published, "the packages publish"
    status = image_status(result)
    assert status.state is PkgState.HELD
    assert status.reason.startswith("held by ana since ") and status.reason.endswith("bad kernel")
    assert image_jobs(job_table) == []
    (record,) = records(daemon, "hold")
    assert (record.target, record.outcome) == (IMAGE, "applied")
    assert IMAGE in operations_page(config)
    assert daemon.intents.image_holds[0].why == "bad kernel"

    done = cli(config, "release", "--image", IMAGE, "--why", "fixed")
    assert done.returncode == 0, done.stderr
    result = daemon.converge(max_seconds=3600)
    assert image_status(result).state is PkgState.PUBLISHED
    assert len(image_jobs(job_table)) == 1
    (record,) = records(daemon, "release")
    assert (record.target, record.outcome, record.effect) == (IMAGE, "applied", "ended 1 hold(s)")
    assert load_intents(config.paths.durable / "intents.json").image_holds == ()


def test_the_cli_refuses_an_image_with_a_package_or_neither(
    make_config: ConfigFactory, pmaports: Path
) -> None:
    config = image_config(make_config, pmaports)
    both = cli(config, "hold", "--image", IMAGE, "hello", "--why", "w")
    assert both.returncode == 2 and "field 'pkgname': not with 'image'" in both.stderr
    neither = cli(config, "retry", "--why", "w")
    assert neither.returncode == 2
    assert "field 'branch': expected a branch name (or give 'image')" in neither.stderr
    bad = cli(config, "release", "--image", "main:demo-phone", "--why", "w")
    assert bad.returncode == 2 and "field 'image': expected BRANCH:DEVICE:UI" in bad.stderr
    missing = cli(config, "build-image", "--branch", "main", "--device", "x", "--why", "w")
    assert missing.returncode == 2 and "--ui" in missing.stderr
    assert not list(config.paths.triggers.glob("*.json"))


def test_retry_gives_a_failed_image_fresh_tries(
    make_config: ConfigFactory,
    fake_daemon: DaemonFactory,
    pmaports: Path,
    clock: FakeClock,
    job_table: JobTable,
) -> None:
    config = image_config(make_config, pmaports)
    daemon = fake_daemon(config)
    daemon.converge(max_seconds=3600)
    public = config.keys.final_public.read_bytes()
    write_public_key(config.keys.final_public, generate_private_key(2048))  # trusts nothing
    clock.advance(7 * DAY)
    result = daemon.converge(max_seconds=7200)
    status = image_status(result)
    assert (status.state, status.tries) == (PkgState.FAILED, 3)
    config.keys.final_public.write_bytes(public)  # the fix

    done = cli(config, "retry", "--image", IMAGE, "--why", "key fixed")
    assert done.returncode == 0, done.stderr
    result = daemon.converge(max_seconds=3600)
    assert image_status(result).state is PkgState.PUBLISHED
    attempts = sorted(
        k.attempt
        for k in job_table.jobs
        if k.intent.kind is JobKind.IMAGE and k.intent.version.startswith(status.target.slot)
    )
    assert attempts == [1, 2, 3, 4]
    (record,) = records(daemon, "retry")
    assert record.effect == f"fresh tries for {status.target}"
    assert IMAGE in operations_page(config)
    assert daemon.intents.image_retries, "kept while the job service lists the tries"

    again = cli(config, "retry", "--image", IMAGE, "--why", "again")
    assert again.returncode == 0, again.stderr
    daemon.run_pass()
    assert records(daemon, "retry")[0].outcome == "no-op"


def test_fail_job_declares_an_image_job_dead_and_the_image_counts_the_try(
    make_config: ConfigFactory,
    fake_daemon: DaemonFactory,
    pmaports: Path,
    clock: FakeClock,
    job_table: JobTable,
) -> None:
    config = image_config(make_config, pmaports)
    daemon = fake_daemon(config)
    daemon.converge(max_seconds=3600)
    clock.advance(7 * DAY)
    daemon.run_pass(full=True)
    (key,) = [k for k, j in job_table.jobs.items() if j.status.is_live]
    assert key.intent.kind is JobKind.IMAGE
    job_table.jobs[key].ends_at = math.inf  # it hangs

    done = cli(config, "fail-job", key.job_id, "--why", "hung")
    assert done.returncode == 0, done.stderr
    result = daemon.run_pass()
    assert job_table.jobs[key].status is JobStatus.CANCELLED
    status = image_status(result)
    assert status.tries == 1 and status.job_id == key.job_id
    assert "declared dead by ana: hung" in status.reason
    (record,) = records(daemon, "fail-job")
    assert record.effect.startswith("declared dead: cancelled, counts as a failed try of image ")
    result = daemon.converge(max_seconds=3600)
    status = image_status(result)
    assert status.state is PkgState.PUBLISHED
    assert sorted(k.attempt for k in job_table.jobs if k.intent == key.intent) == [1, 2]


def test_build_image_builds_one_now_outside_its_slot_and_then_leaves(
    make_config: ConfigFactory,
    fake_daemon: DaemonFactory,
    pmaports: Path,
    clock: FakeClock,
    job_table: JobTable,
) -> None:
    config = image_config(make_config, pmaports)
    daemon = fake_daemon(config)
    first = daemon.converge(max_seconds=3600)
    slot = image_status(first).target.slot
    (published_first,) = dates(config.paths.images)
    clock.advance(DAY)  # the same slot: nothing would be built

    done = cli(
        config, "build-image", "--branch", "main", "--device", "demo-phone", "--ui", "demo",
        "--why", "new kernel",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = daemon.run_pass()
    (request,) = daemon.intents.image_requests
    assert request.slot > published_first and request.slot != slot
    asked = image_status(result, request.slot)
    assert asked.state is PkgState.BUILDING
    assert asked.reason.endswith("(asked for now by ana: new kernel)")
    assert image_status(result, slot).state is PkgState.PUBLISHED
    (record,) = records(daemon, "build-image")
    assert (record.target, record.outcome) == (IMAGE, "applied")

    result = daemon.converge(max_seconds=3600)
    assert daemon.intents.image_requests == (), "fulfilled: it leaves the intents"
    assert load_intents(config.paths.durable / "intents.json").image_requests == ()
    assert [s.target.slot for s in result.plan.images] == [slot]
    found = dates(config.paths.images)
    assert len(found) == 2 and found[0] == published_first and found[1] >= request.slot
    jobs = [k.intent.version for k in job_table.jobs if k.intent.kind is JobKind.IMAGE]
    assert jobs == [f"{slot}~demo", f"{request.slot}~demo"]
    assert "new kernel" in operations_page(config)

    refused = cli(
        config, "build-image", "--branch", "main", "--device", "demo-phone", "--ui", "phosh",
        "--why", "typo",
    )  # fmt: skip
    assert refused.returncode == 0, "the trigger is valid: the daemon refuses it"
    daemon.run_pass()
    (record,) = [r for r in records(daemon, "build-image") if r.outcome == "refused"]
    assert record.effect == "demo-phone has no UI phosh on main (configured: demo)"
    assert daemon.intents.image_requests == ()


def test_remove_images_of_a_device_no_longer_configured(
    make_config: ConfigFactory,
    fake_daemon: DaemonFactory,
    pmaports: Path,
    clock: FakeClock,
    job_table: JobTable,
) -> None:
    config = image_config(make_config, pmaports)
    daemon = fake_daemon(config)
    daemon.converge(max_seconds=3600)
    (date,) = dates(config.paths.images)
    (job_id,) = image_jobs(job_table)
    log = config.paths.html_out / "logs" / f"{job_id}.log"
    assert log.is_file()

    still = cli(
        config, "remove-images", "--release", "edge", "--device", "demo-phone", "--why", "x"
    )
    assert still.returncode == 0, still.stderr
    daemon.run_pass()
    (record,) = records(daemon, "remove-images")
    assert (record.target, record.outcome) == ("images/edge/demo-phone", "refused")
    assert record.effect.startswith("edge/demo-phone is still configured: branch main builds")
    assert dates(config.paths.images) == [date] and daemon.intents.image_removals == ()

    gone = image_config(make_config, pmaports, extra="")  # no images: section at all
    daemon = fake_daemon(gone)
    daemon.run_pass(full=True)
    assert dates(gone.paths.images) == [date], "kept until an operator removes them"
    done = cli(
        gone, "remove-images", "--release", "edge", "--device", "demo-phone", "--ui", "demo",
        "--why", "EOL",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = daemon.run_pass()
    (removed,) = [o for o in result.outcomes if "from the images tree" in o.message]
    assert removed.ok, removed.message
    assert not (gone.paths.images / "edge").exists(), "the empty device and release go too"
    assert not log.exists(), "with the site's copy of its job's log"
    assert not [p for p in gone.paths.images.iterdir() if p.name.startswith(".trash")]
    record = records(daemon, "remove-images")[0]  # the newest
    assert record.effect == f"1 published date directory removed with their logs: demo/{date}"
    assert "images/edge/demo-phone/demo" in operations_page(gone)
    daemon.run_pass()
    assert daemon.intents.image_removals == (), "nothing left: the request is done"
    nothing = cli(
        gone, "remove-images", "--release", "edge", "--device", "demo-phone", "--why", "y"
    )
    assert nothing.returncode == 0
    daemon.run_pass()
    assert (
        records(daemon, "remove-images")[0].effect == "nothing is published under edge/demo-phone"
    )


def test_a_removal_that_meets_the_device_configured_again_removes_nothing(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config = image_config(make_config, pmaports)
    fake_daemon(config).converge(max_seconds=3600)
    (date,) = dates(config.paths.images)
    intents = Intents(image_removals=(ImageRemoval("edge", "demo-phone", "", "ana", "w", NOW),))
    save_intents(config.paths.durable / "intents.json", intents)  # asked while it was gone
    daemon = fake_daemon(config)
    result = daemon.run_pass(full=True)
    assert not [o for o in result.outcomes if "from the images tree" in o.message]
    assert dates(config.paths.images) == [date]
    assert daemon.intents.image_removals == (), "configured again: the request is void"


def test_a_malformed_image_trigger_is_rejected_naming_the_field(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config = image_config(make_config, pmaports)
    triggers = config.paths.triggers
    triggers.mkdir(parents=True, exist_ok=True)
    bad = {
        "a.json": ({"type": "build-image", "branch": "main", "ui": "demo"}, "field 'device'"),
        "b.json": ({"type": "hold", "image": "main:demo-phone"}, "field 'image'"),
        "c.json": ({"type": "remove-images", "release": "edge", "device": 3}, "field 'device'"),
        "d.json": ({"type": "retry", "image": IMAGE, "pkgname": "x"}, "field 'pkgname'"),
    }
    for name, (data, _) in bad.items():
        (triggers / name).write_text(json.dumps({**WHO, **data}), encoding="utf-8")
    daemon = fake_daemon(config)
    daemon.run_pass(full=True)
    for name, (_, field) in bad.items():
        reason = (triggers / "rejected" / f"{name}.reason").read_text(encoding="utf-8")
        assert name in reason and field in reason, reason
    assert daemon.intents == Intents() and daemon.operations.recent() == ()
