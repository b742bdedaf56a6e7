"""APKBUILD text -> fields, never executing shell (apk-formats.md §4).

`parse_apkbuild` reads the top-level assignments statically, as pmbootstrap's
parser does (see `reconciler.shellvars`), then validates every field that later
ends up in a path, a command line or a version string, raising `ApkbuildError`
("<path>: <field>: <message>") for anything unsafe or missing. Two deliberate
differences from pmbootstrap follow abuild instead: subpackages do not inherit
`provides`, and continuation lines of a multi-line quoted value are never read
as assignments of their own. `check_arch`, `package_arch` and `subpackage_arch`
implement abuild's arch rules; `Apkbuild.build_depends` is pmbootstrap's list
of build dependencies. Called by `desired` for each APKBUILD of a checkout.
"""

from __future__ import annotations

import re
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
# Default split functions whose name is not simply the text after the last "-".
_COMPLETION_FUNCS = (
    ("-bash-completion", "bashcomp"),
    ("-zsh-completion", "zshcomp"),
    ("-fish-completion", "fishcomp"),
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
    """An APKBUILD that cannot be used; `field` is "" for file-level problems."""

    def __init__(self, path: str, field: str, message: str) -> None:
        super().__init__(f"{path}: {field}: {message}")
        self.path = path
        self.field = field
        self.message = message


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
    # Every top-level assignment after expansion, in file order (repeats included).
    variables: tuple[tuple[str, str], ...] = ()

    @property
    def version(self) -> str:
        return f"{self.pkgver}-r{self.pkgrel}"

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
    """A JSON-ready dict like `pmbootstrap apkbuild_parse` prints (without `variables`)."""
    result: dict[str, object] = {}
    for field in fields(apkbuild):
        value = getattr(apkbuild, field.name)
        if field.name not in ("variables", "subpackages"):
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
    """Split a list value on shell whitespace (space, tab, newline), dropping empties."""
    return tuple(word for word in _IFS_RE.split(value) if word)


def parse_apkbuild(text: str, path: str) -> Apkbuild:
    """Parse and validate the APKBUILD `text` read from `path` (`.../<pkgname>/APKBUILD`)."""
    lines = _numbered_lines(text, path)
    budget = Budget()
    variables: dict[str, str] = {}
    try:
        assigned = assignments(lines, variables, budget)
    except ShellVarsError as exc:
        raise ApkbuildError(path, "", str(exc)) from None

    pkgname = _pkgname(variables, path)
    pkgver = _required(variables, "pkgver", path)
    if not _PKGVER_RE.fullmatch(pkgver) or len(pkgver) > 128:
        raise ApkbuildError(path, "pkgver", f"invalid characters in {pkgver!r}")
    pkgrel = _required(variables, "pkgrel", path)
    if not _PKGREL_RE.fullmatch(pkgrel):
        raise ApkbuildError(
            path, "pkgrel", f"{pkgrel!r} is not a non-negative integer without leading zeros"
        )
    arch = words(variables.get("arch", ""))
    if not arch:
        raise ApkbuildError(path, "arch", "missing or empty")
    for token in arch:
        if not is_safe_arch(token.removeprefix("!")):
            raise ApkbuildError(path, "arch", f"invalid arch {token!r}")
    priority = variables.get("provider_priority", "")
    if priority and not _PRIORITY_RE.fullmatch(priority):
        raise ApkbuildError(path, "provider_priority", f"{priority!r} is not an integer")

    def listed(name: str) -> tuple[str, ...]:
        return words(variables.get(name, ""))

    try:
        subpackages = _subpackages(lines, variables, pkgname, path, budget)
    except ShellVarsError as exc:
        raise ApkbuildError(path, "", str(exc)) from None
    return Apkbuild(
        pkgname=pkgname,
        pkgver=pkgver,
        pkgrel=int(pkgrel),
        pkgdesc=variables.get("pkgdesc", ""),
        url=variables.get("url", ""),
        license=variables.get("license", ""),
        maintainer=variables.get("maintainer", "") or _maintainer_comment(lines),
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
        variables=tuple(assigned),
    )


def _numbered_lines(text: str, path: str) -> list[Line]:
    lines: list[Line] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if "\r" in line:
            kind = "CRLF line ending" if line.endswith("\r") else "carriage return"
            raise ApkbuildError(path, "", f"line {lineno}: {kind} (the file must use LF only)")
        lines.append((lineno, line))
    return lines


def _required(variables: dict[str, str], name: str, path: str) -> str:
    value = variables.get(name, "")
    if not value:
        raise ApkbuildError(path, name, "missing or empty")
    return value


def _pkgname(variables: dict[str, str], path: str) -> str:
    pkgname = _required(variables, "pkgname", path)
    if not is_safe_name(pkgname):
        raise ApkbuildError(path, "pkgname", f"unsafe package name {pkgname!r}")
    directory = PurePosixPath(path).parent.name
    if pkgname != directory:
        raise ApkbuildError(
            path, "pkgname", f"{pkgname!r} does not match the directory name {directory!r}"
        )
    return pkgname


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
    lines: list[Line], variables: dict[str, str], pkgname: str, path: str, budget: Budget
) -> tuple[Subpackage, ...]:
    seen: set[str] = set()
    result: list[Subpackage] = []
    for token in words(variables.get("subpackages", "")):
        parts = token.split(":")
        name = parts[0]
        if len(parts) > 3:
            raise ApkbuildError(path, "subpackages", f"too many ':' in {token!r}")
        if not is_safe_name(name):
            raise ApkbuildError(path, "subpackages", f"unsafe subpackage name {name!r}")
        if name == pkgname:
            raise ApkbuildError(path, "subpackages", f"{name!r} is the main package name")
        if name in seen:
            raise ApkbuildError(path, "subpackages", f"{name!r} is listed twice")
        seen.add(name)
        func = (parts[1] if len(parts) > 1 else "") or _default_func(name)
        arch = (parts[2] if len(parts) > 2 else "") or None
        if arch is not None and not is_safe_arch(arch):
            raise ApkbuildError(path, "subpackages", f"invalid arch {arch!r} for {name!r}")
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
