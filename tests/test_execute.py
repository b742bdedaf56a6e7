"""Execute on a temporary directory: each action does what it carries, inside its own
error boundary, with real apks, real keys and the in-memory job service.

A refused input (a result that lies, a signature that does not verify) is an
unsuccessful Outcome with its reason, remembered for the next plan, and leaves
the published repository as it was; the actions after it still run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.config.settings import Config, load_config
from reconciler.execute.executor import Executor
from reconciler.execute.images import ImageStore
from reconciler.execute.repos import RepoStore, SigningKeys
from reconciler.formats.apkwrite import build_apk
from reconciler.formats.keys import generate_private_key
from reconciler.fs.apkfiles import read_apk
from reconciler.fs.keyfiles import (
    load_private_key,
    load_public_key,
    write_private_key,
    write_public_key,
)
from reconciler.memory.cache import Memory
from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation, JobStatus
from reconciler.model.layout import INDEX_NAME, RepoRoots
from reconciler.model.names import RepoKey
from reconciler.model.packages import ApkInfo, PkgSpec
from reconciler.plan.actions import (
    Action,
    BuildIndex,
    CollectBuild,
    MirrorFinal,
    PublishFinal,
    ReindexWip,
    RemoveBranch,
    SubmitBuild,
    SubmitSign,
    WriteSymlinkRepo,
)

from .apkcheck import read_index, verifies
from .fake_clock import FakeClock
from .memory_jobs import InMemoryJobService, JobTable

X86 = RepoKey("main", "", "x86_64")


@dataclass
class World:
    config: Config
    store: RepoStore
    memory: Memory
    jobs: InMemoryJobService
    clock: FakeClock
    executor: Executor

    def apply(self, *actions: Action) -> list[tuple[bool, str]]:
        return [(o.ok, o.message) for o in self.executor.apply(actions)]

    def wip(self, info: ApkInfo) -> Path:
        return self.store.wip_dir(X86) / info.filename


def apks_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.apk"))


def apk_file(directory: Path, name: str, version: str = "1-r0") -> ApkInfo:
    directory.mkdir(parents=True, exist_ok=True)
    data = build_apk(pkgname=name, version=version, arch="x86_64", origin=name, files={})
    (directory / f"{name}-{version}.apk").write_bytes(data)
    return read_apk(directory / f"{name}-{version}.apk")


@pytest.fixture
def world(tmp_path: Path) -> World:
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("wip.rsa", "final.rsa"):
        key = generate_private_key(1024)
        write_private_key(keys / name, key)
        write_public_key(keys / f"{name}.pub", key)
    (tmp_path / "config.yaml").write_text(
        f"paths: {{data: {tmp_path}/data, html_out: {tmp_path}/html}}\n"
        f"branches:\n  - {{name: main, pmaports: {tmp_path}/tree, arches: [x86_64]}}\n"
        "mirror: {rsync: 'rsync://127.0.0.1:1/nowhere/', retry_seconds: 60}\n"
        f"keys: {{wip_private: {keys}/wip.rsa, final_public: {keys}/final.rsa.pub,"
        f" final_private: {keys}/final.rsa, generate_missing: false}}\n"
    )
    config = load_config(tmp_path / "config.yaml")
    paths = config.paths
    roots = RepoRoots(paths.wip_repo, paths.final_repo, paths.symlink_repo)
    wip, final = load_private_key(keys / "wip.rsa"), load_public_key(keys / "final.rsa.pub")
    signing = SigningKeys(wip, "wip.rsa.pub", final, config.keys.final_name)
    store, memory, clock = RepoStore(roots, signing), Memory(paths.state), FakeClock()
    jobs = InMemoryJobService(JobTable(tmp_path / "jobs"), clock)
    images = ImageStore(paths.images, paths.html_out / "logs")
    executor = Executor(config, jobs, store, memory, clock, images)
    return World(config, store, memory, jobs, clock, executor)


def sign_and_publish(world: World, infos: tuple[ApkInfo, ...]) -> list[tuple[bool, str]]:
    """The publish rungs of one repository: index to sign, sign job, publish."""
    ok, message = world.apply(WriteSymlinkRepo(X86, infos, (), "c0ffee"))[0]
    assert ok, message
    unsigned = (world.store.symlink_dir(X86) / INDEX_NAME).read_bytes()
    sha = hashlib.sha256(unsigned).hexdigest()
    key = JobKey(JobIntent(JobKind.SIGN, X86, "", sha), 1)
    assert world.apply(SubmitSign(key)) == [(True, f"submitted sign job {key.job_id}")]
    (signed,) = [o for k, o in world.jobs.list_jobs().items() if k == key]
    assert signed.status is JobStatus.SUCCESS, signed.reason
    return world.apply(PublishFinal(X86, signed, sha))


def test_reindex_writes_a_wip_index_of_exactly_the_apks_it_carries(world: World) -> None:
    a = apk_file(world.store.wip_dir(X86), "a")
    apk_file(world.store.wip_dir(X86), "stray")
    assert world.apply(ReindexWip(X86, (a,))) == [(True, "reindexed WIP main/x86_64")]
    index = read_index(world.store.wip_dir(X86) / INDEX_NAME)
    assert [e["P"] for e in index.entries] == ["a"]
    assert verifies(index, world.config.keys.wip_public.read_bytes())


def test_a_signed_index_is_published_and_verifies_with_the_final_key(world: World) -> None:
    a, b = apk_file(world.store.wip_dir(X86), "a"), apk_file(world.store.wip_dir(X86), "b")
    (published,) = sign_and_publish(world, (a, b))
    assert published == (True, "published main/x86_64, removed 0 old apk(s)")
    final = world.store.final_dir(X86)
    index = read_index(final / INDEX_NAME)
    assert verifies(index, world.config.keys.final_public.read_bytes())
    assert sorted(p.name for p in final.glob("*.apk")) == ["a-1-r0.apk", "b-1-r0.apk"]


def test_a_signature_that_does_not_verify_is_refused_and_nothing_is_published(
    world: World, tmp_path: Path
) -> None:
    impostor = generate_private_key(1024)
    write_private_key(world.config.keys.final_private, impostor)  # the sign job's key is wrong
    a = apk_file(world.store.wip_dir(X86), "a")
    (published,) = sign_and_publish(world, (a,))
    ok, message = published
    assert not ok and message.startswith("signed index refused:")
    assert not (world.store.final_dir(X86) / INDEX_NAME).exists()
    assert apks_in(world.store.final_dir(X86)) == []
    (job_id,) = world.memory.rejected
    assert job_id.startswith("sign@") and world.memory.rejected[job_id] == message


def test_a_symlink_repository_of_a_vanished_apk_is_refused_and_the_next_action_runs(
    world: World,
) -> None:
    a = apk_file(world.store.wip_dir(X86), "a")
    world.wip(a).unlink()
    b = apk_file(world.store.wip_dir(X86), "b")
    got = world.apply(WriteSymlinkRepo(X86, (a,), (), ""), ReindexWip(X86, (b,)))
    assert got == [
        (False, "a-1-r0.apk disappeared before it could be indexed"),
        (True, "reindexed WIP main/x86_64"),
    ]


def test_the_symlink_repository_changes_by_one_link_for_one_new_apk(world: World) -> None:
    """An unchanged link keeps its inode (nothing rewritten), a new apk adds one
    link, an apk the index drops loses its link; the index lists exactly the links."""
    symlinks = world.store.symlink_dir(X86)
    a, b = apk_file(world.store.wip_dir(X86), "a"), apk_file(world.store.wip_dir(X86), "b")
    assert world.apply(WriteSymlinkRepo(X86, (a, b), (), ""))[0][0]
    inodes = {p.name: p.lstat().st_ino for p in symlinks.glob("*.apk")}
    c = apk_file(world.store.wip_dir(X86), "c")
    assert world.apply(WriteSymlinkRepo(X86, (a, b, c), (), ""))[0][0]
    after = {p.name: p.lstat().st_ino for p in symlinks.glob("*.apk")}
    assert {n: after[n] for n in inodes} == inodes and after.keys() - inodes == {"c-1-r0.apk"}
    assert world.apply(WriteSymlinkRepo(X86, (a, c), (), ""))[0][0]
    assert apks_in(symlinks) == ["a-1-r0.apk", "c-1-r0.apk"]
    assert [e["P"] for e in read_index(symlinks / INDEX_NAME).entries] == ["a", "c"]
    assert all(p.resolve() == world.wip(read_apk(p)) for p in symlinks.glob("*.apk"))
    assert sorted(p.name for p in symlinks.iterdir()) == [INDEX_NAME, "a-1-r0.apk", "c-1-r0.apk"]


def test_a_build_whose_results_lie_is_refused_and_remembered(world: World, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    apk_file(artifacts, "a", "9-r0")  # the job was to build a 1-r0
    key = JobKey(JobIntent(JobKind.BUILD, X86, "a", "1-r0"), 1)
    job = JobObservation(key, JobStatus.SUCCESS, 0.0, 1.0, artifacts_dir=str(artifacts))
    spec = PkgSpec(X86, "a", "1-r0", "main/a", "x86_64")
    ((ok, message),) = world.apply(CollectBuild(job, spec))
    assert not ok and "version is '9-r0', expected '1-r0'" in message
    assert world.memory.rejected == {key.job_id: f"results refused: {message}"}
    assert apks_in(world.store.wip_dir(X86)) == []


def test_a_build_is_submitted_with_the_indexes_it_carries_and_never_twice(world: World) -> None:
    key = JobKey(JobIntent(JobKind.BUILD, X86, "a", "1-r0"), 1)
    spec = PkgSpec(X86, "a", "1-r0", "main/a", "x86_64")
    indexes = (BuildIndex(X86, False, False), BuildIndex(X86, True, False))
    action = SubmitBuild(key, spec, indexes, (), "c0ffee", "/tree")
    assert world.apply(action, action) == [
        (True, f"submitted {key.job_id}"),
        (True, f"submitted {key.job_id}"),  # it exists: re-attached, not made again
    ]
    assert world.jobs.table.submits == 1
    world.clock.advance(60)  # the synthetic build takes its builder.duration_seconds
    assert world.jobs.list_jobs()[key].status is JobStatus.SUCCESS


def test_a_failed_mirror_copy_is_remembered_for_the_plan(world: World) -> None:
    a = apk_file(world.store.wip_dir(X86), "a")
    sign_and_publish(world, (a,))
    ((ok, message),) = world.apply(MirrorFinal(X86, "s" * 64))
    assert not ok and message.startswith("mirror of main/x86_64:")
    assert world.memory.mirror_failures == {"main/x86_64": pytest.approx(world.clock.now, abs=1)}
    assert world.memory.mirrored == {}


def test_removing_a_branch_takes_its_repositories_and_its_checkout(
    world: World, tmp_path: Path
) -> None:
    old = RepoKey("old_staging_x", "", "x86_64")
    apk_file(world.store.wip_dir(old), "a")
    apk_file(world.store.final_dir(old), "a")
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    kept = apk_file(world.store.final_dir(X86), "kept")
    got = world.apply(RemoveBranch("old_staging_x", (), str(checkout), "deleted on the remote"))
    assert got == [(True, "removed the repositories of old_staging_x: deleted on the remote")]
    assert not world.store.final_dir(old).exists() and not world.store.wip_dir(old).exists()
    assert not checkout.exists()
    assert (world.store.final_dir(X86) / kept.filename).is_file()
