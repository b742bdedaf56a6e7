"""The job-end routes of the webhook receiver over real HTTP on 127.0.0.1, and the
manifest side: a job's last task calls back with the token from its secret file
(run for real by the fake builds.sr.ht, with curl), never naming the token.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml

from reconciler.config.settings import load_config
from reconciler.hooks.jobend import CALLBACK_HEADER, CALLBACK_ROUTE, LOOK_NOW_NAME, LOOK_NOW_ROUTE
from reconciler.hooks.tokens import TokenStore
from reconciler.hooks.webhook import WebhookSettings
from reconciler.jobs.sourcehut.manifest import build_submission
from reconciler.model.errors import ConfigError
from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobStatus
from reconciler.model.names import RepoKey
from reconciler.operator.trigger_dir import TriggerDir
from reconciler.operator.triggers import parse_trigger

from .conftest import wait_until
from .fake_sourcehut import SOURCE, FakeSourcehut, checked_fake
from .receiver_helpers import serving
from .sourcehut_helpers import (
    APKS,
    make_service,
    manifests,
    settled,
    sourcehut_config,
    spec,
)

CALLBACK_SECRET = "99999999-8888-7777-6666-555544443333"
JOB = "build@main@main@x86_64@hello@1.0-r0@1"
WINDOW = 1.0


@dataclass
class Receiver:
    port: int
    token: str
    triggers: Path

    def post(
        self, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def callback(self, token: str | None, body: bytes = b"") -> tuple[int, str]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers[CALLBACK_HEADER] = token
        return self.post(CALLBACK_ROUTE, body, headers)

    def files(self) -> list[Path]:
        return sorted(p for p in self.triggers.iterdir() if p.is_file())


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeSourcehut]:
    with checked_fake(tmp_path / "fake", page_size=2) as server:
        yield server


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    store = TokenStore(tmp_path / "state" / "tokens.json")
    store.create("push-hook")
    token = store.create("job-callback")
    settings = WebhookSettings(
        token_store=store.path,
        trigger_dir=tmp_path / "triggers",
        branches=("main",),
        look_now_interval_seconds=WINDOW,
    )
    with serving(settings) as port:
        yield Receiver(port, token, settings.trigger_dir)


def test_a_good_callback_writes_exactly_one_wake_trigger(receiver: Receiver) -> None:
    status, text = receiver.callback(receiver.token, json.dumps({"job": JOB}).encode())
    assert status == 200, text
    (path,) = receiver.files()
    trigger = parse_trigger(path.name, path.read_bytes())
    assert trigger.type == "wake"
    assert trigger.data["job"] == JOB and trigger.data["source"] == "job-callback"
    assert receiver.token not in path.read_text()
    assert [t.type for t in TriggerDir(receiver.triggers).drain()] == ["wake"]


@pytest.mark.parametrize("token", [None, "", "wrong", "push-hook"])
def test_a_missing_or_wrong_callback_token_is_401_without_a_file(
    receiver: Receiver, token: str | None
) -> None:
    status, text = receiver.callback(token, b'{"job": "x"}')
    assert (status, text) == (401, "unauthorized\n")
    assert receiver.files() == []


def test_the_push_hook_token_does_not_open_the_callback(receiver: Receiver, tmp_path: Path) -> None:
    push_token = TokenStore(tmp_path / "state" / "tokens.json").create("push-hook")
    assert receiver.callback(push_token)[0] == 401
    assert receiver.files() == []


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"not json", 400), (b"[1]", 400), (b'{"job": "../x"}', 400), (b"x" * 5000, 413)],
)
def test_a_bad_callback_body_is_refused_without_a_file(
    receiver: Receiver, body: bytes, status: int
) -> None:
    assert receiver.callback(receiver.token, body)[0] == status
    assert receiver.files() == []


def test_other_methods_on_the_job_routes_are_405(receiver: Receiver) -> None:
    for route in (CALLBACK_ROUTE, LOOK_NOW_ROUTE):
        conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=30)
        try:
            conn.request("GET", route)
            assert conn.getresponse().status == 405
        finally:
            conn.close()
    assert receiver.files() == []


def test_look_now_is_rate_limited_and_coalesced(receiver: Receiver) -> None:
    body = json.dumps({"id": 1, "status": "failed"}).encode()
    answers = [receiver.post(LOOK_NOW_ROUTE, body) for _ in range(30)]
    assert {status for status, _ in answers} == {202}
    texts = [text.strip() for _, text in answers]
    assert texts[0] == "look-now: written"
    assert set(texts[1:]) <= {"look-now: scheduled", "look-now: coalesced"}
    (path,) = receiver.files()
    assert path.name == LOOK_NOW_NAME
    first = path.stat().st_ino
    assert parse_trigger(path.name, path.read_bytes()).type == "wake"
    # The pokes inside the window end in one more file when the window closes.
    wait_until(lambda: path.exists() and path.stat().st_ino != first, timeout=10 * WINDOW)
    assert receiver.files() == [path]


# --- the manifest side ----------------------------------------------------------------


def test_manifests_call_back_without_ever_naming_the_token(
    fake: FakeSourcehut, tmp_path: Path
) -> None:
    settings = replace(
        manifests(fake, tmp_path),
        callback_url="https://build.example.org/api/job-callback",
        callback_secret=CALLBACK_SECRET,
        look_now_url="https://build.example.org/api/look-now",
    )
    build_key = JobKey(JobIntent(JobKind.BUILD, RepoKey("main", "", "x86_64"), "a", "1-r0"), 1)
    sign_key = JobKey(JobIntent(JobKind.SIGN, RepoKey("main", "", "x86_64"), "", "ab" * 32), 1)
    for job_key in (build_key, sign_key):
        sub = build_submission(spec(job_key, APKS), settings)
        manifest = yaml.safe_load(sub.manifest)
        assert sub.secrets and CALLBACK_SECRET in manifest["secrets"]
        last = manifest["tasks"][-1]
        assert list(last) == ["callback"]
        assert last["callback"].startswith("set +x\n")
        assert "-H @" in last["callback"] and "curl" in manifest["packages"]
        assert manifest["triggers"] == [
            {
                "action": "webhook",
                "condition": "failure",
                "url": "https://build.example.org/api/look-now",
            }
        ]
        assert len(manifest["artifacts"]) == 1
    build = yaml.safe_load(build_submission(spec(build_key, APKS), settings).manifest)
    assert build["secrets"] == [CALLBACK_SECRET]  # never the final key


def test_a_job_calls_back_with_its_secret_token(
    fake: FakeSourcehut, tmp_path: Path, receiver: Receiver
) -> None:
    """The fake runs the tasks for real: curl posts with the token from the secret file."""
    service = make_service(fake, tmp_path)
    service.manifests = replace(
        service.manifests,
        callback_url=f"http://127.0.0.1:{receiver.port}{CALLBACK_ROUTE}",
        callback_secret=CALLBACK_SECRET,
    )
    fake.secret_files[CALLBACK_SECRET] = ("~/.reconciler-callback-token", receiver.token.encode())
    job_key = JobKey(JobIntent(JobKind.BUILD, RepoKey("main", "", "x86_64"), "hello", "1.0-r0"), 1)
    service.submit(spec(job_key, APKS))
    assert settled(service, job_key).status is JobStatus.SUCCESS
    (job,) = fake.jobs.values()
    assert receiver.token not in job.manifest_text and receiver.token not in job.log
    (path,) = receiver.files()
    assert json.loads(path.read_text())["job"] == job_key.job_id


def test_the_callback_settings_are_read_and_checked(tmp_path: Path) -> None:
    base = (
        "user: ops\ntoken_file: token\nfinal_key_secret: 0a1b2c3d-0000-1111-2222-333344445555\n"
        f"reconciler_source: {SOURCE}\nwip_url: https://x/repo/wip\n"
        "final_url: https://x/repo/final\nsymlink_url: https://x/repo/symlink\n"
    )
    sh = load_config(sourcehut_config(tmp_path, base)).jobs.sourcehut
    assert sh is not None and (sh.callback_url, sh.look_now_url, sh.callback_secret) == ("", "", "")
    good = base + (
        f"callback_url: https://x/api/job-callback\ncallback_secret: {CALLBACK_SECRET}\n"
        "look_now_url: https://x/api/look-now\n"
    )
    sh = load_config(sourcehut_config(tmp_path, good)).jobs.sourcehut
    assert sh is not None
    assert (sh.callback_url, sh.callback_secret) == ("https://x/api/job-callback", CALLBACK_SECRET)
    assert sh.look_now_url == "https://x/api/look-now"
    bad = base + "callback_url: https://x/api/job-callback\nlook_now_url: ftp://x\n"
    with pytest.raises(ConfigError) as caught:
        load_config(sourcehut_config(tmp_path, bad + "callback_secret: nope\n"))
    assert "callback_secret: expected a secret's UUID" in str(caught.value)
    assert "look_now_url: expected an http:// or https:// URL" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        load_config(sourcehut_config(tmp_path, bad.replace("ftp://x", "https://x")))
    assert "callback_url: needs callback_secret" in str(caught.value)
