"""APKBUILD text -> fields, never executing shell (apk-formats.md §4).

`parse_apkbuild` reads the top-level assignments statically, as pmbootstrap's
parser does (see `reconciler.formats.shellvars`), then validates every field
that later ends up in a path, a command line or a version string, raising
`ApkbuildError` ("<path>: line <n>: <field>: <message>", the line of the
assignment whose value counts; "<path>: <field>: missing" for a field never
assigned) for anything unsafe or missing. Three deliberate differences from
pmbootstrap follow abuild and the shell instead: an undefined variable expands
to nothing, subpackages do not inherit `provides`, and continuation lines of a
multi-line quoted value are never read as assignments of their own.
`check_arch`, `package_arch` and `subpackage_arch` implement abuild's arch
rules, `APK_ARCHES` names the arches apk-tools knows; `Apkbuild.build_depends`
is pmbootstrap's list of build dependencies. Called by `desired` for each
APKBUILD of a checkout (which also judges arches and versions against the
branch, naming the line with `Apkbuild.line`).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, fields
from pathlib import PurePosixPath

from reconciler.formats.shellvars import Budget, Line, ShellVarsError, assignments
from reconciler.model.errors import InputError
from reconciler.model.names import is_safe_arch, is_safe_name

_PKGVER_RE = re.compile(r"[A-Za-z0-9._~+]+")
_PKGREL_RE = re.compile(r"0|[1-9][0-9]{0,8}")
_PRIORITY_RE = re.compile(r"[0-9]{1,9}")
_IFS_RE = re.compile(r"[ \t\n]+")
_OPERATOR_RE = re.compile(r"[<>=~@]")
_MAINTAINER_RE = re.compile(r"#[ \t]*Maintainer:(.*)")
_LINE_RE = re.compile(r": line ([1-9][0-9]*): ")
# Default split functions whose name is not simply the text after the last "-".
_COMPLETION_FUNCS = (
    ("-bash-completion", "bashcomp"),
    ("-zsh-completion", "zshcomp"),
    ("-fish-completion", "fishcomp"),
)
# The arch names apk-tools knows (its APK_DEFAULT_BASE_ARCH values, apk_arch.h).
APK_ARCHES = frozenset(
    [
        "aarch64",
        "arc700",
        "archs",
        "armeb",
        "armel",
        "armhf",
        "armv7",
        "loongarch32",
        "loongarch64",
        "loongarchx32",
        "mips",
        "mips64",
        "mips64el",
        "mipsel",
        "ppc",
        "ppc64",
        "ppc64le",
        "riscv32",
        "riscv64",
        "s390x",
        "sh2eb",
        "sh3",
        "sh4",
        "wasi32",
        "x86",
        "x86_64",
    ]
)
# The arches Alpine releases for: the ones a reason about an unknown arch lists.
ALPINE_ARCHES = (
    "aarch64",
    "armhf",
    "armv7",
    "loongarch64",
    "ppc64le",
    "riscv64",
    "s390x",
    "x86",
    "x86_64",
)
# Subpackages that abuild builds as noarch unless their arch is given (§4.2).
_NOARCH_SUFFIXES = (
    "-doc",
    "-openrc",
    "-lang",
    "sh-completion",
    "-pyc",
    "-nftrules",
    "-systemd",
    "-udev",
)


class ApkbuildError(InputError):
    """An APKBUILD that cannot be used: "<path>: line <line>: <field>: <message>".

    `field` is "" for file-level problems (a syntax error, a carriage return);
    `line` is the line of the assignment (or the syntax error), None when there
    is none (a field never assigned). Both are left out of the text when empty.
    """

    def __init__(self, path: str, field: str, message: str, line: int | None = None) -> None:
        super().__init__(error_text(path, line, field, message))
        self.path = path
        self.field = field
        self.message = message
        self.line = line


def error_text(path: str, line: int | None, field: str, message: str) -> str:
    """The text of an `ApkbuildError`, without the parts that are empty."""
    where = path if line is None else f"{path}: line {line}"
    return f"{where}: {field}: {message}" if field else f"{where}: {message}"


def error_line(reason: str, path: str) -> int | None:
    """The line an `ApkbuildError` text for `path` names, if it names one."""
    match = _LINE_RE.match(reason, len(path)) if reason.startswith(path) else None
    return int(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class Subpackage:
    """One `name[:func[:arch]]` entry of `subpackages`, with what its split function sets."""

    name: str
    func: str
    arch: str | None  # as written after the second ":"; None when not given
    pkgdesc: str = ""
    depends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Apkbuild:
    """The known fields of one APKBUILD, lists split on whitespace."""

    pkgname: str
    pkgver: str
    pkgrel: int
    pkgdesc: str = ""
    url: str = ""
    license: str = ""
    maintainer: str = ""
    arch: tuple[str, ...] = ()
    depends: tuple[str, ...] = ()
    makedepends: tuple[str, ...] = ()
    makedepends_build: tuple[str, ...] = ()
    makedepends_host: tuple[str, ...] = ()
    checkdepends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    provider_priority: int = 0
    install_if: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    subpackages: tuple[Subpackage, ...] = ()
    source: tuple[str, ...] = ()
    install: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    # (name, line of its last top-level assignment), in order of first assignment.
    lines: tuple[tuple[str, int], ...] = ()

    @property
    def version(self) -> str:
        return f"{self.pkgver}-r{self.pkgrel}"

    def line(self, name: str) -> int | None:
        """The line of the top-level assignment of `name` whose value counts."""
        for assigned, lineno in self.lines:
            if assigned == name:
                return lineno
        return None

    def build_depends(self) -> tuple[str, ...]:
        """Build dependencies as pmbootstrap computes them (§4.7 item 5), first-seen order.

        `makedepends` (or `makedepends_build` + `makedepends_host` when it is
        empty), `checkdepends` unless `!check`, then `depends`. Conflicts (`!x`)
        and names built by this APKBUILD itself are dropped, comparing the name
        without operator, version or `@tag`.
        """
        make = self.makedepends or (*self.makedepends_build, *self.makedepends_host)
        check = () if "!check" in self.options else self.checkdepends
        own = {self.pkgname, *(sub.name for sub in self.subpackages)}
        result: dict[str, None] = {}
        for dep in (*make, *check, *self.depends):
            if not dep.startswith("!") and dep_name(dep) not in own:
                result.setdefault(dep)
        return tuple(result)


def dep_name(dep: str) -> str:
    """The package name of a dependency token: `foo>=1.2` and `foo@edge` -> `foo`."""
    return _OPERATOR_RE.split(dep.removeprefix("!"), 1)[0]


def check_arch(arch: tuple[str, ...], carch: str) -> bool:
    """Whether a package with this `arch` list builds for `carch` (`!carch` always wins)."""
    if f"!{carch}" in arch:
        return False
    return any(token in ("all", "noarch", carch) for token in arch)


def unknown_arch(arch: tuple[str, ...], also: frozenset[str] = frozenset()) -> str | None:
    """The first name in `arch` (without its "!") that is neither `all`, `noarch`,
    an arch apk knows nor one of `also` (the arches a branch is configured with)."""
    for token in arch:
        name = token.removeprefix("!")
        if name not in APK_ARCHES and name not in also and name not in ("all", "noarch"):
            return name
    return None


def package_arch(arch: tuple[str, ...], carch: str) -> str:
    """The `.PKGINFO` arch of the main package built for `carch`."""
    return "noarch" if "noarch" in arch else carch


def subpackage_arch(sub: Subpackage, pkgarch: str, carch: str) -> str:
    """The `.PKGINFO` arch of a subpackage (§4.2): explicit arch, else suffix rules."""
    if sub.arch == "all":
        return carch
    if sub.arch:
        return sub.arch
    if sub.name.endswith(_NOARCH_SUFFIXES):
        return "noarch"
    return pkgarch


def to_json(apkbuild: Apkbuild) -> dict[str, object]:
    """A JSON-ready dict like `pmbootstrap apkbuild_parse` prints (without `lines`)."""
    result: dict[str, object] = {}
    for field in fields(apkbuild):
        value = getattr(apkbuild, field.name)
        if field.name not in ("lines", "subpackages"):
            result[field.name] = list(value) if isinstance(value, tuple) else value
    result["subpackages"] = {
        sub.name: {
            "pkgdesc": sub.pkgdesc,
            "depends": list(sub.depends),
            "provides": list(sub.provides),
            "arch": sub.arch,
        }
        for sub in apkbuild.subpackages
    }
    return result


def words(value: str) -> tuple[str, ...]:
    """Split a list value on shell whitespace (space, tab, newline), dropping empties.
    Interned: the same names recur in every APKBUILD that needs them, in every
    branch's parse of the same file and in the apks' indexes (marshal keeps that
    through the parse cache)."""
    return tuple([sys.intern(word) for word in _IFS_RE.split(value) if word])


def parse_apkbuild(text: str, path: str) -> Apkbuild:
    """Parse and validate the APKBUILD `text` read from `path` (`.../<pkgname>/APKBUILD`)."""
    lines = _numbered_lines(text, path)
    budget = Budget()
    variables: dict[str, str] = {}
    linenos: dict[str, int] = {}
    try:
        assignments(lines, variables, budget, linenos)
    except ShellVarsError as exc:
        raise ApkbuildError(path, "", exc.message, exc.lineno) from None
    top = _Fields(variables, linenos, path)

    pkgname = _pkgname(top)
    pkgver = top.required("pkgver")
    if not _PKGVER_RE.fullmatch(pkgver) or len(pkgver) > 128:
        raise top.error("pkgver", f"invalid characters in {pkgver!r}")
    pkgrel = top.required("pkgrel")
    if not _PKGREL_RE.fullmatch(pkgrel):
        raise top.error("pkgrel", f"{pkgrel!r} is not a non-negative integer without leading zeros")
    arch = _arch(top)
    priority = variables.get("provider_priority", "")
    if priority and not _PRIORITY_RE.fullmatch(priority):
        raise top.error("provider_priority", f"{priority!r} is not an integer")

    def listed(name: str) -> tuple[str, ...]:
        return words(variables.get(name, ""))

    try:
        subpackages = _subpackages(lines, top, pkgname, budget)
    except ShellVarsError as exc:
        raise ApkbuildError(path, "", exc.message, exc.lineno) from None
    return Apkbuild(
        pkgname=sys.intern(pkgname),
        pkgver=sys.intern(pkgver),
        pkgrel=int(pkgrel),
        pkgdesc=sys.intern(variables.get("pkgdesc", "")),
        url=sys.intern(variables.get("url", "")),
        license=sys.intern(variables.get("license", "")),
        maintainer=sys.intern(variables.get("maintainer", "") or _maintainer_comment(lines)),
        arch=arch,
        depends=listed("depends"),
        makedepends=listed("makedepends"),
        makedepends_build=listed("makedepends_build"),
        makedepends_host=listed("makedepends_host"),
        checkdepends=listed("checkdepends"),
        provides=listed("provides"),
        provider_priority=int(priority) if priority else 0,
        install_if=listed("install_if"),
        options=listed("options"),
        subpackages=subpackages,
        source=listed("source"),
        install=listed("install"),
        triggers=listed("triggers"),
        lines=tuple([(sys.intern(name), lineno) for name, lineno in linenos.items()]),
    )


def top_level_assignments(text: str, path: str) -> tuple[tuple[str, str], ...]:
    """Every top-level assignment of the APKBUILD `text` after expansion, in file
    order (repeats included): what `parse_apkbuild` reads its fields from. Not kept
    in an Apkbuild: a daemon holds tens of thousands of parses and needs none of it."""
    variables: dict[str, str] = {}
    try:
        assigned = assignments(_numbered_lines(text, path), variables, Budget(), {})
    except ShellVarsError as exc:
        raise ApkbuildError(path, "", exc.message, exc.lineno) from None
    return tuple(assigned)


def _numbered_lines(text: str, path: str) -> list[Line]:
    lines: list[Line] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if "\r" in line:
            kind = "CRLF line ending" if line.endswith("\r") else "carriage return"
            raise ApkbuildError(path, "", f"{kind} (the file must use LF only)", lineno)
        lines.append((lineno, line))
    return lines


@dataclass(frozen=True, slots=True)
class _Fields:
    """The top-level values of one APKBUILD, with what errors about them need."""

    variables: dict[str, str]
    linenos: dict[str, int]  # name -> line of its last assignment
    path: str

    def error(self, name: str, message: str) -> ApkbuildError:
        """An error about field `name`, naming the line that set it."""
        return ApkbuildError(self.path, name, message, self.linenos.get(name))

    def required(self, name: str) -> str:
        value = self.variables.get(name)
        if value is None:
            raise ApkbuildError(self.path, name, "missing")
        if not value:
            raise self.error(name, "empty")
        return value


def _pkgname(top: _Fields) -> str:
    pkgname = top.required("pkgname")
    if not is_safe_name(pkgname):
        raise top.error("pkgname", f"unsafe package name {pkgname!r}")
    directory = PurePosixPath(top.path).parent.name
    if pkgname != directory:
        raise top.error("pkgname", f"{pkgname!r} does not match the directory name {directory!r}")
    return pkgname


def _arch(top: _Fields) -> tuple[str, ...]:
    """The `arch` list, each name safe in a path (whether apk knows it is the
    branch's business: `unknown_arch`)."""
    arch = words(top.required("arch"))
    if not arch:
        raise top.error("arch", "empty")
    for token in arch:
        if not is_safe_arch(token.removeprefix("!")):
            raise top.error("arch", f"invalid arch {token!r}")
    return arch


def _maintainer_comment(lines: list[Line]) -> str:
    for _, text in lines:
        match = _MAINTAINER_RE.fullmatch(text)
        if match is not None:
            return match.group(1).strip()
    return ""


def _default_func(name: str) -> str:
    for suffix, func in _COMPLETION_FUNCS:
        if name.endswith(suffix):
            return func
    return name.rsplit("-", 1)[-1]


def _function_body(lines: list[Line], func: str) -> list[Line] | None:
    """Stripped lines from `func() {` up to the next line starting with `}`."""
    header = re.compile(re.escape(func) + r"[ \t]*\(\)[ \t]*\{")
    for index, (_, text) in enumerate(lines):
        if header.match(text):
            body: list[Line] = []
            for lineno, line in lines[index + 1 :]:
                if line.startswith("}"):
                    break
                body.append((lineno, line.strip()))
            return body
    return None


def _subpackages(
    lines: list[Line], top: _Fields, pkgname: str, budget: Budget
) -> tuple[Subpackage, ...]:
    variables = top.variables
    seen: set[str] = set()
    result: list[Subpackage] = []
    for token in words(variables.get("subpackages", "")):
        parts = token.split(":")
        name = parts[0]
        if len(parts) > 3:
            raise top.error("subpackages", f"too many ':' in {token!r}")
        if not is_safe_name(name):
            raise top.error("subpackages", f"unsafe subpackage name {name!r}")
        if name == pkgname:
            raise top.error("subpackages", f"{name!r} is the main package name")
        if name in seen:
            raise top.error("subpackages", f"{name!r} is listed twice")
        seen.add(name)
        func = (parts[1] if len(parts) > 1 else "") or _default_func(name)
        arch = (parts[2] if len(parts) > 2 else "") or None
        if arch is not None and not is_safe_arch(arch):
            raise top.error("subpackages", f"invalid arch {arch!r} for {name!r}")
        body = _function_body(lines, func)
        if body is None:
            sub_vars = {**variables, "provides": ""}
        else:
            # abuild's pre_split resets provides and install_if (§4.3).
            reset = {"provides": "", "install_if": "", "_pmb_recommends": "", "subpkgname": name}
            sub_vars = {**variables, **reset}
            assignments(body, sub_vars, budget)
        result.append(
            Subpackage(
                name=name,
                func=func,
                arch=arch,
                pkgdesc=sub_vars.get("pkgdesc", ""),
                depends=words(sub_vars.get("depends", "")),
                provides=words(sub_vars.get("provides", "")),
            )
        )
    return tuple(result)
