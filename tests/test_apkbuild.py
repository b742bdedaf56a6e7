"""Tests for reconciler.apkbuild: static APKBUILD parsing, arch rules, build deps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.formats.apkbuild import (
    Apkbuild,
    ApkbuildError,
    Subpackage,
    check_arch,
    error_line,
    package_arch,
    parse_apkbuild,
    subpackage_arch,
    to_json,
    top_level_assignments,
    unknown_arch,
)

PATH = "main/foo/APKBUILD"
HEADER = 'pkgname=foo\npkgver=1.2.3\npkgrel=0\narch="all"\n'


def parse(body: str, path: str = PATH) -> Apkbuild:
    return parse_apkbuild(HEADER + body, path)


def var(body: str, name: str) -> str:
    """The last top-level value assigned to `name` in the APKBUILD `body`, which parses."""
    parse(body)
    values = [value for key, value in top_level_assignments(HEADER + body, PATH) if key == name]
    assert values, f"{name} was not assigned"
    return values[-1]


# --- substitution ----------------------------------------------------------

SUBSTITUTIONS = [
    ("braces", '_a=x\n_v="${_a}"', "x"),
    ("plain", '_a=x\n_v="$_a-y"', "x-y"),
    ("plain unquoted", "_a=x\n_v=$_a/y", "x/y"),
    ("longest name wins", '_a=x\n_v="$_ab"', ""),
    ("builtin pkgname", '_v="$pkgname-$pkgver-r$pkgrel"', "foo-1.2.3-r0"),
    ("replace first", '_s=1.2.3\n_v="${_s/./-}"', "1-2.3"),
    ("replace with empty", '_s=1.2.3\n_v="${_s/./}"', "12.3"),
    ("replace without slash", '_s=1.2.3\n_v="${_s/.}"', "12.3"),
    ("replace no match", '_s=1.2.3\n_v="${_s/x/y}"', "1.2.3"),
    ("prefix", '_s=v1.2\n_v="${_s#v}"', "1.2"),
    ("prefix double hash literal", '_s=v1.2\n_v="${_s##v}"', "1.2"),
    ("prefix no match", '_s=v1.2\n_v="${_s#x}"', "v1.2"),
    ("prefix glob kept literal", '_s=1.2\n_v="${_s#*.}"', "${_s#*.}"),
    ("suffix kept literal", '_s=1.2\n_v="${_s%.*}"', "${_s%.*}"),
    ("replace-all kept literal", '_s=1.2.3\n_v="${_s//./-}"', "${_s//./-}"),
    ("default kept literal", '_s=1\n_v="${_s:-x}"', "${_s:-x}"),
    ("nested kept literal", '_a=.\n_s=1.2\n_v="${_s/$_a/}"', "${_s/$_a/}"),
    ("unknown braces", '_v="${_nope}"', ""),
    ("unknown plain", '_v="$_nope"', ""),
    ("unknown in a list", 'makedepends="$depends_dev bc"\n_v="$makedepends"', " bc"),
    ("unknown replace", '_v="a${_nope/x/y}b"', "ab"),
    ("unknown prefix", '_v="a${_nope#x}b"', "ab"),
    ("unknown suffix kept literal", '_v="${_nope%x}"', "${_nope%x}"),
    ("special parameter kept literal", '_v="$1 $@ $?"', "$1 $@ $?"),
    ("command substitution", '_v="$(uname -m)"', "$(uname -m)"),
    ("dollar dollar", '_v="a$$b"', "a$$b"),
    ("trailing dollar", '_v="a$"', "a$"),
    ("unterminated brace", '_v="${_a"', "${_a"),
    ("single quotes expand too", "_a=x\n_v='$_a'", "x"),
    ("self reference", '_v=x\n_v="$_v y"', "x y"),
    ("later assignment invisible", '_v="$_late"\n_late=1', ""),
    ("no re-expansion", '_d=\'$\'\n_b="${_d}_c"\n_c=z\n_v="$_b"', "$_c"),
    ("substituted text not rescanned", "_d='$'\n_c=z\n_v=\"${_d}_c\"", "$_c"),
    ("several in one value", '_a=x\n_b=y\n_v="$_a${_b}$_a"', "xyx"),
]


@pytest.mark.parametrize(
    ("body", "expected"), [case[1:] for case in SUBSTITUTIONS], ids=[c[0] for c in SUBSTITUTIONS]
)
def test_substitution(body: str, expected: str) -> None:
    assert var(body + "\n", "_v") == expected


# --- values, quotes, comments, multi-line, indentation ---------------------

VALUES = [
    ("unquoted cut at hash", "pkgdesc=abc # comment", "abc"),
    ("unquoted cut at hash no space", "pkgdesc=abc#def", "abc"),
    ("double quoted keeps hash", 'pkgdesc="a # b"', "a # b"),
    ("single quoted", "pkgdesc='a b'", "a b"),
    ("other quote inside", 'pkgdesc="it\'s"', "it's"),
    ("text after closing quote ignored", 'pkgdesc="a" b # c', "a"),
    ("empty", "pkgdesc=", ""),
    ("empty quoted", 'pkgdesc=""', ""),
    ("multi-line joined", 'pkgdesc="first\n\t  second  \n  third"', "first second third"),
    ("multi-line empty edges", 'pkgdesc="\n\tonly\n\t"', "only"),
    ("multi-line text after quote", 'pkgdesc="a\nb" c', "a b"),
    ("multi-line single quotes", "pkgdesc='a\nb'", "a b"),
]


@pytest.mark.parametrize(
    ("body", "expected"), [case[1:] for case in VALUES], ids=[c[0] for c in VALUES]
)
def test_values(body: str, expected: str) -> None:
    assert parse(body + "\n").pkgdesc == expected


def test_multiline_lists_and_hash_tokens() -> None:
    result = parse('depends="\n\ta\n\tb c # d\n"\nmakedepends="x\ty"\n')
    assert result.depends == ("a", "b", "c", "#", "d")
    assert result.makedepends == ("x", "y")


def test_continuation_line_is_not_an_assignment() -> None:
    # pmbootstrap would also read pkgrel=9 here (§4.6); shell does not, neither do we.
    result = parse('depends="a\npkgrel=9\nb"\n')
    assert result.pkgrel == 0
    assert result.depends == ("a", "pkgrel=9", "b")


@pytest.mark.parametrize(
    "line",
    [
        "\tpkgver=9.9",
        "    pkgver=9.9",
        " pkgver=9.9",
        "#pkgver=9.9",
        "# pkgver=9.9",
        "export pkgver=9.9",
        "pkgver+=9.9",
        "pkgver =9.9",
        "9pkgver=9.9",
    ],
)
def test_lines_that_are_not_top_level_assignments(line: str) -> None:
    assert parse(line + "\n").pkgver == "1.2.3"


def test_case_block_in_function_is_ignored() -> None:
    body = 'case "$CARCH" in\n\tx86_64) depends="$depends x";;\nesac\ndepends="a"\n'
    assert parse(body).depends == ("a",)


def test_fields_and_variables_in_file_order() -> None:
    text = (
        "# Contributor: Someone <s@example.org>\n"
        "# Maintainer: Jane Doe <jane@example.org>\n"
        "pkgname=foo\npkgver=2.0_rc1\npkgrel=3\n"
        '_flavor=x\npkgdesc="Foo for $_flavor"\nurl="https://example.org/foo"\n'
        'license="GPL-2.0-or-later AND MIT"\narch="x86_64 aarch64 !armv7"\n'
        'depends="a b>=1"\nprovides="foo-virtual=2.0"\nprovider_priority=10\n'
        'install_if="x y"\noptions="!check pmb:cross-native"\n'
        'source="foo-$pkgver.tar.gz\n\tfix.patch"\ninstall="$pkgname.post-install"\n'
        'triggers="$pkgname.trigger=/usr/lib/foo:/usr/share/foo"\n_flavor=y\n'
    )
    result = parse_apkbuild(text, "/srv/pmaports/main/foo/APKBUILD")
    assert result.version == "2.0_rc1-r3"
    assert result.pkgdesc == "Foo for x"
    assert result.url == "https://example.org/foo"
    assert result.license == "GPL-2.0-or-later AND MIT"
    assert result.maintainer == "Jane Doe <jane@example.org>"
    assert result.arch == ("x86_64", "aarch64", "!armv7")
    assert result.depends == ("a", "b>=1")
    assert result.provides == ("foo-virtual=2.0",)
    assert result.provider_priority == 10
    assert result.install_if == ("x", "y")
    assert result.options == ("!check", "pmb:cross-native")
    assert result.source == ("foo-2.0_rc1.tar.gz", "fix.patch")
    assert result.install == ("foo.post-install",)
    assert result.triggers == ("foo.trigger=/usr/lib/foo:/usr/share/foo",)
    assert result.makedepends == () and result.checkdepends == ()
    variables = top_level_assignments(text, PATH)
    names = [name for name, _ in variables]
    assert names[:4] == ["pkgname", "pkgver", "pkgrel", "_flavor"]
    assert names.count("_flavor") == 2 and variables[-1] == ("_flavor", "y")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# Maintainer: A <a@x>\n", "A <a@x>"),
        ("#Maintainer:B\n", "B"),
        ('# Maintainer: A <a@x>\nmaintainer="C <c@x>"\n', "C <c@x>"),
        ("# Co-Maintainer: D <d@x>\n", ""),
        ("# Maintainer: E\n# Maintainer: F\n", "E"),
        ("  # Maintainer: indented\n", ""),
        ("", ""),
    ],
)
def test_maintainer(text: str, expected: str) -> None:
    assert parse(text).maintainer == expected


# --- subpackages -------------------------------------------------------------

SUBPACKAGE_APKBUILD = """\
pkgname=foo
pkgver=1.0
pkgrel=0
pkgdesc="Foo"
arch="all"
depends="base"
depends_dev="libbar-dev"
provides="foo-virtual=1.0"
subpackages="$pkgname-dev $pkgname-doc $pkgname-extra:extra_split $pkgname-cfg::noarch
	$pkgname-x:x:armv7 $pkgname-bash-completion $pkgname-named:"

dev() {
	depends="$depends_dev"
}

extra_split() {
	pkgdesc="Extra files for $subpkgname"
	depends="$depends
		extra-dep"
	provides="cmd:extra"
	_local=1
}

cfg() {
	provides="$provides cfg-virtual"
}
"""


def test_subpackages() -> None:
    result = parse_apkbuild(SUBPACKAGE_APKBUILD, PATH)
    subs = {sub.name: sub for sub in result.subpackages}
    assert [sub.name for sub in result.subpackages] == [
        "foo-dev",
        "foo-doc",
        "foo-extra",
        "foo-cfg",
        "foo-x",
        "foo-bash-completion",
        "foo-named",
    ]
    assert subs["foo-dev"] == Subpackage("foo-dev", "dev", None, "Foo", ("libbar-dev",), ())
    # No doc() in the file: inherited pkgdesc and depends, provides reset.
    assert subs["foo-doc"] == Subpackage("foo-doc", "doc", None, "Foo", ("base",), ())
    assert subs["foo-extra"] == Subpackage(
        name="foo-extra",
        func="extra_split",
        arch=None,
        pkgdesc="Extra files for foo-extra",
        depends=("base", "extra-dep"),
        provides=("cmd:extra",),
    )
    # provides starts empty in a split function (abuild pre_split), not from the main package.
    assert subs["foo-cfg"] == Subpackage(
        "foo-cfg", "cfg", "noarch", "Foo", ("base",), ("cfg-virtual",)
    )
    assert subs["foo-x"].func == "x" and subs["foo-x"].arch == "armv7"
    assert subs["foo-bash-completion"].func == "bashcomp"
    assert subs["foo-named"].func == "named" and subs["foo-named"].arch is None
    # Split-function assignments never leak into the main package.
    assert result.pkgdesc == "Foo" and result.provides == ("foo-virtual=1.0",)
    assert "_local" not in dict(top_level_assignments(SUBPACKAGE_APKBUILD, PATH))


@pytest.mark.parametrize(
    ("name", "func"),
    [
        ("foo-doc", "doc"),
        ("foo-zsh-completion", "zshcomp"),
        ("foo-fish-completion", "fishcomp"),
        ("py3-foo-pyc", "pyc"),
        ("bar", "bar"),
    ],
)
def test_default_split_function(name: str, func: str) -> None:
    (sub,) = parse(f'subpackages="{name}"\n').subpackages
    assert sub.func == func


def test_function_header_needs_column_zero_and_exact_name() -> None:
    body = 'subpackages="foo-doc"\nmydoc() {\n\tpkgdesc="wrong"\n}\n  doc() {\n\tpkgdesc="no"\n}\n'
    (sub,) = parse(body).subpackages
    assert sub.pkgdesc == ""


# --- build dependencies ------------------------------------------------------

BUILD_DEPENDS = [
    ("make, check, depends", 'makedepends="m"\ncheckdepends="c"\ndepends="d"', "m c d"),
    ("!check drops checkdepends", 'makedepends="m"\ncheckdepends="c"\noptions="!check"', "m"),
    ("build+host", 'makedepends_build="b"\nmakedepends_host="h"\ncheckdepends="c"', "b h c"),
    ("makedepends wins", 'makedepends="m"\nmakedepends_build="b"\nmakedepends_host="h"', "m"),
    ("dedup first seen", 'makedepends="b a b"\ndepends="a c"', "b a c"),
    ("conflicts dropped", 'makedepends="!x y"\ndepends="!z"', "y"),
    ("self dropped", 'makedepends="foo foo>=1 foo-dev x"\nsubpackages="foo-dev"', "x"),
    ("operators kept", 'makedepends="a>=1 b@edge c~2"', "a>=1 b@edge c~2"),
    ("empty", "", ""),
]


@pytest.mark.parametrize(
    ("body", "expected"),
    [case[1:] for case in BUILD_DEPENDS],
    ids=[case[0] for case in BUILD_DEPENDS],
)
def test_build_depends(body: str, expected: str) -> None:
    assert parse(body + "\n").build_depends() == tuple(expected.split())


# --- arch rules --------------------------------------------------------------

CHECK_ARCH = [
    (("all",), "x86_64", True),
    (("noarch",), "armv7", True),
    (("x86_64",), "x86_64", True),
    (("x86_64",), "aarch64", False),
    (("all", "!armv7"), "armv7", False),
    (("all", "!armv7"), "aarch64", True),
    (("!armv7", "armv7"), "armv7", False),
    (("noarch", "!x86"), "x86", False),
    ((), "x86_64", False),
    (("!x86",), "x86_64", False),
]


@pytest.mark.parametrize(("arch", "carch", "expected"), CHECK_ARCH)
def test_check_arch(arch: tuple[str, ...], carch: str, expected: bool) -> None:
    assert check_arch(arch, carch) is expected


@pytest.mark.parametrize(
    ("arch", "expected"), [(("noarch",), "noarch"), (("all",), "armv7"), (("armv7",), "armv7")]
)
def test_package_arch(arch: tuple[str, ...], expected: str) -> None:
    assert package_arch(arch, "armv7") == expected


SUBPACKAGE_ARCH = [
    ("foo-dev", None, "aarch64"),
    ("foo-dev", "noarch", "noarch"),
    ("foo-dev", "all", "aarch64"),
    ("foo-dev", "x86_64", "x86_64"),
    ("foo-doc", "all", "aarch64"),
    ("foo-doc", None, "noarch"),
    ("foo-openrc", None, "noarch"),
    ("foo-lang", None, "noarch"),
    ("foo-bash-completion", None, "noarch"),
    ("foo-zsh-completion", None, "noarch"),
    ("foo-fish-completion", None, "noarch"),
    ("foo-pyc", None, "noarch"),
    ("foo-nftrules", None, "noarch"),
    ("foo-systemd", None, "noarch"),
    ("foo-udev", None, "noarch"),
    ("foo-docs", None, "aarch64"),
    ("foo-libs", None, "aarch64"),
]


@pytest.mark.parametrize(("name", "arch", "expected"), SUBPACKAGE_ARCH)
def test_subpackage_arch(name: str, arch: str | None, expected: str) -> None:
    assert subpackage_arch(Subpackage(name, "f", arch), "aarch64", "aarch64") == expected


def test_subpackage_arch_follows_noarch_main_package() -> None:
    assert subpackage_arch(Subpackage("foo-dev", "dev", None), "noarch", "armv7") == "noarch"
    assert subpackage_arch(Subpackage("foo-dev", "dev", "all"), "noarch", "armv7") == "armv7"


# --- JSON ------------------------------------------------------------------


def test_to_json() -> None:
    data = to_json(parse_apkbuild(SUBPACKAGE_APKBUILD, PATH))
    assert data["pkgname"] == "foo" and data["pkgrel"] == 0 and data["provider_priority"] == 0
    assert data["arch"] == ["all"] and data["depends"] == ["base"]
    assert (
        "variables" not in data
        and "lines" not in data
        and "maintainer" in data
        and "triggers" in data
    )
    subs = data["subpackages"]
    assert isinstance(subs, dict)
    assert subs["foo-cfg"] == {
        "pkgdesc": "Foo",
        "depends": ["base"],
        "provides": ["cfg-virtual"],
        "arch": "noarch",
    }
    assert subs["foo-doc"]["arch"] is None


# --- errors ----------------------------------------------------------------

NAME = "pkgver=1\npkgrel=0\narch=all\n"
# (id, text, path, field, line the message names (None: none), fragment of the message)
ERRORS = [
    ("CRLF", HEADER.replace("\n", "\r\n"), PATH, "", 1, "CRLF"),
    ("stray CR", HEADER + "pkgdesc=a\rb\n", PATH, "", 5, "carriage return"),
    ("unterminated quote", HEADER + '\n\ndepends="a\n\tb\n', PATH, "", 7, "unterminated"),
    ("unterminated single", HEADER + "pkgdesc='a\n", PATH, "", 5, "unterminated ' quote"),
    ("unterminated in split", HEADER + 'subpackages="foo-x"\nx() {\n\tdepends="a\n}\n', PATH, "",
     7, "unterminated"),
    ("missing pkgname", NAME, PATH, "pkgname", None, "missing"),
    ("empty pkgname", "pkgname=\n" + NAME, PATH, "pkgname", 1, "empty"),
    ("undefined pkgname", "pkgname=$_x\n" + NAME, PATH, "pkgname", 1, "empty"),
    ("directory mismatch", HEADER, "main/bar/APKBUILD", "pkgname", 1, "'bar'"),
    ("last pkgname counts", HEADER + "\npkgname=bar\n", PATH, "pkgname", 6, "'bar'"),
    ("no directory", HEADER, "APKBUILD", "pkgname", 1, "directory"),
    ("dotdot name", "pkgname=../x\n" + NAME, "main/../x/APKBUILD", "pkgname", 1, "unsafe"),
    ("dotdot", "pkgname=..\n" + NAME, "main/../APKBUILD", "pkgname", 1, "unsafe"),
    ("semicolon", 'pkgname="a;rm"\n' + NAME, "main/a;rm/APKBUILD", "pkgname", 1, "unsafe"),
    ("space", 'pkgname="a b"\n' + NAME, "main/a b/APKBUILD", "pkgname", 1, "unsafe"),
    ("NUL", "pkgname=a\x00\n" + NAME, "main/a\x00/APKBUILD", "pkgname", 1, "unsafe"),
    ("leading dash", "pkgname=-a\n" + NAME, "main/-a/APKBUILD", "pkgname", 1, "unsafe"),
    ("command left", "pkgname=$(x)\n" + NAME, "main/$(x)/APKBUILD", "pkgname", 1, "unsafe"),
    ("sub dotdot", HEADER + 'subpackages="../x"\n', PATH, "subpackages", 5, "unsafe"),
    ("sub semicolon", HEADER + 'subpackages="a;rm"\n', PATH, "subpackages", 5, "unsafe"),
    ("sub NUL", HEADER + 'subpackages="a\x00b"\n', PATH, "subpackages", 5, "unsafe"),
    ("sub slash", HEADER + 'subpackages="foo/x"\n', PATH, "subpackages", 5, "unsafe"),
    ("sub empty name", HEADER + 'subpackages=":x"\n', PATH, "subpackages", 5, "unsafe"),
    ("sub colons", HEADER + 'subpackages="a:b:c:d"\n', PATH, "subpackages", 5, "too many"),
    ("sub twice", HEADER + 'subpackages="a a:f"\n', PATH, "subpackages", 5, "twice"),
    ("sub twice multi-line", HEADER + 'subpackages="a\n\ta:f"\n', PATH, "subpackages", 5,
     "twice"),
    ("sub is main", HEADER + 'subpackages="foo"\n', PATH, "subpackages", 5, "main package"),
    ("sub arch", HEADER + 'subpackages="a::$(uname)"\n', PATH, "subpackages", 5, "arch"),
    ("missing pkgver", "pkgname=foo\npkgrel=0\narch=all\n", PATH, "pkgver", None, "missing"),
    ("empty pkgver", HEADER + "pkgver=\n", PATH, "pkgver", 5, "empty"),
    ("pkgver dash", HEADER + "pkgver=1.0-r1\n", PATH, "pkgver", 5, "invalid characters"),
    ("pkgver dollar", HEADER + "pkgver=$(date)\n", PATH, "pkgver", 5, "invalid"),
    ("missing pkgrel", "pkgname=foo\npkgver=1\narch=all\n", PATH, "pkgrel", None, "missing"),
    ("negative pkgrel", HEADER + "pkgrel=-1\n", PATH, "pkgrel", 5, "'-1'"),
    ("dotted pkgrel", HEADER + "pkgrel=1.0\n", PATH, "pkgrel", 5, "'1.0'"),
    ("leading zero pkgrel", HEADER + "pkgrel=01\n", PATH, "pkgrel", 5, "'01'"),
    ("huge pkgrel", HEADER + "pkgrel=" + "9" * 5000 + "\n", PATH, "pkgrel", 5, "integer"),
    ("missing arch", "pkgname=foo\npkgver=1\npkgrel=0\n", PATH, "arch", None, "missing"),
    ("empty arch", HEADER + 'arch=" "\n', PATH, "arch", 5, "empty"),
    ("bad arch", HEADER + 'arch="x86-64"\n', PATH, "arch", 5, "'x86-64'"),
    ("bad negated arch", HEADER + 'arch="all !ARMV7"\n', PATH, "arch", 5, "'!ARMV7'"),
    ("bare negation", HEADER + 'arch="!"\n', PATH, "arch", 5, "'!'"),
    ("multi-line arch", HEADER + 'arch="all\n\t!ARMV7"\n', PATH, "arch", 5, "'!ARMV7'"),
    ("priority", HEADER + "provider_priority=high\n", PATH, "provider_priority", 5, "'high'"),
    ("expansion bomb", HEADER + "_a=xxxxxxxx\n" + '_a="$_a$_a$_a$_a"\n' * 12, PATH, "", 12,
     "longer than"),
    ("total budget", HEADER + "_a=xxxxxxxx\n" + '_a="$_a$_a"\n' * 13 + '_b="$_a"\n' * 200, PATH, "",
     144, "total size"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "path", "field", "line", "fragment"),
    [case[1:] for case in ERRORS],
    ids=[case[0] for case in ERRORS],
)
def test_errors(text: str, path: str, field: str, line: int | None, fragment: str) -> None:
    with pytest.raises(ApkbuildError) as caught:
        parse_apkbuild(text, path)
    error = caught.value
    assert (error.path, error.field, error.line) == (path, field, line)
    where = path if line is None else f"{path}: line {line}"
    assert str(error) == (f"{where}: {field}: " if field else f"{where}: ") + error.message
    assert fragment in error.message
    assert error_line(str(error), path) == line


def test_valid_edge_values_are_accepted() -> None:
    result = parse(
        'arch="noarch !x86 riscv64"\nprovider_priority=""\npkgrel=0\n'
        'subpackages="foo-x::all g++-y:gpp"\n',
        path="/abs/pmaports/cross/foo/APKBUILD",
    )
    assert result.arch == ("noarch", "!x86", "riscv64")
    assert result.provider_priority == 0
    assert [(s.name, s.func, s.arch) for s in result.subpackages] == [
        ("foo-x", "x", "all"),
        ("g++-y", "gpp", None),
    ]


# --- robustness ------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        "pkgname=foo",
        "pkgver=1.0",
        "pkgrel=0",
        'arch="all"',
        "arch=",
        'subpackages="$pkgname-doc $pkgname-x:x:noarch"',
        "subpackages='",
        "x() {",
        "}",
        '\tdepends="$depends y',
        'depends="a',
        'b"',
        "_v=${pkgname/o/0}",
        "_v=${_v#f}",
        "_v=${",
        "_v=$",
        "provider_priority=",
        "# Maintainer: x",
        "pkgrel=00",
        "\r",
        "\x00",
    ]
)


@settings(deadline=None, max_examples=300)
@given(st.text(max_size=400))
def test_arbitrary_text_only_raises_apkbuild_error(text: str) -> None:
    _parses_or_names_the_path(text)


@settings(deadline=None, max_examples=300)
@given(st.lists(st.one_of(FRAGMENTS, st.text(max_size=20)), max_size=25))
def test_apkbuild_like_text_only_raises_apkbuild_error(lines: list[str]) -> None:
    _parses_or_names_the_path("\n".join(lines))


def _parses_or_names_the_path(text: str) -> None:
    path = "pm/aports/foo/APKBUILD"
    try:
        result = parse_apkbuild(text, path)
    except ApkbuildError as error:
        assert path in str(error)
        assert error.path == path
    else:
        assert result.pkgname == "foo"
        assert result.arch


# --- lines and arches, for the reasons of broken packages -------------------


def test_lines_of_the_assignments_that_count() -> None:
    result = parse_apkbuild(
        '# Maintainer: x\npkgname=foo\npkgver=1.0\npkgrel=0\narch="all\n\tx86"\n'
        'depends="a"\npkgver=1.1\n\tpkgrel=9\nsub() {\n\tdepends="b"\n}\n',
        PATH,
    )
    assert result.lines == (
        ("pkgname", 2),
        ("pkgver", 8),
        ("pkgrel", 4),
        ("arch", 5),
        ("depends", 7),
    )
    assert result.line("pkgver") == 8 and result.line("arch") == 5
    assert result.line("makedepends") is None
    # A parse without lines (an old cache entry) names none.
    assert Apkbuild("foo", "1", 0).line("pkgver") is None


UNKNOWN_ARCH = [
    (("all",), None),
    (("noarch", "!x86"), None),
    (("x86_64", "aarch64", "armv7", "armhf", "x86", "ppc64le", "s390x", "riscv64"), None),
    (("loongarch64", "mips64", "mips64el", "riscv32", "!ppc64"), None),
    (("x86_65",), "x86_65"),
    (("all", "!x86_65"), "x86_65"),
    (("x86_64", "arm64", "amd64"), "arm64"),
    (("!all", "!noarch"), None),
    (("myarch",), "myarch"),
]


@pytest.mark.parametrize(("arch", "expected"), UNKNOWN_ARCH)
def test_unknown_arch(arch: tuple[str, ...], expected: str | None) -> None:
    assert unknown_arch(arch) == expected
    assert unknown_arch(arch, frozenset({"myarch", "arm64", "amd64", "x86_65"})) is None


@pytest.mark.parametrize(
    ("reason", "line"),
    [
        (f"{PATH}: line 12: pkgver: x", 12),
        (f"{PATH}: line 3: unterminated", 3),
        (f"{PATH}: pkgver: missing", None),
        (f"{PATH}: pkgdesc: line 3: x", None),
        ("main/bar/APKBUILD: line 3: x", None),
        (f"{PATH}: line 0: x", None),
        (f"{PATH}: larger than 1024 bytes", None),
    ],
)
def test_error_line(reason: str, line: int | None) -> None:
    assert error_line(reason, PATH) == line
