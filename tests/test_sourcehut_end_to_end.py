"""The sample tree published through the sourcehut job service, with faults on a third
of the calls to the fake builds.sr.ht: the same final repositories as the local
backend (tests/test_end_to_end.py's expectations), and no intent submitted twice."""

from __future__ import annotations

import shutil
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.config.settings import load_config
from reconciler.jobs.factory import make_job_service
from reconciler.jobs.sourcehut.service import SourcehutJobService
from reconciler.loop import Daemon

from .apkcheck import read_index, verifies
from .fake_sourcehut import SOURCE, TOKEN, FakeSourcehut, checked_fake
from .sample_tree import check_final, expected_files
from .sourcehut_helpers import SECRET


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeSourcehut]:
    with checked_fake(tmp_path / "fake", page_size=5) as server:
        yield server


def test_sample_tree_publishes_through_sourcehut_despite_faults(
    fake: FakeSourcehut, tmp_path: Path, pmaports: Path, key_files: Path
) -> None:
    data = tmp_path / "data"
    # The operator made the final key pair with the signer, as the README says; the
    # daemon never makes one for builds.sr.ht.
    shutil.copytree(key_files, data / "keys")
    (tmp_path / "token").write_text(TOKEN + "\n")
    config_path = tmp_path / "config.yaml"
    config_path.write_text(
        textwrap.dedent(
            f"""\
            paths:
              data: {data}
              html_out: {tmp_path}/html
            branches:
              - name: main
                pmaports: {pmaports}
                arches: [x86_64, aarch64, armv7]
            jobs:
              service: sourcehut
              max_parallel: 4
              sourcehut:
                endpoint: {fake.url}/query
                user: ops
                token_file: {tmp_path}/token
                final_key_secret: {SECRET}
                final_key_path: "~/.final.rsa"
                reconciler_source: {SOURCE}
                wip_url: {fake.url}/repo/wip
                final_url: {fake.url}/repo/final
                symlink_url: {fake.url}/repo/symlink
                poll_interval_seconds: 0
                read_timeout_seconds: 0.15
            builder: {{duration_seconds: 0}}
            retries: {{backoff_seconds: 0.05, backoff_max_seconds: 0.2}}
            loop: {{poll_interval_seconds: 0.1, settle_seconds: 0}}
            """
        )
    )
    config = load_config(config_path)
    jobs = make_job_service(config, sleep=lambda seconds: None)  # retries without waiting
    assert isinstance(jobs, SourcehutJobService)
    daemon = Daemon(config, jobs=jobs)
    fake.static = {
        "repo/wip": config.paths.wip_repo,
        "repo/final": config.paths.final_repo,
        "repo/symlink": config.paths.symlink_repo,
    }
    # The final private key lives only with the job service, as a secret file.
    fake.secret_files[SECRET] = ("~/.final.rsa", config.keys.final_private.read_bytes())
    fake.fault_rate = 1 / 3
    fake.hold_seconds = 0.2  # a "timeout" fault answers after the client gave up

    deadline = time.monotonic() + 240
    errors = 0
    full = True  # the first pass lists everything, as at a daemon's start
    while True:
        result = daemon.run_pass(full=full)
        full = False
        errors += bool(result.job_service_error)
        if result.all_published and not result.job_service_error:
            break
        assert time.monotonic() < deadline, result.plan.repos
        if not result.progressed:
            time.sleep(0.05)  # jobs are running on the fake; poll again
    fake.fault_rate = 0

    final_pub = config.keys.final_public.read_bytes()
    wip_pub = config.keys.wip_public.read_bytes()
    for arch in ("x86_64", "aarch64", "armv7"):
        for splitrepo, prefix in (("", ""), ("systemd", "extra-repos/systemd/")):
            final_dir = config.paths.final_repo / f"{prefix}main/{arch}"
            check_final(final_dir, expected_files(pmaports, arch, splitrepo), final_pub, wip_pub)
            wip_index = config.paths.wip_repo / f"{prefix}main/{arch}" / "APKINDEX.tar.gz"
            assert verifies(read_index(wip_index), wip_pub)

    intents = Counter(tags.rsplit("/", 1)[0] for tags in fake.submitted_keys())
    assert intents and max(intents.values()) == 1, "an intent was submitted twice"
    assert all(tags.endswith("/1") for tags in fake.submitted_keys()), "no try failed"
    assert any(call.startswith("fault") for call in fake.calls)
