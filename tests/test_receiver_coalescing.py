"""Pushes coalesced per branch over the settle window, over real HTTP: at most one
trigger per branch per window, and the latest push is always written within it.
And the coalescer itself (shared with look-now), with real timers.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.hooks.coalesce import PRUNE_ABOVE, Coalescer
from reconciler.hooks.tokens import TokenStore
from reconciler.hooks.webhook import ROUTE, WebhookSettings
from reconciler.operator.trigger_dir import TriggerDir

from .conftest import wait_until
from .receiver_helpers import serving

WINDOW = 2.0


@dataclass
class Pusher:
    port: int
    token: str
    triggers: Path

    def push(self, branch: str, after: str, conn: http.client.HTTPConnection | None = None) -> str:
        """One push over `conn` (kept alive) or a new connection; the answer's text."""
        event = {
            "object_kind": "push",
            "ref": f"refs/heads/{branch}",
            "before": "a" * 40,
            "after": after,
        }
        headers = {"X-Gitlab-Token": self.token, "X-Gitlab-Event": "Push Hook"}
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", ROUTE, body=json.dumps(event).encode(), headers=headers)
            response = conn.getresponse()
            text = response.read().decode()
            assert response.status == 200, text
            return text.strip()
        finally:
            if own:
                conn.close()

    def afters(self, branch: str) -> list[str]:
        """The `after` of each trigger for `branch`, in the order the daemon reads them."""
        found = TriggerDir(self.triggers).drain()
        return [t.data["after"] for t in found if t.type == "push" and t.data["branch"] == branch]


def sha(n: int) -> str:
    return f"{n:040x}"


@pytest.fixture
def pusher(tmp_path: Path) -> Iterator[Pusher]:
    store = TokenStore(tmp_path / "state" / "tokens.json")
    token = store.create("push-hook")
    settings = WebhookSettings(
        token_store=store.path,
        trigger_dir=tmp_path / "triggers",
        branches=("main", "v25.12"),
        settle_seconds=WINDOW,
    )
    with serving(settings) as port:
        yield Pusher(port, token, settings.trigger_dir)


def test_a_burst_for_one_branch_is_at_most_two_triggers_ending_with_the_last_push(
    pusher: Pusher,
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", pusher.port, timeout=30)
    started = time.monotonic()
    answers = [pusher.push("main", sha(i), conn) for i in range(1, 201)]
    last_push = time.monotonic()
    elapsed = last_push - started
    conn.close()
    assert answers[0] == "accepted main: written"
    assert set(answers[1:]) <= {"accepted main: scheduled", "accepted main: coalesced"}
    # One write at once, one per window the burst spanned, one at the end.
    most = 2 + int(elapsed // WINDOW)
    wait_until(lambda: sha(200) in pusher.afters("main"), timeout=WINDOW + 10)
    assert time.monotonic() - last_push < WINDOW + 1.0  # within the window (and slack)
    afters = pusher.afters("main")
    assert len(afters) <= most, (len(afters), elapsed)
    assert afters[0] == sha(1) and afters[-1] == sha(200)
    time.sleep(WINDOW * 0.6)  # nothing more comes
    assert pusher.afters("main") == afters


def test_pushes_for_two_branches_are_a_trigger_each(pusher: Pusher) -> None:
    assert pusher.push("main", sha(1)) == "accepted main: written"
    assert pusher.push("v25.12", sha(2)) == "accepted v25.12: written"
    assert (pusher.afters("main"), pusher.afters("v25.12")) == ([sha(1)], [sha(2)])
    # More for each inside the window: one more trigger each, with the latest push.
    threads = [
        threading.Thread(target=pusher.push, args=(branch, sha(n)))
        for n in range(3, 23)
        for branch in ("main", "v25.12")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    pusher.push("main", sha(100))
    pusher.push("v25.12", sha(200))
    wait_until(lambda: len(pusher.afters("main")) + len(pusher.afters("v25.12")) == 4, WINDOW + 10)
    assert pusher.afters("main") == [sha(1), sha(100)]
    assert pusher.afters("v25.12") == [sha(2), sha(200)]


def test_a_push_after_the_window_is_written_at_once(pusher: Pusher) -> None:
    assert pusher.push("main", sha(1)) == "accepted main: written"
    time.sleep(WINDOW + 0.1)
    assert pusher.push("main", sha(2)) == "accepted main: written"
    assert pusher.afters("main") == [sha(1), sha(2)]


# --- the coalescer ---------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writes: list[tuple[str, int]] = []

    def __call__(self, key: str, value: int) -> None:
        with self.lock:
            self.writes.append((key, value))

    def of(self, key: str) -> list[int]:
        with self.lock:
            return [v for k, v in self.writes if k == key]


def test_the_coalescer_writes_at_once_then_once_per_window_with_the_latest() -> None:
    written = Recorder()
    coalescer = Coalescer(0.3, written)
    assert [coalescer.offer("a", n) for n in range(1, 5)] == [
        "written",
        "scheduled",
        "coalesced",
        "coalesced",
    ]
    assert coalescer.offer("b", 10) == "written"  # keys are independent
    assert written.of("a") == [1] and coalescer.pending() == 1
    wait_until(lambda: written.of("a") == [1, 4], timeout=5)
    assert coalescer.pending() == 0
    assert coalescer.offer("a", 5) == "scheduled"  # the window restarted at the last write
    wait_until(lambda: written.of("a") == [1, 4, 5], timeout=5)
    coalescer.close()


def test_closing_writes_what_is_pending_and_later_offers_at_once() -> None:
    written = Recorder()
    coalescer = Coalescer(60.0, written)
    coalescer.offer("a", 1)
    coalescer.offer("a", 2)
    coalescer.offer("b", 3)
    coalescer.offer("b", 4)
    coalescer.close()
    assert sorted(written.writes) == [("a", 1), ("a", 2), ("b", 3), ("b", 4)]
    assert coalescer.offer("a", 5) == "written"
    assert written.of("a") == [1, 2, 5]
    time.sleep(0.1)
    assert len(written.writes) == 5  # the cancelled timers wrote nothing more


def test_a_failed_write_at_once_raises_and_a_deferred_one_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts: list[int] = []

    def failing(_key: str, value: int) -> None:
        attempts.append(value)
        raise OSError("disk full")

    coalescer = Coalescer(0.2, failing, name="test")
    with pytest.raises(OSError):
        coalescer.offer("a", 1)
    with pytest.raises(OSError):
        coalescer.offer("a", 2)  # nothing was written, so nothing to wait for
    caplog.set_level(logging.ERROR)
    coalescer = Coalescer(0.2, Recorder())
    coalescer.offer("a", 1)
    coalescer._write = failing  # the disk fills up
    coalescer.offer("a", 2)
    wait_until(lambda: 2 in attempts, timeout=5)
    wait_until(lambda: any("cannot write" in r.getMessage() for r in caplog.records), timeout=5)
    coalescer.close()


def test_keys_idle_for_a_window_are_forgotten_once_there_are_many() -> None:
    coalescer = Coalescer(0.0, Recorder())
    for n in range(PRUNE_ABOVE * 3):
        assert coalescer.offer(f"branch-{n}", n) == "written"
    assert len(coalescer._keys) <= PRUNE_ABOVE + 1
