"""1,000 random and malformed trigger files thrown at a running daemon."""

from __future__ import annotations

import json
import random

from .conftest import ConfigFactory, DaemonFactory


def garbage(rng: random.Random, index: int) -> bytes:
    kind = index % 8
    if kind == 0:
        return rng.randbytes(rng.randint(0, 300))
    if kind == 1:
        return b"[" * rng.randint(1, 60_000)
    if kind == 2:
        return json.dumps(rng.choice([None, 1, "x", [], [1, 2]])).encode()
    if kind == 3:
        return json.dumps({"type": rng.choice(["", "nuke", 5, None, "Push"])}).encode()
    if kind == 4:
        bad = rng.choice(["../x", "a/b", "", "x\ny", "a;rm -rf /", 7])
        return json.dumps({"type": "push", "branch": bad}).encode()
    if kind == 5:
        return json.dumps(
            {"type": "hold", "branch": "main", "pkgname": "../../x", "who": "w", "why": "y"}
        ).encode()
    if kind == 6:
        return json.dumps(
            {"type": "retry", "branch": "main", "pkgname": "foo", "who": "w", "why": ""}
        ).encode()
    return b'{"type": "push", "branch": "main"' + rng.randbytes(5)


def test_a_flood_of_bad_triggers_is_rejected_with_reasons(
    make_config: ConfigFactory, fake_daemon: DaemonFactory
) -> None:
    config = make_config()
    daemon = fake_daemon(config)
    assert daemon.converge(max_seconds=120).all_published
    rng = random.Random(1234)
    triggers = config.paths.triggers
    names = []
    for index in range(1000):
        name = f"flood-{index:04d}.json"
        (triggers / name).write_bytes(garbage(rng, index))
        names.append(name)
    result = daemon.run_pass()  # must not raise
    assert all(o.ok for o in result.outcomes)
    rejected = triggers / "rejected"
    for name in names:
        assert (rejected / name).is_file(), name
        reason = (rejected / f"{name}.reason").read_text()
        assert reason.startswith(f"{name}: "), reason
        assert ("field '" in reason) or ("JSON" in reason) or ("larger than" in reason), reason
    assert not list(triggers.glob("flood-*"))

    good = triggers / ".hold.tmp"
    good.write_text(
        json.dumps(
            {"type": "hold", "branch": "main", "pkgname": "foo-gui", "who": "ops", "why": "test"}
        )
    )
    good.rename(triggers / "hold.json")
    result = daemon.run_pass()
    assert (triggers / "processed" / "hold.json").is_file()
    held = [p for p in result.plan.packages if p.pkgname == "foo-gui"]
    assert held and all(p.state == "held" for p in held)  # held, whatever final publishes
    assert any(h.pkgname == "foo-gui" for h in daemon.intents.holds)
