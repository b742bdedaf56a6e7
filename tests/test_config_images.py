"""The images section of the configuration: its defaults, the per-branch merge of
a device's UIs and kernels, and every bad entry reported as `file:line: field:
message` at the right line."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.config.images import (
    CHASSIS_UIS,
    DEFAULT_START,
    DEFAULT_UI_NAMES,
    DeviceImages,
    FrozenMapping,
    ImageOverride,
    ImagesConfig,
    derive_uis,
)
from reconciler.config.settings import default_config, load_config, parse_config
from reconciler.model.errors import ConfigError

BRANCHES = """\
branches:
  - {name: main, pmaports: p, arches: [x86_64, aarch64]}
  - {name: v25.12, pmaports: p, arches: [x86_64]}
jobs: {max_parallel: 2}
"""
PROBLEM = re.compile(r"^(?P<source>[^:]+):(?P<line>[0-9]+): (?P<message>.+)$", re.DOTALL)


def parse(text: str, tmp_path: Path) -> ImagesConfig:
    return parse_config(BRANCHES + text, "c.yaml", tmp_path).images


def problems(text: str, tmp_path: Path) -> list[tuple[int, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(BRANCHES + text, "c.yaml", tmp_path)
    found = []
    for problem in info.value.problems:
        match = PROBLEM.match(problem)
        assert match is not None and match["source"] == "c.yaml", problem
        found.append((int(match["line"]), match["message"]))
    return found


# --- defaults ---------------------------------------------------------------------


def test_without_the_section_nothing_is_built_and_every_default_holds(tmp_path: Path) -> None:
    images = parse("", tmp_path)
    assert not images.enabled and images.devices == ()
    assert images.interval_days == 7 and images.interval_seconds == 7 * 86400
    assert images.start == DEFAULT_START == datetime(2025, 6, 20, tzinfo=UTC).timestamp()
    assert (images.keep, images.max_parallel, images.password) == (2, 1, "147147")
    assert images.branches == ("main", "v25.12")
    assert images.development_branch == "main"
    assert dict(images.releases) == {"main": "edge", "v25.12": "v25.12"}
    assert images.release("main") == "edge" and images.release("v25.12") == "v25.12"
    assert images.url == "http://localhost:8080/images/"
    assert images.source_file == "c.yaml"
    assert dict(images.ui_names) == dict(DEFAULT_UI_NAMES)
    for ui in ("console", "phosh", "gnome-mobile", "plasma-mobile", "sxmo-de-sway", "gnome"):
        assert ui in images.ui_names
    for ui in ("plasma-desktop", "sway", "xfce4", "mate", "i3wm", "demo"):
        assert ui in images.ui_names
    assert "none" not in images.ui_names


def test_the_section_is_frozen_and_a_config_still_hashes(tmp_path: Path) -> None:
    text = BRANCHES + "images:\n  devices: [{codename: d, uis: [console]}]\n"
    config = parse_config(text, "c.yaml", tmp_path)
    assert hash(config) == hash(parse_config(text, "c.yaml", tmp_path))
    assert isinstance(config.images.releases, FrozenMapping)
    with pytest.raises(TypeError):
        config.images.releases["main"] = "x"  # type: ignore[index]
    assert FrozenMapping({"a": "1", "b": "2"}) == FrozenMapping([("b", "2"), ("a", "1")])
    assert hash(FrozenMapping({"a": "1", "b": "2"})) == hash(FrozenMapping({"b": "2", "a": "1"}))


def test_the_embedded_defaults_and_the_example_build_the_sample_devices_images() -> None:
    root = Path(__file__).resolve().parent.parent
    example = load_config(root / "config.example.yaml").images
    defaults = default_config(root).images
    assert example == defaults  # source_file differs and is not compared
    assert example.source_file != defaults.source_file
    assert example.enabled
    assert [(d.codename, d.uis) for d in example.devices] == [
        ("demo-phone", ("demo", "console")),
        ("demo-laptop", ("console", "demo")),
    ]
    assert example.url == "http://localhost:8080/images/"
    assert dict(example.releases) == {"main": "edge", "v25.12": "v25.12"}


def test_the_images_path_defaults_below_data(tmp_path: Path) -> None:
    config = parse_config(BRANCHES + "paths: {data: d}\n", "c.yaml", tmp_path)
    assert config.paths.images == tmp_path / "d" / "images"
    moved = parse_config(BRANCHES + "paths: {data: d, images: /srv/img}\n", "c.yaml", tmp_path)
    assert moved.paths.images == Path("/srv/img")


def test_a_full_section_is_read(tmp_path: Path) -> None:
    images = parse(
        """\
site: {url: "https://build.example.org/"}
images:
  interval_days: 14
  start: "2026-01-05 06:30"
  keep: 3
  max_parallel: 2
  password: "1234"
  development_branch: v25.12
  releases: {main: v26.06}
  ui_names: {my-ui: My UI, phosh: Phosh (GNOME)}
  devices:
    - codename: demo-phone
      pretty_name: Demo Phone
      uis: [demo, console]
    - codename: tablet
      branches: [main]
      uis: [phosh, my-ui]
      kernels: [mainline, lts]
      overrides:
        all: {uis: [console]}
        main: {kernels: [mainline]}
    - codename: off
      branches: []
      uis: [console]
""",
        tmp_path,
    )
    assert images.interval_days == 14 and images.keep == 3 and images.max_parallel == 2
    assert images.start == datetime(2026, 1, 5, 6, 30, tzinfo=UTC).timestamp()
    assert images.password == "1234"
    assert images.development_branch == "v25.12"
    assert dict(images.releases) == {"main": "v26.06", "v25.12": "edge"}
    assert images.url == "https://build.example.org/images/"
    assert images.ui_names["my-ui"] == "My UI" and images.ui_names["phosh"] == "Phosh (GNOME)"
    assert images.ui_names["console"] == "Console"  # the defaults stay
    phone, tablet, off = images.devices
    assert phone == DeviceImages(
        "demo-phone", "Demo Phone", None, ("demo", "console"), ("",), line=16
    )
    assert phone.package == "device-demo-phone"
    assert tablet.branches == ("main",) and tablet.line == 19
    assert dict(tablet.overrides) == {
        "all": ImageOverride(("console",), None, 24),
        "main": ImageOverride(None, ("mainline",), 25),
    }
    assert off.branches == () and not off.builds_on("main")
    assert images.where(tablet) == "c.yaml:19"


@pytest.mark.parametrize(
    ("overrides", "branch", "uis", "kernels"),
    [
        ({}, "main", ("phosh",), ("",)),
        ({"all": ImageOverride(uis=("console",))}, "main", ("console",), ("",)),
        ({"main": ImageOverride(kernels=("lts",))}, "main", ("phosh",), ("lts",)),
        ({"main": ImageOverride(kernels=("lts",))}, "v25.12", ("phosh",), ("",)),
        (
            {"all": ImageOverride(("console",), ("a",)), "main": ImageOverride(("sway",))},
            "main",
            ("sway",),
            ("a",),
        ),
        ({"v25.12": ImageOverride(uis=())}, "v25.12", (), ("",)),
    ],
)
def test_a_devices_values_merge_default_then_all_then_the_branch(
    overrides: dict[str, ImageOverride], branch: str, uis: tuple[str, ...], kernels: tuple[str, ...]
) -> None:
    device = DeviceImages("d", uis=("phosh",), overrides=overrides)
    assert (device.uis_for(branch), device.kernels_for(branch)) == (uis, kernels)


def test_the_url_follows_the_site_and_a_given_one_gets_its_slash(tmp_path: Path) -> None:
    assert parse("site: {url: 'https://x.org/status'}\n", tmp_path).url == (
        "https://x.org/status/images/"
    )
    given = parse("images: {url: 'https://images.x.org'}\n", tmp_path)
    assert given.url == "https://images.x.org/"


def test_a_date_only_start_is_midnight_utc_and_an_offset_is_honoured(tmp_path: Path) -> None:
    assert (
        parse("images: {start: 2025-07-01}\n", tmp_path).start
        == datetime(2025, 7, 1, tzinfo=UTC).timestamp()
    )
    assert (
        parse("images: {start: '2025-07-01T02:00+02:00'}\n", tmp_path).start
        == datetime(2025, 7, 1, tzinfo=UTC).timestamp()
    )


# --- every bad entry, with its line ------------------------------------------------

# (line, text that must be in the problem or None); line numbers start after BRANCHES.
BAD: list[tuple[str, str | None]] = [
    ("images:", None),
    ("  max_parallel: 3", "images.max_parallel: 3 is more than jobs.max_parallel (2)"),
    ("  interval_days: 0", "images.interval_days: expected a number >= 1, got 0"),
    ("  keep: two", "images.keep: expected a whole number, got 'two'"),
    ("  start: next tuesday", "images.start: expected a date (2025-06-20) or UTC time"),
    ("  url: ftp://x", "images.url: expected an http:// or https:// URL"),
    ("  development_branch: v1", "images.development_branch: 'v1' is not a configured branch"),
    ("  releases: {main: 'a/b', v9: x}", "images.releases.main: 'a/b' is not a valid release"),
    ("  ui_names: {none: Nothing}", "images.ui_names.none: 'none' is not a UI: use 'console'"),
    ("  colour: blue", "images: unknown key 'colour'"),
    ("  devices:", None),
    ("    - codename: demo-phone", None),
    ("      uis: [demo, foo, none, demo]", "images.devices[0].uis[1]: unknown UI 'foo' (known: "),
    ("      kernels: ['', mainline]", 'images.devices[0].kernels: "" (the device\'s only kernel)'),
    ("      branches: [main, nope]", "images.devices[0].branches[1]: 'nope' is not a configured"),
    ("      overrides:", None),
    ("        all: {uis: [console], x: 1}", "images.devices[0].overrides.all: unknown key 'x'"),
    ("        v9: {}", "images.devices[0].overrides: unknown key 'v9' (known keys: all, main,"),
    ("      bogus: 1", "images.devices[0]: unknown key 'bogus'"),
    ("    - codename: Bad_Name", "images.devices[1].codename: 'Bad_Name' is not a valid codename"),
    ("      uis: phosh", "images.devices[1].uis: expected a list"),
    ("    - {codename: demo-phone, uis: []}", "images.devices[2].codename: 'demo-phone' is listed"),
    (
        "    - {codename: tab, uis: [console], kernels: []}",
        "images.devices[3].kernels: expected at",
    ),
    ("    - {codename: x, uis: [console], kernels: [a_b]}", "images.devices[4].kernels[0]: 'a_b'"),
    ("    - {codename: y, uis: [7], pretty_name: [a]}", "images.devices[5].uis[0]: unknown UI '7'"),
    ("    - just-a-name", "images.devices[6]: expected a mapping"),
    ("    - pretty_name: Nameless", "images.devices[7].codename: missing, expected a string"),
]
# Problems on lines that already have one above: (line, text).
MORE = [
    (13, "images.devices[0].uis[2]: 'none' is not a UI: use 'console'"),
    (13, "images.devices[0].uis[3]: 'demo' is listed twice"),
    (8, "images.releases: unknown key 'v9' (known keys: main, v25.12)"),
    (25, "images.devices[5].pretty_name: expected a string"),
    (27, "images.devices[7].uis: missing, expected a list of UIs"),
]


def test_every_bad_entry_is_reported_with_its_file_line_and_field(tmp_path: Path) -> None:
    text = "".join(f"{line}\n" for line, _ in BAD)
    offset = BRANCHES.count("\n")
    expected = [(n + offset, want) for n, (_, want) in enumerate(BAD, 1) if want is not None]
    expected += [(n + offset, want) for n, want in MORE]
    found = problems(text, tmp_path)
    unmatched = list(found)
    for line, want in expected:
        hits = [p for p in unmatched if p[0] == line and want in p[1]]
        assert hits, f"no problem {want!r} at line {line}; got:\n{found}"
        unmatched.remove(hits[0])
    assert unmatched == [], unmatched


def test_an_unknown_ui_lists_the_known_ones(tmp_path: Path) -> None:
    ((line, message),) = problems(
        "images:\n  devices:\n    - {codename: d, uis: [foo]}\n", tmp_path
    )
    assert line == BRANCHES.count("\n") + 3
    assert message.startswith("images.devices[0].uis[0]: unknown UI 'foo' (known: asteroid, ")
    assert ", console, " in message and message.endswith("xfce4)")


def test_an_override_may_name_a_ui_only_from_the_allowlist(tmp_path: Path) -> None:
    text = "images:\n  devices:\n    - codename: d\n      uis: [console]\n"
    text += "      overrides: {v25.12: {uis: [nope]}}\n"
    ((line, message),) = problems(text, tmp_path)
    assert line == BRANCHES.count("\n") + 5
    assert message.startswith("images.devices[0].overrides.v25.12.uis[0]: unknown UI 'nope'")


def test_max_parallel_within_jobs_max_parallel_is_fine(tmp_path: Path) -> None:
    assert parse("images: {max_parallel: 2}\n", tmp_path).max_parallel == 2


def test_two_branches_may_not_share_a_release(tmp_path: Path) -> None:
    ((_, message),) = problems("images: {releases: {v25.12: edge}}\n", tmp_path)
    assert message == "images.releases.v25.12: release 'edge' is already the release of 'main'"


def test_wrong_types_of_the_section_and_its_lists(tmp_path: Path) -> None:
    assert problems("images: [1]\n", tmp_path) == [
        (5, "images: expected a mapping of keys to values")
    ]
    assert problems("images: {devices: {a: 1}}\n", tmp_path) == [
        (5, "images.devices: expected a list")
    ]


# --- UIs from the device's nature (chassis, gpu, add_uis, exclude_uis) -------------

MOBILE = ("gnome-mobile", "phosh", "plasma-mobile", "sxmo-de-sway")
MOBILE_NO_GPU = ("mate", "xfce4", "sxmo-de-dwm")
DESKTOP = ("console", "gnome", "plasma-desktop", "sway")
DESKTOP_NO_GPU = ("console", "mate", "xfce4", "i3wm")


@pytest.mark.parametrize(
    ("chassis", "gpu", "uis"),
    [
        (("handset",), True, MOBILE),
        (("tablet",), True, MOBILE),
        (("handset",), False, MOBILE_NO_GPU),
        (("tablet",), False, MOBILE_NO_GPU),
        (("laptop",), True, DESKTOP),
        (("convertible",), True, DESKTOP),
        (("laptop",), False, DESKTOP_NO_GPU),
        (("convertible",), False, DESKTOP_NO_GPU),
        (("embedded",), True, ("console",)),
        (("embedded",), False, ("console",)),
        # Several: chassis by chassis in the order given, each UI once.
        (("laptop", "tablet"), True, DESKTOP + MOBILE),
        (("tablet", "laptop"), True, MOBILE + DESKTOP),
        (("laptop", "embedded"), True, DESKTOP),
        (("embedded", "handset"), False, ("console", *MOBILE_NO_GPU)),
        ((), True, ()),
    ],
)
def test_derive_uis_follows_bpo_in_a_fixed_order(
    chassis: tuple[str, ...], gpu: bool, uis: tuple[str, ...]
) -> None:
    assert derive_uis(chassis, gpu) == uis
    assert derive_uis(chassis, gpu) == derive_uis(list(chassis), gpu)  # no set, no chance
    assert set(derive_uis(chassis, gpu)) <= set(DEFAULT_UI_NAMES)
    assert set(CHASSIS_UIS) == {"handset", "tablet", "convertible", "laptop", "embedded"}


# (device entry's keys after codename, the UIs read)
DERIVED: list[tuple[str, tuple[str, ...]]] = [
    ("chassis: handset", MOBILE),
    ("chassis: handset, gpu: false", MOBILE_NO_GPU),
    ("chassis: laptop, gpu: no", DESKTOP_NO_GPU),
    ("chassis: [laptop, tablet]", DESKTOP + MOBILE),
    ("chassis: embedded", ("console",)),
    ("chassis: handset, add_uis: [console, phosh]", (*MOBILE, "console")),
    ("chassis: handset, exclude_uis: [gnome-mobile, sxmo-de-sway]", ("phosh", "plasma-mobile")),
    (
        "chassis: laptop, add_uis: [cosmic], exclude_uis: [plasma-desktop]",
        ("console", "gnome", "sway", "cosmic"),
    ),
    ("chassis: embedded, add_uis: [weston], exclude_uis: [console]", ("weston",)),
    # An explicit list wins over the chassis; add and exclude apply to it.
    ("uis: [phosh], chassis: laptop", ("phosh",)),
    ("uis: [phosh, demo], add_uis: [console], exclude_uis: [demo]", ("phosh", "console")),
]


@pytest.mark.parametrize(("keys", "uis"), DERIVED)
def test_a_device_may_derive_its_uis_from_its_nature(
    keys: str, uis: tuple[str, ...], tmp_path: Path
) -> None:
    images = parse(f"images:\n  devices:\n    - {{codename: d, {keys}}}\n", tmp_path)
    (device,) = images.devices
    assert device.uis == uis
    assert device.uis_for("main") == uis


def test_chassis_gpu_and_recovery_zip_are_kept_and_default(tmp_path: Path) -> None:
    text = "images:\n  devices:\n    - {codename: d, chassis: [tablet], gpu: false}\n"
    text += "    - {codename: e, uis: [console], android_recovery_zip: true}\n"
    images = parse(text, tmp_path)
    d, e = images.devices
    assert (d.chassis, d.gpu, d.android_recovery_zip) == (("tablet",), False, False)
    assert (e.chassis, e.gpu, e.android_recovery_zip) == ((), True, True)
    assert images.device("e") is e and images.device("nope") is None


# (device entry's keys after codename, the problem at its line)
BAD_NATURE: list[tuple[str, str]] = [
    ("chassis: phone", "images.devices[0].chassis: unknown chassis 'phone' (known: convertible,"),
    ("chassis: [laptop, fridge]", "images.devices[0].chassis[1]: unknown chassis 'fridge'"),
    ("chassis: [laptop, laptop]", "images.devices[0].chassis[1]: 'laptop' is listed twice"),
    ("chassis: []", "images.devices[0].chassis: expected a chassis or a list of them"),
    ("chassis: {a: 1}", "images.devices[0].chassis: expected a list"),
    ("chassis: laptop, gpu: maybe", "images.devices[0].gpu: expected true or false, got 'maybe'"),
    ("uis: [console], gpu: false", "images.devices[0].gpu: only used with a chassis"),
    ("chassis: laptop, add_uis: [nope]", "images.devices[0].add_uis[0]: unknown UI 'nope'"),
    ("chassis: laptop, add_uis: [none]", "images.devices[0].add_uis[0]: 'none' is not a UI"),
    ("chassis: laptop, exclude_uis: [foo]", "images.devices[0].exclude_uis[0]: unknown UI 'foo'"),
    (
        "chassis: laptop, exclude_uis: [phosh]",
        "images.devices[0].exclude_uis[0]: 'phosh' is not one of the device's UIs (console, gnome,",
    ),
    (
        "chassis: laptop, add_uis: [phosh], exclude_uis: [phosh]",
        "images.devices[0].add_uis[0]: 'phosh' is also in exclude_uis",
    ),
    ("chassis: embedded, exclude_uis: [console]", "images.devices[0].exclude_uis: leaves the"),
    ("chassis: laptop, add_uis: phosh", "images.devices[0].add_uis: expected a list"),
    ("uis: [console], android_recovery_zip: 2", "images.devices[0].android_recovery_zip: expected"),
    ("pretty_name: x", "images.devices[0].uis: missing, expected a list of UIs (known: asteroid"),
]


@pytest.mark.parametrize(("keys", "problem"), BAD_NATURE)
def test_a_bad_nature_is_reported_with_its_line(keys: str, problem: str, tmp_path: Path) -> None:
    found = problems(f"images:\n  devices:\n    - {{codename: d, {keys}}}\n", tmp_path)
    line = BRANCHES.count("\n") + 3
    assert any(n == line and problem in message for n, message in found), found


def test_the_missing_uis_message_names_the_chassis_too(tmp_path: Path) -> None:
    ((_, message),) = problems("images:\n  devices:\n    - {codename: d}\n", tmp_path)
    assert message.endswith(" or a chassis (convertible, embedded, handset, laptop, tablet)")


def test_every_derived_ui_is_allowed_and_an_added_one_may_be_the_configs(tmp_path: Path) -> None:
    """Every UI a chassis gives is in the built-in allowlist, which ui_names only extends."""
    for with_gpu, without in CHASSIS_UIS.values():
        assert set(with_gpu) | set(without) <= set(DEFAULT_UI_NAMES)
    text = "images:\n  ui_names: {mine: Mine}\n  devices:\n"
    text += "    - {codename: d, chassis: handset, add_uis: [mine]}\n"
    assert parse(text, tmp_path).devices[0].uis == (*MOBILE, "mine")
