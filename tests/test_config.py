"""Configuration: the example file equals the embedded defaults, and every problem of a
bad file is reported at once as `file:line: message` with the right line."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.config.settings import Config, default_config, load_config, parse_config
from reconciler.model.errors import ConfigError

from .conftest import ROOT

EXAMPLE = ROOT / "config.example.yaml"
PROBLEM_RE = re.compile(r"^(?P<source>.+?):(?P<line>[0-9]+): (?P<message>.+)$", re.DOTALL)

# A file with many problems. Each line carries the text its problem must contain
# (None: the line is fine), so that the expected line numbers are the real ones.
BAD_LINES: list[tuple[str, str | None]] = [
    ("paths:", None),
    ("  data: data", None),
    ("  bogus: 1", "paths: unknown key 'bogus'"),
    ("  data: again", "paths: key 'data' appears twice"),
    ("branches:", None),
    ("  - name: ../x", "branches[0].name: '../x' is not a safe branch name"),
    ("    pmaports: p", None),
    ("    arches: [x86_64, aarch64/]", "branches[0].arches[1]: 'aarch64/' is not a valid name"),
    ("  - name: main", None),
    ("    pmaports: p", None),
    ("    arches: []", "branches[1].arches: expected at least one arch"),
    ("  - name: main", "branches[2].name: branch 'main' is listed twice"),
    ("    pmaports: p", None),
    ("    arches: [x86_64, armv7, x86_64]", "branches[2].arches: an arch is listed twice"),
    ('    apk_version: "4.0"', "branches[2].apk_version: expected one of 3.0, 2.14, got '4.0'"),
    ("    ignore_errors: maybe", "branches[2].ignore_errors: expected true or false"),
    ("    color: blue", "branches[2]: unknown key 'color'"),
    ("splitrepos: [systemd, ../evil]", "splitrepos[1]: '../evil' is not a valid name"),
    ("jobs:", None),
    ("  service: remote", "jobs.service: expected one of local, sourcehut, got 'remote'"),
    ("  max_parallel: many", "jobs.max_parallel: expected a whole number, got 'many'"),
    ("  timeout_seconds: -5", "jobs.timeout_seconds: expected a number >= 0, got '-5'"),
    ("  extra: true", "jobs: unknown key 'extra'"),
    ("builder:", None),
    ("  kind: docker", "builder.kind: expected one of synthetic, pmbootstrap, got 'docker'"),
    ("  fail: just-one", "builder.fail: expected a list of strings"),
    ("  duration_seconds: [1]", "builder.duration_seconds: expected a number"),
    ("retries:", None),
    ("  max_tries: 0", "retries.max_tries: expected a number >= 1, got 0"),
    ("loop: [1, 2]", "loop: expected a mapping of keys to values"),
    ("keys:", None),
    ("  final_name: ../evil.pub", "keys.final_name: expected a file name ending .pub"),
    ("  generate_missing: maybe", "keys.generate_missing: expected true or false, got 'maybe'"),
    ("site:", None),
    ("  title: [a, b]", "site.title: expected a string"),
    ("  monitoring_max_failures: 2.5", "site.monitoring_max_failures: expected a whole number"),
    ("unknown_top: 1", "top level: unknown key 'unknown_top'"),
]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def bad_file(tmp_path: Path) -> Path:
    return write(tmp_path / "bad.yaml", "\n".join(text for text, _ in BAD_LINES) + "\n")


def expected_bad() -> list[tuple[int, str]]:
    return [(n, want) for n, (_, want) in enumerate(BAD_LINES, start=1) if want is not None]


def split_problem(problem: str) -> tuple[str, int, str]:
    match = PROBLEM_RE.match(problem)
    assert match is not None, f"not `file:line: message`: {problem!r}"
    return match["source"], int(match["line"]), match["message"]


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def assert_problems(problems: list[str], source: Path, expected: list[tuple[int, str]]) -> None:
    """Exactly one problem per expected (line, text), nothing else, in line order."""
    parsed = [split_problem(p) for p in problems]
    assert {s for s, _, _ in parsed} == {str(source)}
    unmatched = list(parsed)
    for line, text in expected:
        hits = [p for p in unmatched if p[1] == line and text in p[2]]
        assert hits, f"no problem {text!r} at line {line}; got:\n" + "\n".join(problems)
        unmatched.remove(hits[0])
    assert not unmatched, "unexpected problems:\n" + "\n".join(f"{p}" for p in unmatched)
    lines = [line for _, line, _ in parsed]
    assert lines == sorted(lines)


# --- the example file and the embedded defaults -------------------------------


def test_example_file_equals_embedded_defaults() -> None:
    example = load_config(EXAMPLE)
    defaults = default_config(ROOT)
    assert example.source == str(EXAMPLE)
    assert defaults.source == "<embedded defaults>"
    compared = [f.name for f in fields(Config) if f.name != "source"]
    assert compared == [
        "paths", "branches", "splitrepos", "jobs", "builder",
        "retries", "loop", "keys", "site", "mirror", "inputs", "retention", "images",
    ]  # fmt: skip
    for name in compared:
        assert getattr(example, name) == getattr(defaults, name), name
        # Field by field inside each section too, so a failure names the field.
        section = getattr(example, name)
        if hasattr(section, "__dataclass_fields__"):
            for inner in (f for f in fields(section) if f.compare):
                assert getattr(section, inner.name) == getattr(
                    getattr(defaults, name), inner.name
                ), f"{name}.{inner.name}"


def test_example_paths_resolve_against_the_repo_root() -> None:
    example = load_config(EXAMPLE)
    defaults = default_config(ROOT)
    for config in (example, defaults):
        assert config.paths.data == ROOT / "_data"
        assert config.paths.html_out == ROOT / "_html_out"
        assert config.paths.final_repo == ROOT / "_data/repo/final"
        assert config.paths.wip_repo == ROOT / "_data/repo/wip"
        assert config.paths.symlink_repo == ROOT / "_data/repo/symlink"
        assert config.paths.jobs == ROOT / "_data/jobs"
        assert config.paths.triggers == ROOT / "_data/triggers"
        assert config.paths.state == ROOT / "_data/state"
        assert config.keys.wip_private == ROOT / "_data/keys/wip.rsa"
        assert config.keys.wip_public == ROOT / "_data/keys/wip.rsa.pub"
        assert config.keys.final_public == ROOT / "_data/keys/final.rsa.pub"
        assert config.keys.final_private == ROOT / "_data/keys/final.rsa"
        assert [b.name for b in config.branches] == ["main", "v25.12"]
        for branch in config.branches:
            assert branch.pmaports == ROOT / "examples/pmaports"
            assert branch.arches == ("x86_64", "aarch64", "armv7")
            assert branch.native_arch == "x86_64"
            assert branch.apk_version == "3.0"
        assert [b.ignore_errors for b in config.branches] == [False, True]
        assert config.splitrepos == ("systemd",)


def test_example_copied_elsewhere_resolves_against_its_own_directory(tmp_path: Path) -> None:
    copy = write(tmp_path / "c.yaml", EXAMPLE.read_text(encoding="utf-8"))
    config = load_config(copy)
    assert config.paths.data == tmp_path / "_data"
    assert config.branches[0].pmaports == tmp_path / "examples/pmaports"
    # Everything else is the same as the defaults resolved against that directory.
    defaults = default_config(tmp_path)
    for f in fields(Config):
        if f.name != "source":
            assert getattr(config, f.name) == getattr(defaults, f.name), f.name


# --- bad files ----------------------------------------------------------------


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    path = bad_file(tmp_path)
    assert_problems(problems_of(path), path, expected_bad())


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "broken.yaml",
        "paths:\n  data: x\nbranches:\n  - name: main\n    pmaports: p\n"
        "    arches: [x86_64]\nsite:\n  title: a: b\n",
    )
    problems = problems_of(path)
    assert len(problems) == 1
    source, line, message = split_problem(problems[0])
    assert (source, line) == (str(path), 8)
    assert message.startswith("not valid YAML: ")


def test_unreadable_file_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"site:\n  title: caf\xe9\n")
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:1: cannot read the file")
    missing = tmp_path / "absent.yaml"
    assert problems_of(missing)[0].startswith(f"{missing}:1: cannot read the file")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path / "list.yaml", "# a list\n- a\n- b\n")
    problems = problems_of(path)
    assert any(p.startswith(f"{path}:2: top level: expected a mapping") for p in problems), problems


def test_missing_branch_fields_point_at_the_branch(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.yaml",
        "branches:\n  - name: main\n    pmaports: p\n    arches: [x86_64]\n  - arches: [x86_64]\n",
    )
    assert_problems(
        problems_of(path),
        path,
        [(5, "branches[1].name: missing"), (5, "branches[1].pmaports: missing")],
    )


def test_a_good_file_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path / "good.yaml",
        "paths: {data: d}\nbranches:\n  - name: v1.0_x-y\n    pmaports: ~/trees/p\n"
        "    arches: [armv7]\n    apk_version: '2.14'\n    ignore_errors: yes\n"
        "splitrepos: []\njobs: {max_parallel: 7, timeout_seconds: 1.5}\n",
    )
    config = load_config(path)
    (branch,) = config.branches
    assert branch.name == "v1.0_x-y"
    assert branch.pmaports == Path("~/trees/p").expanduser().resolve()
    assert branch.arches == ("armv7",)
    assert (branch.apk_version, branch.ignore_errors) == ("2.14", True)
    assert config.splitrepos == ()
    assert (config.jobs.max_parallel, config.jobs.timeout_seconds) == (7, 1.5)
    assert config.paths.data == tmp_path / "d"
    assert config.paths.jobs == tmp_path / "d" / "jobs"


# --- product bugs (see the reasons) -------------------------------------------


@pytest.mark.parametrize("value", ['""', ""], ids=["empty-string", "null"])
def test_empty_pmaports_is_a_problem(tmp_path: Path, value: str) -> None:
    path = write(
        tmp_path / "e.yaml",
        "branches:\n  - name: main\n    pmaports: p\n    arches: [x86_64]\n"
        f"  - name: other\n    pmaports: {value}\n    arches: [x86_64]\n",
    )
    assert_problems(problems_of(path), path, [(6, "branches[1].pmaports")])


def test_problems_of_an_incomplete_branch_are_all_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path / "i.yaml",
        "branches:\n  - name: main\n    arches: [x86_64]\n    ignore_errors: maybe\n",
    )
    assert_problems(
        problems_of(path),
        path,
        [(2, "branches[0].pmaports: missing"), (4, "branches[0].ignore_errors")],
    )


def test_missing_branches_is_reported_at_the_top(tmp_path: Path) -> None:
    path = write(tmp_path / "nb.yaml", "paths:\n  data: x\n")
    assert_problems(problems_of(path), path, [(1, "branches: missing")])


# --- the command line -----------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_cli_prints_every_problem(tmp_path: Path) -> None:
    path = bad_file(tmp_path)
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == problems_of(path)
    assert_problems(result.stderr.splitlines(), path, expected_bad())


def test_check_config_cli_accepts_the_example() -> None:
    result = run_cli("check-config", "--config", "config.example.yaml")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "config.example.yaml: OK (2 branches)\n"


@given(st.text(max_size=400))
@settings(max_examples=200, deadline=None)
def test_any_text_gives_a_config_or_errors_naming_the_file(text: str) -> None:
    try:
        parse_config(text, "fuzz.yaml", Path("/nonexistent-base"))
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert re.match(r"^fuzz\.yaml:\d+: \S", problem), problem


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
KEYS = st.sampled_from(
    [
        "branches",
        "paths",
        "jobs",
        "builder",
        "retries",
        "loop",
        "keys",
        "site",
        "splitrepos",
        "name",
        "pmaports",
        "arches",
        "max_parallel",
        "fail",
        "data",
        "x",
    ]
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=20,
)


@given(DOCUMENTS)
@settings(max_examples=300, deadline=None)
def test_any_yaml_document_gives_a_config_or_errors_naming_file_and_field(document: object) -> None:
    text = yaml.safe_dump(document)
    try:
        parse_config(text, "fuzz.yaml", Path("/nonexistent-base"))
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            # file:line: then the field (or "top level") the problem is about
            assert re.match(
                r"^fuzz\.yaml:\d+: (top level|[a-z_]+(\[\d+\])?(\.[a-z_]+)*)", problem
            ), problem


@pytest.mark.parametrize(
    ("name", "staging_arches", "field"),
    [
        ("staging", "[x86_64]", "branches[0].name"),
        ("extra-repos", "[x86_64]", "branches[0].name"),
        ("main_staging_x", "[x86_64]", "branches[0].name"),
        ("main", "[armv7]", "branches[0].staging_arches"),
    ],
)
def test_staging_names_and_arches_are_checked(
    tmp_path: Path, name: str, staging_arches: str, field: str
) -> None:
    path = write(
        tmp_path / "s.yaml",
        f"branches:\n  - name: {name}\n    pmaports: p\n    arches: [x86_64]\n"
        f"    staging_arches: {staging_arches}\n",
    )
    problems = problems_of(path)
    assert len(problems) == 1 and field in problems[0], problems


def test_staging_arches_default_to_the_branch_arches(tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.yaml",
        "branches:\n  - name: main\n    pmaports: p\n    arches: [x86_64, armv7]\n",
    )
    assert load_config(path).branches[0].staging_arches == ("x86_64", "armv7")


def test_a_split_repository_may_not_be_called_main(tmp_path: Path) -> None:
    text = "branches:\n  - {name: a, pmaports: p, arches: [x86_64]}\nsplitrepos: [main]\n"
    with pytest.raises(ConfigError, match=r"splitrepos\[0\]: 'main' is not a valid name"):
        parse_config(text, "c.yaml", tmp_path)
