"""The images section of the configuration: which device images are built, how
often, how many are kept, and under which names they are published.

The matrix is declarative: devices, each with its UIs and kernels, optionally
limited to some branches and changed per branch (`overrides`: the device's own
values, then the `all` entry, then the branch's entry, each replacing what it
sets, as bpo merges its `branch_configs`). UIs come from an allowlist with
pretty names (`none` is not a UI: use `console`). A device may name its UIs, or
say what it is (`chassis`, `gpu`) and have them derived as bpo's `get_ui_list`
does, in a fixed order (`derive_uis`), then `add_uis` / `exclude_uis` applied.
Read with every problem
reported as `file:line: images.<field>: ...`, like the rest of the
configuration; whether a device's packages exist is checked against the tree
later (`desired.images`), with the device entry's line kept for that message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import yaml

from reconciler.config.reader import NodeReader
from reconciler.model.images import is_image_name, is_release_name

V = TypeVar("V")


class FrozenMapping(Mapping[str, V]):
    """A mapping that cannot change and hashes (so a Config still does): the
    images section's name tables. Equal to any mapping with the same items."""

    __slots__ = ("_data",)

    def __init__(self, items: Mapping[str, V] | Iterable[tuple[str, V]] = ()) -> None:
        self._data = dict(items)

    def __getitem__(self, key: str) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenMapping({self._data!r})"


# The UIs an image may have, with their pretty names (pmaports' postmarketos-ui-*).
DEFAULT_UI_NAMES: Mapping[str, str] = FrozenMapping(
    {
        "asteroid": "AsteroidOS",
        "budgie": "Budgie",
        "console": "Console",
        "cosmic": "COSMIC",
        "demo": "Demo",  # the sample tree's UI
        "fbkeyboard": "fbkeyboard",
        "gnome": "GNOME",
        "gnome-mobile": "GNOME Mobile",
        "i3wm": "i3",
        "kodi": "Kodi",
        "lxqt": "LXQt",
        "mate": "MATE",
        "phosh": "Phosh",
        "plasma-bigscreen": "Plasma Bigscreen",
        "plasma-desktop": "Plasma Desktop",
        "plasma-mobile": "Plasma Mobile",
        "shelli": "Shelli",
        "sway": "Sway",
        "sxmo-de-dwm": "Sxmo (dwm)",
        "sxmo-de-sway": "Sxmo (Sway)",
        "weston": "Weston",
        "xfce4": "Xfce",
    }
)
# What a device is -> the UIs its images get: (with a GPU, without one). bpo's
# get_ui_list, in a fixed order (bpo's comes from a set: random). Console needs
# no GPU, so laptops and convertibles keep it either way (as bpo's does).
_MOBILE = (
    ("gnome-mobile", "phosh", "plasma-mobile", "sxmo-de-sway"),
    ("mate", "xfce4", "sxmo-de-dwm"),
)
_DESKTOP = (("console", "gnome", "plasma-desktop", "sway"), ("console", "mate", "xfce4", "i3wm"))
CHASSIS_UIS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = FrozenMapping(
    {
        "handset": _MOBILE,
        "tablet": _MOBILE,
        "convertible": _DESKTOP,
        "laptop": _DESKTOP,
        "embedded": (("console",), ("console",)),
    }
)
DEFAULT_START = datetime(2025, 6, 20, tzinfo=UTC).timestamp()  # bpo's date-start
DEFAULT_PASSWORD = "147147"  # bpo's: the images' user password
DEFAULT_URL = "http://localhost:8080/images/"  # site.url's default + "images/"
DEVELOPMENT_RELEASE = "edge"
ALL_BRANCHES = "all"  # the overrides entry that applies to every branch
_EMPTY: Mapping[str, str] = FrozenMapping({})
# Says what is wrong with a name of a list, or None.
_Check = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class ImageOverride:
    """A device's values for some branches (`all`, or one branch); None keeps
    what comes before it."""

    uis: tuple[str, ...] | None = None
    kernels: tuple[str, ...] | None = None
    line: int = field(default=0, compare=False)  # of the entry in the config file


def _no_overrides() -> Mapping[str, ImageOverride]:
    return FrozenMapping({})


@dataclass(frozen=True, slots=True)
class DeviceImages:
    """One device's part of the matrix.

    `branches`: None for every configured branch, () disables the device.
    `uis`: the UIs built by default: the configured list, or the one derived
    from `chassis` and `gpu` (`derive_uis`), with `add_uis`/`exclude_uis`
    applied. `android_recovery_zip`: its image jobs also make an Android
    recovery zip (pmbootstrap builder). `kernels`: ("",) for the device's only
    kernel, else kernel names (each a `device-<codename>-kernel-<name>`
    subpackage). `overrides`: keyed `all` or by branch. `pretty_name`: "" takes
    the device package's pkgdesc. `line`: the device entry's line, for messages
    that check it against a tree."""

    codename: str
    pretty_name: str = ""
    branches: tuple[str, ...] | None = None
    uis: tuple[str, ...] = ()
    kernels: tuple[str, ...] = ("",)
    overrides: Mapping[str, ImageOverride] = field(default_factory=_no_overrides)
    line: int = field(default=0, compare=False)
    chassis: tuple[str, ...] = ()  # what the device is (CHASSIS_UIS), when it says
    gpu: bool = True
    android_recovery_zip: bool = False

    @property
    def package(self) -> str:
        return f"device-{self.codename}"

    def builds_on(self, branch: str) -> bool:
        return self.branches is None or branch in self.branches

    def _merged(self, branch: str) -> ImageOverride:
        uis, kernels = self.uis, self.kernels
        for name in (ALL_BRANCHES, branch):
            override = self.overrides.get(name)
            if override is not None:
                uis = uis if override.uis is None else override.uis
                kernels = kernels if override.kernels is None else override.kernels
        return ImageOverride(uis, kernels)

    def uis_for(self, branch: str) -> tuple[str, ...]:
        """The UIs of this device on `branch`: its own, then `all`, then the branch's."""
        return self._merged(branch).uis or ()

    def kernels_for(self, branch: str) -> tuple[str, ...]:
        """The kernels of this device on `branch`, merged like its UIs."""
        return self._merged(branch).kernels or ()


def _default_ui_names() -> Mapping[str, str]:
    return DEFAULT_UI_NAMES


def _no_releases() -> Mapping[str, str]:
    return _EMPTY


@dataclass(frozen=True, slots=True)
class ImagesConfig:
    """The images section. No devices (the default): no images.

    `start` is a UTC time (epoch seconds): slots begin at `start` and every
    `interval_days` after it. `keep`: published images kept per (branch, device,
    UI). `max_parallel`: image jobs at once, within jobs.max_parallel.
    `min_free_bytes`: no image job starts while the file system of the images
    directory has less free space than this (0: no such guard).
    `branches`: the configured branches, in order. `releases`: branch -> release
    name for every configured branch (`edge` for `development_branch`, the first
    branch unless set, else the branch's name). `url`: the public address of the
    images tree (index.json's links). `source_file`: the config file, for
    `file:line` messages (not compared: equal configs from two files are equal).
    """

    devices: tuple[DeviceImages, ...] = ()
    ui_names: Mapping[str, str] = field(default_factory=_default_ui_names)
    interval_days: int = 7
    start: float = DEFAULT_START
    keep: int = 2
    max_parallel: int = 1
    min_free_bytes: int = 0
    branches: tuple[str, ...] = ()
    development_branch: str = ""
    releases: Mapping[str, str] = field(default_factory=_no_releases)
    password: str = DEFAULT_PASSWORD
    url: str = DEFAULT_URL
    source_file: str = field(default="", compare=False)

    @property
    def enabled(self) -> bool:
        return bool(self.devices)

    @property
    def interval_seconds(self) -> int:
        return self.interval_days * 86400

    def release(self, branch: str) -> str:
        """The release name of a branch's images (its directory under the images root)."""
        found = self.releases.get(branch)
        if found:
            return found
        return DEVELOPMENT_RELEASE if branch == self.development_branch else branch

    def where(self, device: DeviceImages) -> str:
        """`file:line` of a device's entry."""
        return f"{self.source_file}:{device.line}"

    def device(self, codename: str) -> DeviceImages | None:
        """The configured device of this codename, if any."""
        return next((d for d in self.devices if d.codename == codename), None)

    def matrix(self) -> tuple[tuple[str, str, str, str, str], ...]:
        """(branch, release, device, UI, kernel) of every image the section
        names, whatever the trees hold; kernel "" for a device's only one."""
        return tuple(
            (branch, self.release(branch), device.codename, ui, kernel)
            for branch in self.branches
            for device in self.devices
            if device.builds_on(branch)
            for ui in device.uis_for(branch)
            for kernel in device.kernels_for(branch)
        )


def derive_uis(chassis: Sequence[str], gpu: bool = True) -> tuple[str, ...]:
    """The UIs of a device from what it is, like bpo's `get_ui_list`, in a fixed
    order: the chassis in the order given, each one's UIs in `CHASSIS_UIS`'s
    order, each UI once. handset, tablet: gnome-mobile, phosh, plasma-mobile,
    sxmo-de-sway (without a GPU: mate, xfce4, sxmo-de-dwm); laptop, convertible:
    console, gnome, plasma-desktop, sway (without: console, mate, xfce4, i3wm);
    embedded: console. KeyError for an unknown chassis."""
    found: list[str] = []
    for name in chassis:
        with_gpu, without = CHASSIS_UIS[name]
        found += [ui for ui in (with_gpu if gpu else without) if ui not in found]
    return tuple(found)


_TOP_KEYS = {
    "devices",
    "ui_names",
    "interval_days",
    "start",
    "keep",
    "max_parallel",
    "min_free_bytes",
    "development_branch",
    "releases",
    "password",
    "url",
}
_DEVICE_KEYS = {
    "codename",
    "pretty_name",
    "branches",
    "uis",
    "chassis",
    "gpu",
    "add_uis",
    "exclude_uis",
    "kernels",
    "overrides",
    "android_recovery_zip",
}


def read_images(
    r: NodeReader,
    node: yaml.Node | None,
    branches: tuple[str, ...],
    jobs_max_parallel: int,
    site_url: str,
) -> ImagesConfig:
    """The images section; `branches` are the configured branch names in order,
    `jobs_max_parallel` the bound of max_parallel, `site_url` the base of the
    default images URL."""
    w = "images."
    m = r.mapping(node, "images", _TOP_KEYS)
    ui_names = _read_ui_names(r, m.get("ui_names"))
    max_parallel = r.integer(m.get("max_parallel"), w + "max_parallel", 1, minimum=1)
    if max_parallel > jobs_max_parallel:
        r.error(
            m.get("max_parallel"),
            f"{w}max_parallel: {max_parallel} is more than jobs.max_parallel ({jobs_max_parallel})",
        )
        max_parallel = jobs_max_parallel
    development = r.string(m.get("development_branch"), w + "development_branch", "")
    if development and development not in branches:
        r.error(
            m.get("development_branch"),
            f"{w}development_branch: {development!r} is not a configured branch"
            f" ({', '.join(branches)})",
        )
        development = ""
    development = development or (branches[0] if branches else "")
    devices = _read_devices(r, m.get("devices"), branches, ui_names)
    return ImagesConfig(
        devices=devices,
        ui_names=ui_names,
        interval_days=r.integer(m.get("interval_days"), w + "interval_days", 7, minimum=1),
        start=_read_start(r, m.get("start")),
        keep=r.integer(m.get("keep"), w + "keep", 2, minimum=1),
        max_parallel=max_parallel,
        min_free_bytes=r.integer(m.get("min_free_bytes"), w + "min_free_bytes", 0),
        branches=branches,
        development_branch=development,
        releases=_read_releases(r, m.get("releases"), branches, development),
        password=_read_password(r, m.get("password")),
        url=_read_url(r, m.get("url"), site_url),
        source_file=r.source,
    )


def _pairs(r: NodeReader, node: yaml.Node | None, where: str) -> list[tuple[str, yaml.Node]]:
    """(key, value node) of a mapping whose keys are free: strings, each once."""
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
        return []
    if not isinstance(node, yaml.MappingNode):
        r.error(node, f"{where}: expected a mapping of keys to values")
        return []
    found: list[tuple[str, yaml.Node]] = []
    seen: set[str] = set()
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if not isinstance(key, str):
            r.error(key_node, f"{where}: expected a name as key")
        elif key in seen:
            r.error(key_node, f"{where}: key {key!r} appears twice")
        else:
            seen.add(key)
            found.append((key, value_node))
    return found


def _read_ui_names(r: NodeReader, node: yaml.Node | None) -> Mapping[str, str]:
    """The allowlist: the defaults, with these entries added (or renamed)."""
    names = dict(DEFAULT_UI_NAMES)
    for ui, value in _pairs(r, node, "images.ui_names"):
        where = f"images.ui_names.{ui}"
        pretty = r.string(value, where, "")
        if ui == "none":
            r.error(value, f"{where}: 'none' is not a UI: use 'console'")
        elif not is_image_name(ui):
            r.error(value, f"{where}: {ui!r} is not a valid UI name (a-z, 0-9, '.', '+', '-')")
        elif not pretty.strip():
            r.error(value, f"{where}: expected a pretty name")
        else:
            names[ui] = pretty
    return FrozenMapping(dict(sorted(names.items())))


def _read_start(r: NodeReader, node: yaml.Node | None) -> float:
    text = r.string(node, "images.start", "")
    if not text:
        return DEFAULT_START
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        r.error(node, f"images.start: expected a date (2025-06-20) or UTC time, got {text!r}")
        return DEFAULT_START
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _read_password(r: NodeReader, node: yaml.Node | None) -> str:
    password = r.string(node, "images.password", DEFAULT_PASSWORD)
    if not password or any(ch in password for ch in "\n\r"):
        r.error(node, "images.password: expected a non-empty password on one line")
        return DEFAULT_PASSWORD
    return password


def _read_url(r: NodeReader, node: yaml.Node | None, site_url: str) -> str:
    url = r.string(node, "images.url", "")
    if not url:
        return site_url.rstrip("/") + "/images/"
    if not url.startswith(("http://", "https://")) or any(ch.isspace() for ch in url):
        r.error(node, f"images.url: expected an http:// or https:// URL, got {url!r}")
        return site_url.rstrip("/") + "/images/"
    return url.rstrip("/") + "/"


def _read_releases(
    r: NodeReader, node: yaml.Node | None, branches: tuple[str, ...], development: str
) -> Mapping[str, str]:
    """Branch -> release name for every configured branch; given ones win."""
    given = r.mapping(node, "images.releases", set(branches))
    releases: dict[str, str] = {}
    owner: dict[str, str] = {}
    for branch in branches:
        default = DEVELOPMENT_RELEASE if branch == development else branch
        value = given.get(branch)
        release = r.string(value, f"images.releases.{branch}", default)
        if not is_release_name(release):
            r.error(value, f"images.releases.{branch}: {release!r} is not a valid release name")
            release = default
        if release in owner:
            r.error(
                value or node,
                f"images.releases.{branch}: release {release!r} is already the release of"
                f" {owner[release]!r}",
            )
        owner.setdefault(release, branch)
        releases[branch] = release
    return FrozenMapping(releases)


def _read_devices(
    r: NodeReader, node: yaml.Node | None, branches: tuple[str, ...], ui_names: Mapping[str, str]
) -> tuple[DeviceImages, ...]:
    devices: list[DeviceImages] = []
    seen: set[str] = set()
    for index, item in enumerate(r.sequence(node, "images.devices", required=False)):
        device = _read_device(r, item, f"images.devices[{index}]", branches, ui_names)
        if device is None:
            continue
        if device.codename in seen:
            r.error(item, f"images.devices[{index}].codename: {device.codename!r} is listed twice")
            continue
        seen.add(device.codename)
        devices.append(device)
    return tuple(devices)


def _read_device(
    r: NodeReader,
    item: yaml.Node,
    where: str,
    branches: tuple[str, ...],
    ui_names: Mapping[str, str],
) -> DeviceImages | None:
    if not isinstance(item, yaml.MappingNode):
        r.error(item, f"{where}: expected a mapping with codename, uis, ...")
        return None
    m = r.mapping(item, where, _DEVICE_KEYS)
    codename = r.string(m.get("codename"), f"{where}.codename", None)
    if codename is not None and not is_image_name(codename):
        r.error(
            m.get("codename"),
            f"{where}.codename: {codename!r} is not a valid codename (a-z, 0-9, '.', '+', '-')",
        )
        codename = None
    device_branches: tuple[str, ...] | None = None
    branches_node = m.get("branches")
    if branches_node is not None and not _is_null(branches_node):
        device_branches = _read_names(
            r, branches_node, f"{where}.branches", lambda b: _check_branch(b, branches)
        )
    chassis, gpu, uis = _read_uis(r, item, m, where, ui_names)
    kernels: tuple[str, ...] = ("",)
    if m.get("kernels") is not None:
        kernels = _read_kernels(r, m["kernels"], f"{where}.kernels")
    overrides = _read_overrides(r, m.get("overrides"), f"{where}.overrides", branches, ui_names)
    if codename is None:
        return None
    return DeviceImages(
        codename=codename,
        pretty_name=r.string(m.get("pretty_name"), f"{where}.pretty_name", ""),
        branches=device_branches,
        uis=uis,
        kernels=kernels,
        overrides=overrides,
        line=item.start_mark.line + 1,
        chassis=chassis,
        gpu=gpu,
        android_recovery_zip=r.boolean(
            m.get("android_recovery_zip"), f"{where}.android_recovery_zip", False
        ),
    )


def _read_uis(
    r: NodeReader,
    item: yaml.Node,
    m: Mapping[str, yaml.Node],
    where: str,
    ui_names: Mapping[str, str],
) -> tuple[tuple[str, ...], bool, tuple[str, ...]]:
    """(chassis, gpu, UIs) of a device entry: its `uis`, or the ones its chassis
    and GPU give, then `add_uis` appended and `exclude_uis` taken out."""

    def check(ui: str) -> str | None:
        return _check_ui(ui, ui_names)

    chassis = _read_chassis(r, m.get("chassis"), f"{where}.chassis")
    gpu = r.boolean(m.get("gpu"), f"{where}.gpu", True)
    if m.get("gpu") is not None and m.get("chassis") is None:
        r.error(m["gpu"], f"{where}.gpu: only used with a chassis")
    uis = _read_names(r, m.get("uis"), f"{where}.uis", check)
    if m.get("uis") is None and chassis:
        uis = derive_uis(chassis, gpu)
        for ui in uis:
            if (problem := check(ui)) is not None:
                r.error(m["chassis"], f"{where}.chassis: {problem}")
    elif m.get("uis") is None and m.get("chassis") is None:
        r.error(
            item,
            f"{where}.uis: missing, expected a list of UIs (known: {_known(ui_names)})"
            f" or a chassis ({_known(CHASSIS_UIS)})",
        )
    add = _read_named_nodes(r, m.get("add_uis"), f"{where}.add_uis", check)
    exclude = _read_named_nodes(r, m.get("exclude_uis"), f"{where}.exclude_uis", check)
    excluded = {name for name, _, _ in exclude}
    for name, node, here in add:
        if name in excluded:
            r.error(node, f"{here}: {name!r} is also in exclude_uis")
    found = list(uis) + [name for name, _, _ in add if name not in uis and name not in excluded]
    for name, node, here in exclude:
        if name not in found:
            listed = ", ".join(found) or "none"
            r.error(node, f"{here}: {name!r} is not one of the device's UIs ({listed})")
    kept = tuple(ui for ui in found if ui not in excluded)
    if found and not kept:
        r.error(m["exclude_uis"], f"{where}.exclude_uis: leaves the device no UI")
    return chassis, gpu, kept


def _read_chassis(r: NodeReader, node: yaml.Node | None, where: str) -> tuple[str, ...]:
    """One chassis name, or a list of them."""
    if node is None or _is_null(node):
        return ()

    def check(name: str) -> str | None:
        if name in CHASSIS_UIS:
            return None
        return f"unknown chassis {name!r} (known: {_known(CHASSIS_UIS)})"

    if isinstance(node, yaml.ScalarNode):
        problem = check(str(node.value))
        if problem is not None:
            r.error(node, f"{where}: {problem}")
            return ()
        return (str(node.value),)
    chassis = _read_names(r, node, where, check)
    if isinstance(node, yaml.SequenceNode) and not node.value:
        r.error(node, f"{where}: expected a chassis or a list of them, got an empty list")
    return chassis


def _read_overrides(
    r: NodeReader,
    node: yaml.Node | None,
    where: str,
    branches: tuple[str, ...],
    ui_names: Mapping[str, str],
) -> Mapping[str, ImageOverride]:
    found: dict[str, ImageOverride] = {}
    for name, value in r.mapping(node, where, {ALL_BRANCHES, *branches}).items():
        here = f"{where}.{name}"
        entry = r.mapping(value, here, {"uis", "kernels"})
        uis = kernels = None
        if entry.get("uis") is not None:
            uis = _read_names(r, entry["uis"], f"{here}.uis", lambda u: _check_ui(u, ui_names))
        if entry.get("kernels") is not None:
            kernels = _read_kernels(r, entry["kernels"], f"{here}.kernels")
        found[name] = ImageOverride(uis, kernels, value.start_mark.line + 1)
    return FrozenMapping(found)


def _read_kernels(r: NodeReader, node: yaml.Node, where: str) -> tuple[str, ...]:
    kernels = _read_names(r, node, where, _check_kernel, allow_empty=True)
    if isinstance(node, yaml.SequenceNode) and not node.value:
        r.error(node, f'{where}: expected at least one kernel ("" for the device\'s only one)')
        return ("",)
    if "" in kernels and len(kernels) > 1:
        r.error(node, f'{where}: "" (the device\'s only kernel) cannot go with named kernels')
    return kernels or ("",)


def _read_names(
    r: NodeReader,
    node: yaml.Node | None,
    where: str,
    check: _Check,
    *,
    allow_empty: bool = False,
) -> tuple[str, ...]:
    """A list of names, each checked (`check` says what is wrong, or None), each once."""
    found = _read_named_nodes(r, node, where, check, allow_empty=allow_empty)
    return tuple(name for name, _, _ in found)


def _read_named_nodes(
    r: NodeReader,
    node: yaml.Node | None,
    where: str,
    check: _Check,
    *,
    allow_empty: bool = False,
) -> list[tuple[str, yaml.Node, str]]:
    """`_read_names` with each good name's node and field, for later messages."""
    found: list[tuple[str, yaml.Node, str]] = []
    for index, item in enumerate(r.sequence(node, where, required=False)):
        here = f"{where}[{index}]"
        name = r.string(item, here, None)
        if name is None:
            continue
        if _is_null(item):
            if not allow_empty:
                r.error(item, f"{here}: expected a name, got an empty value")
                continue
            name = ""
        problem = check(name)
        if problem is not None:
            r.error(item, f"{here}: {problem}")
        elif any(name == seen for seen, _, _ in found):
            r.error(item, f"{here}: {name!r} is listed twice")
        else:
            found.append((name, item, here))
    return found


def _check_ui(ui: str, ui_names: Mapping[str, str]) -> str | None:
    if ui == "none":
        return "'none' is not a UI: use 'console'"
    if ui not in ui_names:
        return f"unknown UI {ui!r} (known: {_known(ui_names)})"
    return None


def _check_kernel(kernel: str) -> str | None:
    if kernel == "" or is_image_name(kernel):
        return None
    return f"{kernel!r} is not a valid kernel name (a-z, 0-9, '.', '+', '-')"


def _check_branch(branch: str, branches: tuple[str, ...]) -> str | None:
    if branch in branches:
        return None
    return f"{branch!r} is not a configured branch ({', '.join(branches)})"


def _known(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"
