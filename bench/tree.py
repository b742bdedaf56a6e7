"""Benchmark fixture: a deterministic generator of pmaports-shaped trees.

Writes N APKBUILDs (default 2,000) across main/, device/<category>/, cross/ and
extra-repos/systemd/, plus a few in device/archived/ (never built, not counted):
a few widely used libraries with a large fan-in, dependency chains up to about 8
deep and no cycles, device packages for aarch64 or armv7 (kernels, firmware,
shared SoC kernels), `all !armv7` and noarch packages, -dev/-doc/-openrc and
custom subpackages, a few versioned provides (`mkinitfs=…` and others) that
dependents use, and a systemd split repository that overrides some main
packages. The same seed always writes the same bytes.

Measures nothing itself: bench/populate.py and bench/run.py use it. `--check`
reads the tree back with reconciler.desired.reader.DesiredReader and prints the counts,
the broken packages (expected: none), the deepest dependency chain and any cycle.

    .venv/bin/python bench/tree.py --out DIR [--packages N] [--seed S] [--check]
"""

from __future__ import annotations

import argparse
import bisect
import functools
import hashlib
import itertools
import random
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.config.branches import BranchConfig
from reconciler.desired.reader import DesiredReader
from reconciler.model.names import RepoKey
from reconciler.model.packages import BranchDesired, DepRef
from reconciler.plan.cycles import find_cycles

ARCHES = ("x86_64", "aarch64", "armv7", "riscv64", "x86", "ppc64le", "loongarch64")
NATIVE = ARCHES[0]
MARKER = ".bench-tree"


def _words(text: str) -> list[str]:
    return text.split()


MAIN_LEVELS = 8  # main packages form levels 0..7: chains of up to 8 packages
LEVEL_SHARE = (0.10, 0.14, 0.16, 0.16, 0.14, 0.12, 0.10, 0.08)
DEVICE_CATEGORIES = (("main", 4), ("community", 28), ("testing", 63), ("downstream", 5))
# Names Alpine provides: dependencies on them are external and dropped by the resolver.
ALPINE = _words(
    "bash bc bison cargo cmake elogind-dev eudev-dev findutils flex gawk glib-dev go "
    "gtk+3.0-dev libdrm-dev linux-headers meson musl-dev openssl-dev perl py3-gpep517 "
    "py3-pytest py3-setuptools py3-wheel python3-dev qt6-qtbase-dev samurai scdoc "
    "wayland-dev wayland-protocols zlib-dev mesa-dri-gallium dtbtool mkbootimg"
)
SYLLABLES = _words(
    "ba be bo da de do fa fe ga gi go ha hu ka ki ko la li lu ma me mo na ne no pa pi po "
    "ra re ri ro sa se so ta te ti to va ve vi wa wo xa ya yo za ze zu"
)
VENDORS = _words(
    "samsung xiaomi oneplus google motorola sony lg asus pine64 purism fairphone lenovo "
    "huawei nokia amazon wileyfox bq htc zte shift"
)
SOCS = (
    ("qcom-msm8916", "aarch64"),
    ("qcom-sdm845", "aarch64"),
    ("qcom-sm7225", "aarch64"),
    ("allwinner", "aarch64"),
    ("rockchip", "aarch64"),
    ("mediatek-mt8183", "aarch64"),
    ("exynos7870", "aarch64"),
    ("qcom-msm8974", "armv7"),
    ("exynos4", "armv7"),
    ("tegra", "armv7"),
    ("omap", "armv7"),
    ("qcom-apq8064", "armv7"),
)
CROSS_TOOLS = ("binutils", "musl", "gcc", "busybox-static", "gcc6", "gcc4")
MAINTAINERS = (
    "Jane Doe <jane@example.org>",
    "Alex Roe <alex@example.org>",
    "Kim Lee <kim@example.org>",
    "Sam Poe <sam@example.org>",
    "Robin Fox <robin@example.org>",
)
LICENSES = ("MIT", "GPL-2.0-only", "GPL-3.0-or-later", "LGPL-2.1-or-later", "Apache-2.0", "BSD-3")


@dataclass
class Pkg:
    """One APKBUILD to write."""

    name: str
    path: str  # directory below the tree root
    kind: str
    level: int
    pkgver: str
    pkgrel: int
    arch: str
    desc: str
    depends: list[str] = field(default_factory=list)
    makedepends: list[str] = field(default_factory=list)
    makedepends_build: list[str] = field(default_factory=list)
    makedepends_host: list[str] = field(default_factory=list)
    checkdepends: list[str] = field(default_factory=list)
    subpackages: list[str] = field(default_factory=list)  # tokens, "$pkgname-dev" etc.
    functions: dict[str, list[str]] = field(default_factory=dict)  # split function bodies
    provides: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    variables: list[tuple[str, str]] = field(default_factory=list)  # before pkgname
    alias: str = ""  # a versioned provide other packages may depend on
    weight: float = 1.0  # how likely others pick it as a dependency
    has_dev: bool = False
    build: str = "make"


@dataclass
class Tree:
    packages: list[Pkg]
    archived: list[Pkg]

    @property
    def counts(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for pkg in self.packages:
            top = pkg.path.split("/")[0]
            result[top] = result.get(top, 0) + 1
        return result


class _Names:
    """Unique, plausible package names (checked against every name already used)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.taken: set[str] = set(ALPINE)

    def word(self, low: int = 2, high: int = 3) -> str:
        return "".join(self.rng.choice(SYLLABLES) for _ in range(self.rng.randint(low, high)))

    def claim(self, name: str) -> bool:
        if name in self.taken:
            return False
        self.taken.add(name)
        return True

    def fresh(self, make: str) -> str:
        for _ in range(1000):
            name = make.format(w=self.word())
            if self.claim(name):
                return name
        raise RuntimeError(f"no free name for {make}")


def _version(rng: random.Random, kind: str) -> str:
    if kind == "kernel":
        return rng.choice(("3.18.140", "4.4.302", "4.9.337", "4.19.325", "6.12.8", "6.13.1"))
    if kind == "firmware":
        return f"{rng.randint(2019, 2025)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    if kind == "device":
        return str(rng.randint(1, 9))
    shape = rng.random()
    major, minor, patch = rng.randint(0, 12), rng.randint(0, 30), rng.randint(0, 20)
    if shape < 0.5:
        return f"{major}.{minor}.{patch}"
    if shape < 0.7:
        return f"{major}.{minor}"
    if shape < 0.8:
        return f"{major}.{minor}_git{rng.randint(2022, 2025)}{rng.randint(1, 12):02d}01"
    if shape < 0.9:
        return f"{major + 1}.{minor}.{patch}_rc{rng.randint(1, 5)}"
    return f"{rng.randint(2020, 2025)}.{rng.randint(1, 12):02d}"


def _arch_for(rng: random.Random, kind: str) -> str:
    if kind in ("py", "font", "ui"):
        return "noarch"
    roll = rng.random()
    for limit, arch in (
        (0.78, "all"),
        (0.86, "all !armv7"),
        (0.91, "all !riscv64 !loongarch64"),
        (0.95, "x86_64 aarch64"),
        (0.98, "aarch64 armv7"),
    ):
        if roll < limit:
            return arch
    return "x86_64 x86"


def _counts(total: int) -> tuple[int, int, int, int]:
    """(main, device, cross, systemd) APKBUILD counts for `total`."""
    cross = min(max(1, round(total * 0.012)), len(CROSS_TOOLS) * (len(ARCHES) - 1))
    systemd = max(3, round(total * 0.04))
    device = round(total * 0.46)
    main = total - cross - systemd - device
    if main < 12:
        raise ValueError(f"{total} packages are too few for a pmaports-shaped tree (min 30)")
    return main, device, cross, systemd


class _Picker:
    """Weighted choice among the first n packages of a list (cumulative weights)."""

    def __init__(self, rng: random.Random, pkgs: list[Pkg]) -> None:
        self.rng = rng
        self.pkgs = pkgs
        self.cum = list(itertools.accumulate(p.weight for p in pkgs))

    def pick(self, n: int) -> Pkg:
        point = self.rng.random() * self.cum[n - 1]
        return self.pkgs[min(bisect.bisect_right(self.cum, point, 0, n), n - 1)]


def _use(rng: random.Random, user: Pkg, dep: Pkg) -> None:
    """Record that `user` needs `dep`, spelled the way pmaports packages do."""
    if dep.has_dev and rng.random() < 0.85:
        token = f"{dep.name}-dev"
        if rng.random() < 0.08:
            token += ">=0.0.1"  # a versioned constraint (dropped as external if unmet)
        target = user.makedepends if user.kind != "kernel" else user.makedepends_host
        if token not in target:
            target.append(token)
        if rng.random() < 0.2 and dep.name not in user.depends:
            user.depends.append(dep.name)
        return
    name = dep.alias if dep.alias and rng.random() < 0.6 else dep.name
    if user.kind in ("lib", "app") and rng.random() < 0.15:
        if name not in user.checkdepends:
            user.checkdepends.append(name)
    elif name not in user.depends:
        user.depends.append(name)


def _fixed_main() -> list[Pkg]:
    """The main packages every pmaports tree has and others use a lot."""
    crossdirect = Pkg(
        "crossdirect", "main/crossdirect", "app", 0, "5", 1, "all", "Cross compiler wrappers"
    )
    devicepkg = Pkg(
        "devicepkg-dev", "main/devicepkg-dev", "app", 1, "0.19.2", 0, "noarch", "Device tools"
    )
    mkinitfs = Pkg(
        "postmarketos-mkinitfs",
        "main/postmarketos-mkinitfs",
        "app",
        3,
        "2.6",
        0,
        "all",
        "Tool to generate initramfs images for postmarketOS",
        provides=["mkinitfs=$pkgver-r$pkgrel", "initramfs-generator"],
        alias="mkinitfs",
        weight=8.0,
    )
    base = Pkg(
        "postmarketos-base",
        "main/postmarketos-base",
        "app",
        4,
        "37",
        2,
        "noarch",
        "Meta package for minimal postmarketOS base",
        subpackages=["$pkgname-openrc", "$pkgname-doc"],
        weight=6.0,
    )
    return [crossdirect, devicepkg, mkinitfs, base]


def _main_packages(rng: random.Random, names: _Names, count: int) -> list[Pkg]:
    sizes = [max(1, round(count * share)) for share in LEVEL_SHARE]
    sizes[-1] = count - sum(sizes[:-1])
    fixed = _fixed_main()
    for pkg in fixed:
        names.claim(pkg.name)
    names.claim("mkinitfs")
    core = max(3, count // 100)
    pkgs: list[Pkg] = list(fixed)
    for level, size in enumerate(sizes):
        size -= sum(1 for p in fixed if p.level == level)
        for i in range(max(size, 0)):
            pkgs.append(_main_package(rng, names, level, i < core))
    pkgs.sort(key=lambda p: p.level)
    picker = _Picker(rng, pkgs)
    starts = [next(i for i, p in enumerate(pkgs) if p.level == lv) for lv in range(MAIN_LEVELS)]
    for pkg in pkgs:
        externals = rng.sample(ALPINE, rng.choice((0, 1, 1, 2, 3)))
        if pkg.kind == "font" or pkg.name == "crossdirect":
            pkg.makedepends += [e for e in externals[:1] if e not in pkg.makedepends]
            continue
        if pkg.level == 0:
            pkg.makedepends += externals
            continue
        prev_start, this_start = starts[pkg.level - 1], starts[pkg.level]
        parent = pkgs[rng.randrange(prev_start, this_start)]  # the chain link one level down
        deps = {parent.name: parent}
        fan = rng.choice((0, 1, 1, 2, 2, 3, 4, 6)) + (6 if pkg.kind == "ui" else 0)
        for _ in range(fan):
            dep = picker.pick(this_start)
            deps[dep.name] = dep
        for dep in deps.values():
            _use(rng, pkg, dep)
        pkg.makedepends += [e for e in externals if e not in pkg.makedepends]
    return pkgs


def _main_package(rng: random.Random, names: _Names, level: int, core: bool) -> Pkg:
    roll = rng.random()
    if level == 0:
        kind = "lib" if core or roll < 0.8 else "font"
    elif level <= 3:
        kind = "lib" if roll < 0.6 else "app" if roll < 0.85 else "py"
    elif level <= 5:
        kind = "lib" if roll < 0.3 else "app" if roll < 0.8 else "py"
    else:
        kind = "app" if roll < 0.7 else "ui"
    make = {
        "lib": "lib{w}",
        "app": "{w}",
        "py": "py3-{w}",
        "font": "font-{w}",
        "ui": "postmarketos-ui-{w}",
    }[kind]
    name = names.fresh(make)
    pkg = Pkg(
        name,
        f"main/{name}",
        kind,
        level,
        _version(rng, kind),
        rng.choice((0, 0, 0, 1, 1, 2, 3, 5)),
        _arch_for(rng, kind),
        f"The {name} {'library' if kind == 'lib' else 'package'}",
    )
    if kind == "lib":
        pkg.has_dev = True
        pkg.weight = 40.0 if level == 0 and core else 4.0
        pkg.build = rng.choice(("meson", "cmake", "make"))
        pkg.subpackages = ["$pkgname-dev"] + (["$pkgname-doc"] if roll < 0.5 else [])
    elif kind == "app":
        pkg.build = rng.choice(("meson", "make", "cargo", "go"))
        extra = rng.random()
        pkg.subpackages = ["$pkgname-doc"] if extra < 0.45 else []
        if extra < 0.15:
            pkg.subpackages.append(rng.choice(("$pkgname-openrc", "$pkgname-openrc::noarch")))
        elif extra < 0.2:
            pkg.subpackages.append("$pkgname-bash-completion")
        elif extra < 0.26:
            pkg.subpackages.append("$pkgname-tools:tools")
            pkg.functions["tools"] = [
                'pkgdesc="$pkgdesc (command line tools)"',
                'depends="$pkgname=$pkgver-r$pkgrel"',
                "amove usr/bin",
            ]
        elif extra < 0.3:
            pkg.subpackages.append("$pkgname-lang")
    elif kind == "py":
        pkg.build, pkg.weight = "python", 2.0
        pkg.makedepends = ["py3-gpep517", "py3-setuptools", "py3-wheel"]
        pkg.checkdepends = ["py3-pytest"]
        pkg.variables = [("_pyname", name.removeprefix("py3-"))]
    elif kind == "ui":
        pkg.weight = 0.2
        pkg.subpackages = ["$pkgname-extras:extras"]
        pkg.functions["extras"] = [
            'pkgdesc="Meta package for additional programs"',
            f'depends="{rng.choice(ALPINE)}"',
            'mkdir "$subpkgdir"',
        ]
    if kind in ("lib", "app") and level <= 4 and rng.random() < 0.04:
        pkg.alias = f"{name}-provider"
        names.claim(pkg.alias)
        pkg.provides.append(f"{pkg.alias}=$pkgver-r$pkgrel")
        pkg.weight *= 2
    if rng.random() < 0.1:
        pkg.options.append("!check")
    return pkg


def _shared_kernels(rng: random.Random, names: _Names, budget: int) -> list[Pkg]:
    """Mainline kernels and SoC packages many devices share (device/community)."""
    pkgs: list[Pkg] = []
    for soc, arch in SOCS[: max(1, min(len(SOCS), budget // 60))]:
        if budget - len(pkgs) < 8:
            break
        kernel = Pkg(
            f"linux-postmarketos-{soc}",
            f"device/community/linux-postmarketos-{soc}",
            "kernel",
            9,
            _version(rng, "kernel"),
            rng.randint(0, 4),
            arch,
            f"Mainline kernel fork for {soc} devices",
            makedepends_build=["bash", "bc", "bison", "devicepkg-dev", "flex", "perl"],
            makedepends_host=["openssl-dev", "elogind-dev"],
            options=["!check", "!strip", "pmb:cross-native", "pmb:kconfigcheck-community"],
        )
        socpkg = Pkg(
            f"soc-{soc}",
            f"device/community/soc-{soc}",
            "soc",
            9,
            str(rng.randint(1, 9)),
            0,
            arch,
            f"Common package for {soc} devices",
            depends=["postmarketos-base", rng.choice(ALPINE)],
            subpackages=["$pkgname-openrc"],
        )
        names.claim(kernel.name)
        names.claim(socpkg.name)
        pkgs += [kernel, socpkg]
    return pkgs


def _device_packages(
    rng: random.Random, names: _Names, budget: int, archived: int
) -> tuple[list[Pkg], list[Pkg]]:
    """(devices, kernels and firmware in device/<category>/, those in device/archived/)."""
    pkgs = _shared_kernels(rng, names, budget)
    shared = [(k.name, s.name, k.arch) for k, s in zip(pkgs[::2], pkgs[1::2], strict=True)]
    while len(pkgs) < budget + archived:
        archive = len(pkgs) >= budget
        room = (budget + archived if archive else budget) - len(pkgs)
        vendor = rng.choice(VENDORS)
        codename = names.word()
        device = f"device-{vendor}-{codename}"
        if not names.claim(device):
            continue
        title = f"{vendor.capitalize()} {codename.capitalize()}"
        arch = "aarch64" if rng.random() < 0.75 else "armv7"
        weights = [w for _, w in DEVICE_CATEGORIES]
        category = rng.choices([c for c, _ in DEVICE_CATEGORIES], weights)[0]
        category = "archived" if archive else category
        usable = [s for s in shared if s[2] == arch]
        use_shared = bool(usable) and rng.random() < 0.4
        own_kernel = (not use_shared or rng.random() < 0.25) and room >= 2
        firmware = rng.random() < 0.5 and room >= 2 + own_kernel
        dev = Pkg(
            device,
            f"device/{category}/{device}",
            "device",
            10,
            _version(rng, "device"),
            rng.randint(0, 3),
            arch,
            title,
            depends=["postmarketos-base", "mkinitfs", *rng.sample(ALPINE[-3:], 1)],
            makedepends=["devicepkg-dev"],
            options=["!check", "!archcheck"],
        )
        group = [dev]
        kernel_name = f"linux-{vendor}-{codename}"
        if own_kernel:
            names.claim(kernel_name)
            group.append(
                Pkg(
                    kernel_name,
                    f"device/{category}/{kernel_name}",
                    "kernel",
                    9,
                    _version(rng, "kernel"),
                    rng.randint(0, 6),
                    arch,
                    f"{title} kernel fork",
                    makedepends=["bash", "bc", "bison", "devicepkg-dev", "flex", "perl"]
                    + (["dtbtool"] if arch == "armv7" else []),
                    options=["!strip", "!check", "!tracedeps", "pmb:cross-native"],
                    variables=[("_flavor", f"{vendor}-{codename}")],
                )
            )
        if use_shared:
            kernel, socpkg, _ = rng.choice(usable)
            dev.depends.append(socpkg)
            if own_kernel:  # a mainline and a downstream kernel to choose from
                dev.subpackages += [
                    "$pkgname-kernel-mainline:kernel_mainline",
                    "$pkgname-kernel-downstream:kernel_downstream",
                ]
                for func, desc, dep in (
                    ("kernel_mainline", "Close to mainline kernel", kernel),
                    ("kernel_downstream", "Downstream kernel", kernel_name),
                ):
                    dev.functions[func] = [
                        f'pkgdesc="{desc}"',
                        f'depends="{dep}"',
                        "devicepkg_subpackage_kernel $startdir $pkgname $subpkgname",
                    ]
            else:
                dev.depends.append(kernel)
        else:
            dev.depends.append(kernel_name)
        if firmware:
            fw = f"firmware-{vendor}-{codename}"
            names.claim(fw)
            group.append(
                Pkg(
                    fw,
                    f"device/{category}/{fw}",
                    "firmware",
                    9,
                    _version(rng, "firmware"),
                    0,
                    arch if rng.random() < 0.7 else "aarch64 armv7",
                    f"Firmware for {title}",
                    options=["!check", "!strip", "!archcheck", "!tracedeps", "pmb:cross-native"],
                    variables=[("_commit", hashlib.sha1(fw.encode()).hexdigest())],
                )
            )
            dev.subpackages.append("$pkgname-nonfree-firmware:nonfree_firmware")
            dev.functions["nonfree_firmware"] = [
                'pkgdesc="GPU/WiFi/BT/Modem/Video firmware"',
                f'depends="{fw}"',
                'mkdir "$subpkgdir"',
            ]
        pkgs += group
    kept = [p for p in pkgs if not p.path.startswith("device/archived/")]
    return kept, [p for p in pkgs if p.path.startswith("device/archived/")]


def _cross_packages(names: _Names, count: int, core: Pkg) -> list[Pkg]:
    pkgs: list[Pkg] = []
    made: set[str] = set()
    for tool, arch in itertools.product(CROSS_TOOLS, ARCHES[1:]):
        if len(pkgs) >= count:
            break
        name = f"{tool}-{arch}"
        names.claim(name)
        pkg = Pkg(name, f"cross/{name}", "cross", 9, "2.43.1", 0, NATIVE, f"{tool} for {arch}")
        pkg.variables = [("CTARGET_ARCH", arch), ("CTARGET", "$(arch_to_hostspec $CTARGET_ARCH)")]
        pkg.options = ["!check", "!strip"]
        if tool == "binutils":
            pkg.makedepends = [f"{core.name}-dev", "bison", "flex", "zlib-dev"]
        elif tool == "musl":
            pkg.pkgver = "1.2.5"
            pkg.subpackages = [f"musl-dev-{arch}:package_dev"]
            names.claim(f"musl-dev-{arch}")
        elif tool.startswith("gcc"):
            pkg.pkgver = {"gcc": "14.2.0", "gcc6": "6.4.0", "gcc4": "4.9.4"}[tool]
            pkg.depends = [f"binutils-{arch}"] if f"binutils-{arch}" in made else []
            pkg.makedepends_build = ["bison", "flex", "gawk", f"{core.name}-dev"]
            host = [f"musl-dev-{arch}"] if f"musl-{arch}" in made else []
            pkg.makedepends_host = ["linux-headers", *host]
            if tool == "gcc":
                pkg.subpackages = [f"g++-{arch}:gpp"]
                names.claim(f"g++-{arch}")
                pkg.functions["gpp"] = [f'pkgdesc="GNU C++ for {arch}"', 'depends="$pkgname"']
        else:
            pkg.pkgver = "1.37.0"
        made.add(name)
        pkgs.append(pkg)
    return pkgs


def _systemd_packages(rng: random.Random, names: _Names, count: int, main: list[Pkg]) -> list[Pkg]:
    core = [p for p in main if p.level <= 1 and p.has_dev]
    systemd = Pkg(
        "systemd",
        "extra-repos/systemd/systemd",
        "lib",
        0,
        "257.2",
        1,
        "all",
        "System and service manager (postmarketOS build)",
        has_dev=True,
        weight=30.0,
        build="meson",
        subpackages=["$pkgname-libs", "$pkgname-dev", "$pkgname-doc"],
    )
    names.claim("systemd")
    for dep in rng.sample(core, min(4, len(core))):
        systemd.makedepends.append(f"{dep.name}-dev")
    base = Pkg(
        "postmarketos-base-systemd",
        "extra-repos/systemd/postmarketos-base-systemd",
        "app",
        0,
        "3",
        0,
        "noarch",
        "Meta package for systemd based postmarketOS",
        depends=["systemd", "postmarketos-base"],
        subpackages=["$pkgname-openrc"],
    )
    names.claim(base.name)
    pkgs = [systemd, base]
    # Overrides of main packages: only levels >= 2, so systemd (built on levels 0-1)
    # never reaches one of them and no cycle through the split repository is possible.
    candidates = [p for p in main if p.level >= 2 and p.kind in ("app", "lib")]
    overrides = sorted(
        rng.sample(candidates, min(len(candidates), max(1, (count - 2) * 35 // 100))),
        key=lambda p: p.level,
    )
    for orig in overrides[: count - 2]:
        pkgs.append(
            Pkg(
                orig.name,
                f"extra-repos/systemd/{orig.name}",
                orig.kind,
                orig.level,
                orig.pkgver,
                orig.pkgrel + 1,
                orig.arch,
                orig.desc + " (systemd)",
                depends=[*orig.depends, "systemd"],
                makedepends=[*orig.makedepends, "systemd-dev"],
                checkdepends=list(orig.checkdepends),
                subpackages=list(orig.subpackages),
                functions=dict(orig.functions),
                options=list(orig.options),
                has_dev=orig.has_dev,
                build=orig.build,
            )
        )
    while len(pkgs) < count:
        name = names.fresh("systemd-{w}")
        pkg = Pkg(
            name,
            f"extra-repos/systemd/{name}",
            "app",
            1,
            _version(rng, "app"),
            rng.randint(0, 2),
            _arch_for(rng, "app"),
            f"systemd integration: {name}",
            build="meson",
            subpackages=["$pkgname-doc"] if rng.random() < 0.3 else [],
        )
        _use(rng, pkg, systemd)
        for dep in rng.sample(main, 2):
            if dep.kind != "ui":
                _use(rng, pkg, dep)
        pkgs.append(pkg)
    return pkgs


def generate(total: int = 2000, seed: int = 1) -> Tree:
    """The packages of a tree with `total` APKBUILDs (deterministic from `seed`)."""
    rng = random.Random(seed)
    names = _Names(rng)
    n_main, n_device, n_cross, n_systemd = _counts(total)
    main = _main_packages(rng, names, n_main)
    core = max((p for p in main if p.level == 0 and p.has_dev), key=lambda p: p.weight)
    devices, archived = _device_packages(rng, names, n_device, max(1, total // 200))
    cross = _cross_packages(names, n_cross, core)
    systemd = _systemd_packages(rng, names, n_systemd, main)
    return Tree(main + devices + cross + systemd, archived)


# --- APKBUILD text ------------------------------------------------------------------
def _quoted(name: str, values: list[str]) -> str:
    if not values:
        return ""
    if len(values) <= 3:
        return f'{name}="{" ".join(values)}"\n'
    return f'{name}="\n' + "".join(f"\t{v}\n" for v in values) + '\t"\n'


def _hex(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()


_BUILD_BODIES = {
    "meson": (
        ["abuild-meson \\", "\t\t-Db_lto=true \\", "\t\t. output", "meson compile -C output"],
        ['DESTDIR="$pkgdir" meson install --no-rebuild -C output'],
    ),
    "cmake": (
        ["cmake -B build -G Ninja \\", "\t\t-DCMAKE_INSTALL_PREFIX=/usr", "cmake --build build"],
        ['DESTDIR="$pkgdir" cmake --install build'],
    ),
    "make": (["make PREFIX=/usr"], ['make PREFIX=/usr DESTDIR="$pkgdir" install']),
    "cargo": (
        ["cargo auditable build --frozen --release"],
        ['install -Dm755 target/release/$pkgname -t "$pkgdir"/usr/bin/'],
    ),
    "go": (
        ['go build -v -ldflags "-X main.version=$pkgver"'],
        ['install -Dm755 $pkgname -t "$pkgdir"/usr/bin/'],
    ),
    "python": (
        ["gpep517 build-wheel --wheel-dir .dist --output-fd 3 3>&1 >&2"],
        ['python3 -m installer -d "$pkgdir" .dist/*.whl'],
    ),
}


def _function(name: str, body: list[str]) -> str:
    return f"\n{name}() {{\n" + "".join(f"\t{line}\n" for line in body) + "}\n"


def render(pkg: Pkg, rng: random.Random) -> str:
    """The APKBUILD text of `pkg`."""
    head: list[str] = []
    if pkg.kind == "cross":
        tool = pkg.name.rsplit("-", 1)[0]
        head += [
            "# Automatically generated aport, do not edit!",
            f"# Generator: pmbootstrap aportgen {pkg.name}",
            f"# Based on: main/{tool} (from Alpine)",
            "",
        ]
    if pkg.kind == "device":
        head.append("# Reference: <https://postmarketos.org/devicepkg>")
    if rng.random() < 0.3:
        head.append(f"# Contributor: {rng.choice(MAINTAINERS)}")
    head.append(f"# Maintainer: {rng.choice(MAINTAINERS)}")
    text = "\n".join(head) + "\n"
    name = pkg.name
    for var, value in pkg.variables:
        text += f'{var}="{value}"\n'
        if var in ("_flavor", "_pyname") and name.endswith(value):
            name = name.removesuffix(value) + "$" + var
    text += f"pkgname={name}\npkgver={pkg.pkgver}\npkgrel={pkg.pkgrel}\n"
    text += f'pkgdesc="{pkg.desc or pkg.name}"\n'
    text += f'url="https://example.org/{pkg.name}"\n'
    text += f'arch="{pkg.arch}"\n'
    text += f'license="{rng.choice(LICENSES)}"\n'
    text += _quoted("depends", pkg.depends)
    text += _quoted("makedepends", pkg.makedepends)
    text += _quoted("makedepends_build", pkg.makedepends_build)
    text += _quoted("makedepends_host", pkg.makedepends_host)
    text += _quoted("checkdepends", pkg.checkdepends)
    text += _quoted("provides", pkg.provides)
    text += _quoted("subpackages", pkg.subpackages)
    if pkg.options:
        text += f'options="{" ".join(pkg.options)}"\n'
    sources = [f"{pkg.name}-$pkgver.tar.gz::https://example.org/{pkg.name}/$pkgver.tar.gz"]
    if any("openrc" in s for s in pkg.subpackages):
        sources.append(f"{pkg.name}.initd")
    if pkg.kind == "kernel":
        sources += [f"config-{pkg.name.removeprefix('linux-')}.{a}" for a in pkg.arch.split()]
    if pkg.kind == "device":
        sources = ["deviceinfo", "modules-initfs"]
    text += _quoted("source", sources)
    text += f'builddir="$srcdir/{pkg.name}-$pkgver"\n'
    if pkg.kind == "device":
        build = ["devicepkg_build $startdir $pkgname"]
        package = ["devicepkg_package $startdir $pkgname"]
    elif pkg.kind == "kernel":
        build = ["unset LDFLAGS", 'make O="$_outdir" ARCH="$_carch" CC="${CC:-gcc}"']
        package = ['downstreamkernel_package "$builddir" "$pkgdir" "$_carch" "$_flavor"']
    elif pkg.kind in ("firmware", "font", "ui", "soc"):
        build = []
        package = ['install -Dm644 "$srcdir"/* -t "$pkgdir"/usr/share/$pkgname/']
    else:
        build, package = _BUILD_BODIES[pkg.build]
    if build:
        text += _function("build", build)
    if pkg.checkdepends and "!check" not in pkg.options:
        text += _function("check", ["make check"])
    text += _function("package", package)
    for func, body in pkg.functions.items():
        text += _function(func, body)
    files = [s.split("::")[0].replace("$pkgver", pkg.pkgver) for s in sources]
    text += '\nsha512sums="\n' + "".join(f"{_hex(pkg.name + f)}  {f}\n" for f in files) + '"\n'
    return text


PMAPORTS_CFG = """\
# Reference: https://postmarketos.org/pmaports.cfg
# Generated by reconciler's bench/tree.py; not a real pmaports checkout.
[pmaports]
version=7
pmbootstrap_min_version=3.11.0
channel=edge
supported_arches={arches}

[repo:systemd]
pmaports_dir=systemd
"""


def write_tree(root: Path, total: int = 2000, seed: int = 1) -> Tree:
    """Write the tree under `root` (replacing a tree this script wrote there before)."""
    if root.exists():
        if any(root.iterdir()) and not (root / MARKER).exists():
            raise SystemExit(f"{root} exists and was not written by bench/tree.py; refusing")
        shutil.rmtree(root)
    tree = generate(total, seed)
    rng = random.Random(seed + 1)
    root.mkdir(parents=True)
    (root / MARKER).write_text(f"packages={total} seed={seed}\n", encoding="utf-8")
    (root / "pmaports.cfg").write_text(
        PMAPORTS_CFG.format(arches=",".join(sorted(ARCHES))), encoding="utf-8"
    )
    for pkg in tree.packages + tree.archived:
        directory = root / pkg.path
        directory.mkdir(parents=True)
        (directory / "APKBUILD").write_text(render(pkg, rng), encoding="utf-8")
    return tree


# --- checking --------------------------------------------------------------------
def depth(desired: BranchDesired) -> tuple[int, list[str]]:
    """The longest chain of build dependencies (in packages) and one such chain."""
    graph = {
        DepRef(key, name): spec.build_deps
        for key, specs in desired.repos.items()
        for name, spec in specs.items()
    }

    @functools.cache
    def longest(ref: DepRef) -> tuple[int, tuple[str, ...]]:
        best: tuple[int, tuple[str, ...]] = (0, ())
        for dep in graph.get(ref, ()):
            if dep in graph:
                best = max(best, longest(dep))
        return best[0] + 1, (ref.pkgname, *best[1])

    sys.setrecursionlimit(10_000)
    result = max((longest(ref) for ref in graph), default=(0, ()))
    return result[0], list(result[1])


def check(root: Path) -> int:
    """Read the tree back like the daemon does; print counts; 1 if broken or cyclic."""
    reader = DesiredReader(("systemd",))
    files = reader.scan_tree(root)
    desired = reader.read_branch(BranchConfig("main", root, ARCHES))
    print(f"{root}: {len(files)} APKBUILDs read, {len(desired.broken)} broken")
    for broken in desired.broken[:20]:
        print(f"  broken: {broken.reason}")
    cycles = 0
    for key, specs in sorted(desired.repos.items()):
        subs = sum(len(s.subpackages) for s in specs.values())
        graph = {n: [d.pkgname for d in s.build_deps if d.repo == key] for n, s in specs.items()}
        found = find_cycles(graph)
        cycles += len(found)
        print(f"  {key.relpath:36} {len(specs):5} packages {subs:5} subpackages, cycles: {found}")
    fan_in: dict[str, int] = {}
    for spec in desired.repos.get(RepoKey("main", "", NATIVE), {}).values():
        for dep in spec.build_deps:
            fan_in[dep.pkgname] = fan_in.get(dep.pkgname, 0) + 1
    top = sorted(fan_in.items(), key=lambda kv: -kv[1])[:5]
    print(f"  most used in main/{NATIVE}: {', '.join(f'{n} ({c})' for n, c in top)}")
    if not cycles:
        longest, chain = depth(desired)
        print(f"  deepest chain: {longest} packages: {' -> '.join(chain)}")
    return 1 if desired.broken or cycles else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--packages", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--check", action="store_true", help="read it back and report")
    args = parser.parse_args()
    tree = write_tree(args.out, args.packages, args.seed)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(tree.counts.items()))
    print(f"wrote {len(tree.packages)} APKBUILDs ({counts}) + {len(tree.archived)} archived")
    if args.check:
        sys.exit(check(args.out))


if __name__ == "__main__":
    main()
