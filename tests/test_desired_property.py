"""The desired-state reader over generated hostile trees: names in ASCII, in other
scripts and in bytes that are not UTF-8; APKBUILDs that are good, garbage, too
large, FIFOs, directories, or symlinks into the tree, out of it, dangling or in a
loop. Whatever the tree, reading it raises nothing, every broken package says
why, no string of the result holds a surrogate, and nothing of a file outside the
tree (its content or its name) shows in the result or the log."""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.config.branches import BranchConfig
from reconciler.desired.parsecache import ParseCache
from reconciler.desired.reader import DesiredReader
from reconciler.model.names import RepoKey
from reconciler.model.packages import BranchDesired

from .bounded_call import in_time

MAX_BYTES = 2048
GOOD = b'pkgname=%s\npkgver=1.0\npkgrel=0\narch="all"\nlicense="MIT"\n'


def not_utf8(name: bytes) -> bool:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def usable(name: bytes) -> bool:
    return name not in (b".", b"..") and b"/" not in name and b"\0" not in name


NAMES = st.one_of(
    st.sampled_from([b"APKBUILD", b"main", b"device", b"archived", b"extra-repos", b"systemd"]),
    st.text(alphabet="abcxyz-_.", min_size=1, max_size=8).map(str.encode),
    st.text(
        alphabet=st.characters(min_codepoint=0xA0, max_codepoint=0x2FFF, exclude_categories=["Cs"]),
        min_size=1,
        max_size=4,
    ).map(str.encode),
    st.tuples(
        st.binary(max_size=3),
        st.sampled_from([b"\xff", b"\xe9", b"\x80", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88"]),
        st.binary(max_size=3),
    )
    .map(b"".join)
    .filter(not_utf8),
).filter(usable)
# "good": an APKBUILD whose pkgname is its directory's name; "oversized": one byte too many
CONTENTS = st.one_of(
    st.sampled_from(["good", "oversized"]),
    st.binary(max_size=120),
    st.text(max_size=120).map(str.encode),
)
TARGETS = st.sampled_from(
    [
        "canary",  # the file outside the tree, by its absolute path
        "canary-relative",  # the same through ../..
        "canary-directory",
        "canary-missing",  # dangling, outside, the marker in the target's name
        "/dev/zero",
        "/etc/passwd",
        "dangling",
        "loop",
        ".",
        "..",
        "../APKBUILD",
        "../../main/zzgood/APKBUILD",
    ]
)
LEAF_NAMES = st.one_of(st.just(b"APKBUILD"), st.just(b"APKBUILD"), NAMES)  # mostly APKBUILD
LEAVES = st.one_of(
    st.tuples(st.just("file"), LEAF_NAMES, CONTENTS),
    st.tuples(st.just("link"), LEAF_NAMES, TARGETS),
    st.tuples(st.just("fifo"), LEAF_NAMES),
    st.tuples(st.just("dir"), LEAF_NAMES, st.just(())),
)
TREES = st.lists(
    st.recursive(
        LEAVES,
        lambda children: st.tuples(st.just("dir"), NAMES, st.lists(children, max_size=4)),
        max_leaves=12,
    ),
    max_size=5,
)

# Always there: a good package, and one whose APKBUILD is a symlink to the canary.
FIXED = [
    (
        "dir",
        b"main",
        [
            ("dir", b"zzgood", [("file", b"APKBUILD", "good")]),
            ("dir", b"canary", [("link", b"APKBUILD", "canary")]),
        ],
    )
]


def link_target(kind: str, directory: bytes, canary: bytes) -> bytes:
    outside = os.path.dirname(canary)
    return {
        "canary": canary,
        "canary-relative": os.path.relpath(canary, directory),
        "canary-directory": outside,
        "canary-missing": os.path.join(outside, b"missing"),
        "dangling": b"nothing-here",
        "loop": b"APKBUILD",
    }.get(kind, os.fsencode(kind))


def build(directory: bytes, nodes: list[Any], canary: bytes) -> None:
    """Make `nodes` in `directory`: a directory already there gets the new nodes
    too, any other name already there is left as it is."""
    for node in nodes:
        kind, name = node[0], node[1]
        path = os.path.join(directory, name)
        if kind == "dir":
            if not os.path.lexists(path):
                os.mkdir(path)
            if os.path.isdir(path) and not os.path.islink(path):
                build(path, node[2], canary)
        elif os.path.lexists(path):
            continue
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "link":
            os.symlink(link_target(node[2], directory, canary), path)
        else:
            content = node[2]
            if content == "good":
                content = GOOD % os.path.basename(directory)
            elif content == "oversized":
                content = GOOD % os.path.basename(directory)
                content += b"#" * (MAX_BYTES - len(content)) + b"\n"
            with open(path, "wb") as file:
                file.write(content)


def strings(value: object) -> Iterator[str]:
    """Every string in a value of dataclasses, dicts and tuples."""
    if isinstance(value, str):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from strings(getattr(value, field.name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, tuple | list | set | frozenset):
        for item in value:
            yield from strings(item)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def check(desired: BranchDesired, secrets: tuple[str, ...]) -> None:
    for broken in desired.broken:
        assert broken.reason, broken
        # It names the file (or, for a name twice in a repository, its directory).
        assert broken.reason.startswith(
            (f"{broken.path}/APKBUILD: ", f"{broken.path}: pkgname also in ")
        ), broken
    for text in strings(desired):
        text.encode("utf-8")  # raises for a surrogate
        assert not any(secret in text for secret in secrets), text
    assert not any(secret in repr(desired) for secret in secrets)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(TREES)
def test_no_tree_breaks_the_reader_or_leaks_what_is_outside(nodes: list[Any]) -> None:
    marker = f"CANARY-{uuid.uuid4()}"
    records = Records()
    logger = logging.getLogger("reconciler")
    level = logger.level
    logger.addHandler(records)
    logger.setLevel(logging.DEBUG)
    with tempfile.TemporaryDirectory() as tmp:
        root = os.fsencode(tmp)
        os.mkdir(os.path.join(root, marker.encode()))
        canary = os.path.join(root, marker.encode(), b"APKBUILD")
        with open(canary, "wb") as file:
            file.write(GOOD % b"canary" + f'pkgdesc="{marker}"\n'.encode())
        tree = os.path.join(root, b"pmaports")
        os.mkdir(tree)
        build(tree, FIXED, canary)
        build(tree, nodes, canary)
        secrets = (marker, os.fsdecode(canary))
        branch = BranchConfig("main", Path(os.fsdecode(tree)), ("x86_64", "aarch64"))
        state = Path(tmp) / "state"
        reader = DesiredReader(("systemd",), ParseCache(state), max_apkbuild_bytes=MAX_BYTES)
        try:
            first = in_time(lambda: reader.read_branch(branch), branch.pmaports, seconds=10)
            again = in_time(lambda: reader.read_branch(branch), branch.pmaports, seconds=10)
            restarted = DesiredReader(("systemd",), ParseCache(state), max_apkbuild_bytes=MAX_BYTES)
            cached = in_time(lambda: restarted.read_branch(branch), branch.pmaports, seconds=10)
        finally:
            logger.removeHandler(records)
            logger.setLevel(level)
    for desired in (first, cached):
        check(desired, secrets)
    assert again is first  # nothing changed: nothing resolved again
    assert cached == first  # the parse cache of a restart gives the same
    assert "zzgood" in first.repos[RepoKey("main", "", "x86_64")]
    canary_reason = "main/canary/APKBUILD: a symlink leading out of the pmaports tree"
    assert canary_reason in {b.reason for b in first.broken}
    for message in records.messages:
        message.encode("utf-8")
        assert not any(secret in message for secret in secrets), message
