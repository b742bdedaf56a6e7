"""apk version validity, ordering and constraints against apk-formats.md §3.

The tables below are the vectors of §3.4 and §3.5, each checked by the research
against the real apk-tools 2.14.10 and 3.0.6 binaries.
"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.formats.apkversion import (
    InvalidVersion,
    VersionMode,
    _compare_v2_unvalidated,
    compare,
    is_valid,
    satisfies,
    sort_key,
    validate,
)

APK2 = VersionMode.APK2
APK3 = VersionMode.APK3
SIGN = {"<": -1, "=": 0, ">": 1}

# §3.4: (row, A, B, apk 2.14.10, apk 3.0.6)
COMPARE_VECTORS = [
    (1, "1.0", "1.0", "=", "="),
    (2, "1.0", "1", ">", ">"),
    (3, "1.0.0", "1.0", ">", ">"),
    (4, "2", "2.0", "<", "<"),
    (5, "0.0", "0", ">", ">"),
    (6, "1.0", "1.0-r0", "<", "<"),
    (7, "1.0-r0", "1.0-r1", "<", "<"),
    (8, "1.0-r9", "1.0-r10", "<", "<"),
    (9, "1.0-r0", "1.0-r00", "=", "="),
    (10, "1.2.3-r5", "1.2.4-r0", "<", "<"),
    (11, "1.10", "1.9", ">", ">"),
    (12, "0.9", "0.10", "<", "<"),
    (13, "1.0a", "1.0", ">", ">"),
    (14, "1.0a", "1.0b", "<", "<"),
    (15, "1.0z", "1.1", "<", "<"),
    (16, "1.0a", "1.0.1", "<", "<"),
    (17, "1.5a", "1.5_p1", ">", ">"),
    (18, "1.0_alpha", "1.0", "<", "<"),
    (19, "1.0_alpha", "1.0_beta", "<", "<"),
    (20, "1.0_beta", "1.0_pre", "<", "<"),
    (21, "1.0_pre", "1.0_rc", "<", "<"),
    (22, "1.0_rc", "1.0", "<", "<"),
    (23, "1.0", "1.0_cvs", "<", "<"),
    (24, "1.0_cvs", "1.0_svn", "<", "<"),
    (25, "1.0_svn", "1.0_git", "<", "<"),
    (26, "1.0_git", "1.0_hg", "<", "<"),
    (27, "1.0_hg", "1.0_p", "<", "<"),
    (28, "1.0_rc1", "1.0_p1", "<", "<"),
    (29, "1.0_alpha1", "1.0_alpha2", "<", "<"),
    (30, "1.0_alpha2", "1.0_alpha10", "<", "<"),
    (31, "1.0_rc9", "1.0_rc10", "<", "<"),
    (32, "1.0_pre", "1.0_pre0", "<", "<"),
    (33, "1.0_pre0", "1.0_pre1", "<", "<"),
    (34, "1.0_alpha1", "1.0_alpha01", "=", "="),
    (35, "2.0_beta", "2.0_alpha3", ">", ">"),
    (36, "1.0_alpha_pre2", "1.0_alpha", "<", "<"),
    (37, "1.1.3_pre", "1.1.3_pre_p2", "<", "<"),
    (38, "1.1.3_pre_p2", "1.1.3", "<", "<"),
    (39, "1.0_p1_p1", "1.0_p1", ">", ">"),
    (40, "1_p1", "1.0", "<", "<"),
    (41, "1.0_git20200101", "1.0", ">", ">"),
    (42, "1.0_git20200101", "1.0.1", "<", "<"),
    (43, "6.0_pre1", "6.0", "<", "<"),
    (44, "1.2_rc1-r3", "1.2-r0", "<", "<"),
    (45, "1.0_alpha-r9", "1.0_beta-r0", "<", "<"),
    (46, "1.0.0_alpha", "1.0_alpha", ">", ">"),
    (47, "20230101", "1.0", ">", ">"),
    (48, "999948.0", "48.0", ">", ">"),
    (49, "0.01", "0.1", "<", "<"),
    (50, "1.01", "1.1", "<", "<"),
    (51, "1.010", "1.01", ">", ">"),
    (52, "1.001", "1.01", "<", "<"),
    (53, "1.001", "1.0", "<", ">"),
    (54, "8.2.0", "8.2.001", ">", "<"),
    (55, "8.2.0015", "8.2.002", ">", "<"),
    (56, "006", "1.0.0", ">", ">"),
    (57, "1.06-r6", "006", "<", "<"),
    (58, "1.0~1234", "1.0~2345", "=", "<"),
    (59, "1.0~1234-r1", "1.0~1234-r0", "=", ">"),
    (60, "1.0~abc-r1", "1.0-r1", ">", ">"),
]
# Rows whose operands are invalid in 2.14 (~hash, §3.1/§3.5). apk 2.14's
# `version -t` compares them anyway (its column); our compare() refuses them.
V2_INVALID_ROWS = {58, 59, 60}

# §3.5: (version, valid in apk 2.14.10, valid in apk 3.0.6)
VALIDITY_VECTORS = [
    ("1.0", True, True),
    ("1.0a", True, True),
    ("1.0a1", True, False),
    ("1.0bc", False, False),
    ("1.0_foo", False, False),
    ("1.0_preview", False, False),
    ("1.0_", True, False),
    ("1.0.", True, False),
    (".1", True, False),
    ("a1", True, False),
    ("1.0-r", True, False),
    ("1.0-r1.1", False, False),
    ("0.1-r2_pre1", False, False),
    ("1.0-pre1", False, False),
    ("1.0~12ab", False, True),
    ("1.0~12AB", False, False),
    ("1.0_pre2~1234abcd", False, True),
    ("1.0~", False, False),
    ("1_p1", True, True),
    ("1.0_p1-r2", True, True),
    ("1.0_rc_p1", True, True),
    ("006", True, True),
    ("1.0.0.0.0.0.1", True, True),
    ("12345678901234567", True, True),
    ("123456789012345678", False, True),
    ("999948.0", True, True),
    ("6.5_p20251123-r0", True, True),
    ("20251016.3.1-r0", True, True),
]

# §3.4 ordering chains, strictly increasing under both versions.
CHAINS = [
    ["1.0", "1.1_alpha2", "1.1.3_pre", "1.1.3_pre_p2", "1.1.3", "1.1.3_hg", "1.2", "1.2a", "1.2b"],
    [
        "1.0_alpha",
        "1.0_beta",
        "1.0_pre",
        "1.0_rc",
        "1.0",
        "1.0_cvs",
        "1.0_svn",
        "1.0_git",
        "1.0_hg",
        "1.0_p",
    ],
    [
        "1.0_alpha1",
        "1.0_alpha2",
        "1.0_alpha10",
        "1.0_beta",
        "1.0_rc1",
        "1.0-r0",
        "1.0-r1",
        "1.0.1_rc1",
        "1.0.1",
    ],
    ["0.9", "0.10", "0.10a", "0.10.0", "0.10.1", "1"],
]
CHAIN_PAIRS = [
    pytest.param(low, high, id=f"{low}<{high}")
    for chain in CHAINS
    for low, high in itertools.combinations(chain, 2)
]
MODES = [pytest.param(APK2, id="apk2.14"), pytest.param(APK3, id="apk3.0")]


def _row_params() -> list[object]:
    params: list[object] = []
    for row, a, b, v2, v3 in COMPARE_VECTORS:
        params.append(pytest.param(APK2, a, b, v2, row in V2_INVALID_ROWS, id=f"{row}-2.14"))
        params.append(pytest.param(APK3, a, b, v3, False, id=f"{row}-3.0"))
    return params


@pytest.mark.parametrize(("mode", "a", "b", "expected", "invalid"), _row_params())
def test_compare_vectors(mode: VersionMode, a: str, b: str, expected: str, invalid: bool) -> None:
    if invalid:
        with pytest.raises(InvalidVersion):
            compare(a, b, mode)
        # What the 2.14 binary printed for these invalid operands.
        assert _compare_v2_unvalidated(a, b) == SIGN[expected]
        return
    assert compare(a, b, mode) == SIGN[expected]
    assert compare(b, a, mode) == -SIGN[expected]
    if mode is APK2:
        assert _compare_v2_unvalidated(a, b) == SIGN[expected]


def test_default_mode_is_apk3() -> None:
    assert compare("8.2.0", "8.2.001") == -1
    assert is_valid("1.0~12ab")
    assert not is_valid("1.0a1")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("version", "v2", "v3"), VALIDITY_VECTORS)
def test_validity_vectors(mode: VersionMode, version: str, v2: bool, v3: bool) -> None:
    expected = v2 if mode is APK2 else v3
    assert is_valid(version, mode) is expected
    if expected:
        assert validate(version, mode) == version
        assert compare(version, version, mode) == 0
    else:
        with pytest.raises(InvalidVersion) as info:
            validate(version, mode)
        assert repr(version) in str(info.value)
        assert info.value.version == version
        assert info.value.mode is mode
        with pytest.raises(InvalidVersion):
            compare("1.0", version, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("version", ["", " 1.0", "1.0 ", "1.0\n", "1.0\x00", "V1.0", "1.0A", "١"])
def test_invalid_in_both_modes(mode: VersionMode, version: str) -> None:
    assert not is_valid(version, mode)
    with pytest.raises(InvalidVersion):
        compare(version, "1.0", mode)


@pytest.mark.parametrize(
    ("version", "reason"),
    [
        ("1.0a1", "digit after the letter"),
        ("1.0_", "empty suffix"),
        ("1.0_foo", "unknown suffix"),
        ("1.0~", "lowercase hex"),
        ("1.0-r", "revision number"),
        (".1", "number expected"),
        ("1" * 21, "64 bits"),
    ],
)
def test_apk3_reasons(version: str, reason: str) -> None:
    with pytest.raises(InvalidVersion, match=reason):
        validate(version, APK3)


@pytest.mark.parametrize(
    ("version", "reason"),
    [
        ("123456789012345678", "18 or more digits"),
        ("1.0-pre1", "not followed by 'r'"),
        ("1.0-r1.1", "may not follow a revision"),
        ("1.0~1", "unexpected character '~'"),
    ],
)
def test_apk2_reasons(version: str, reason: str) -> None:
    with pytest.raises(InvalidVersion, match=reason):
        validate(version, APK2)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("low", "high"), CHAIN_PAIRS)
def test_chain_pairs(mode: VersionMode, low: str, high: str) -> None:
    assert compare(low, high, mode) == -1
    assert compare(high, low, mode) == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("chain", CHAINS, ids=lambda chain: chain[0])
def test_sort_key_restores_chain(mode: VersionMode, chain: list[str]) -> None:
    shuffled = list(reversed(chain))
    random.Random(42).shuffle(shuffled)
    assert sorted(shuffled, key=sort_key(mode)) == chain
    assert max(chain, key=sort_key(mode)) == chain[-1]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # Derived from the §3.3 prose (not binary-checked rows): ~hash sorts between the
        # suffixes and -r, so it is "later" than a post-release suffix or a letter and
        # "earlier" than a revision; a pre-release suffix still loses.
        ("1.0~ab", "1.0", 1),
        ("1.0~ab", "1.0_p1", -1),
        ("1.0~ab", "1.0a", -1),
        ("1.0~ab", "1.0_rc1", 1),
        ("1.0~ab", "1.0-r0", 1),
        ("1.0_p1~ab", "1.0_p1", 1),
        ("1.0~ab", "1.0~abc", -1),
        ("1.0~b", "1.0~abc", 1),
    ],
)
def test_hash_position_apk3(a: str, b: str, expected: int) -> None:
    assert compare(a, b, APK3) == expected
    assert compare(b, a, APK3) == -expected


@pytest.mark.parametrize(
    ("candidate", "op", "wanted", "expected"),
    [
        ("1.0", "<", "1.0-r0", True),
        ("1.0-r0", "<", "1.0-r0", False),
        ("1.0-r0", "<=", "1.0-r0", True),
        ("1.0-r1", "<=", "1.0-r0", False),
        ("1.0-r0", "=", "1.0-r00", True),
        ("1.0-r0", "=", "1.0", False),
        ("1.2-r0", ">=", "1.2_rc1-r3", True),
        ("6.0_pre1", ">=", "6.0", False),
        ("1.0.1", ">", "1.0-r5", True),
        ("1.0", ">", "1.0", False),
        # §3.3 fuzzy examples
        ("3.6.9", "~", "3.6", True),
        ("3.6_pre1", "~", "3.6", True),
        ("3.8.0", "~", "3.8.1", False),
        ("3.6", "~", "3.6", True),
        ("3.60", "~", "3.6", False),
        ("3.6", "~", "3.6.9", False),
        ("3.6-r2", "~", "3.6", True),
        ("1.0~ab12-r0", "~", "1.0~ab12", True),
        ("3.7", ">~", "3.6", True),
        ("3.6.9", ">~", "3.6", True),
        ("3.6_pre1", ">~", "3.6", True),
        ("3.5.9", ">~", "3.6", False),
        ("3.5.9", "<~", "3.6", True),
        ("3.6.9", "<~", "3.6", True),
        ("3.7", "<~", "3.6", False),
    ],
)
def test_satisfies(candidate: str, op: str, wanted: str, expected: bool) -> None:
    assert satisfies(candidate, op, wanted) is expected


def test_satisfies_modes_differ_on_leading_zeros() -> None:
    assert satisfies("8.2.001", ">", "8.2.0", APK3)
    assert not satisfies("8.2.001", ">", "8.2.0", APK2)


@pytest.mark.parametrize("op", ["", "==", "!=", "><", "=>", "=<", " ="])
def test_satisfies_unknown_operator(op: str) -> None:
    with pytest.raises(ValueError, match="unknown version operator"):
        satisfies("1.0", op, "1.0")


def test_satisfies_invalid_operand() -> None:
    with pytest.raises(InvalidVersion):
        satisfies("1.0a1", ">=", "1.0")
    with pytest.raises(InvalidVersion):
        satisfies("1.0", ">=", "1.0~ab", APK2)
    assert satisfies("1.0a1", ">=", "1.0", APK2)


# --- properties ----------------------------------------------------------------

SUFFIX_NAMES = ["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"]
# Small pools so that generated versions often share prefixes and collide.
NUMBERS = st.sampled_from(["0", "1", "2", "9", "10", "00", "01", "001", "010", "0015"])
PLAIN_NUMBERS = st.sampled_from(["0", "1", "2", "9", "10", "123"])


@st.composite
def grammar_versions(
    draw: st.DrawFn, numbers: st.SearchStrategy[str] = NUMBERS, with_hash: bool = False
) -> str:
    """number{.number}[letter]{_suffix[number]}[~hash][-rN] (§3.1)."""
    text = draw(numbers) + "".join("." + n for n in draw(st.lists(numbers, max_size=3)))
    text += draw(st.sampled_from(["", "", "a", "b", "z"]))
    for name, number in draw(
        st.lists(st.tuples(st.sampled_from(SUFFIX_NAMES), st.just("") | numbers), max_size=2)
    ):
        text += f"_{name}{number}"
    if with_hash and draw(st.booleans()):
        text += "~" + draw(st.sampled_from(["0", "1234", "2345", "abc", "ab12"]))
    if draw(st.booleans()):
        text += "-r" + draw(numbers)
    return text


# apk 2.14 also accepts odd spellings (".1", "a1", "1.0_", "1.0a1.2"): draw from a
# small alphabet and keep what 2.14 accepts.
V2_ODD = st.text(alphabet="019._-raz", max_size=8).filter(lambda v: is_valid(v, APK2))
VERSIONS = {
    APK3: grammar_versions(with_hash=True)
    | st.text(alphabet="019._-raz~", max_size=8).filter(lambda v: is_valid(v, APK3)),
    APK2: grammar_versions() | V2_ODD,
}
mode_strategy = st.sampled_from([APK2, APK3])


@given(grammar_versions())
def test_grammar_versions_valid_in_both_modes(version: str) -> None:
    assert is_valid(version, APK3)
    assert is_valid(version, APK2)


@given(grammar_versions(with_hash=True))
def test_hashes_valid_only_in_apk3(version: str) -> None:
    assert is_valid(version, APK3)
    assert is_valid(version, APK2) is ("~" not in version)


@given(st.data(), mode_strategy)
def test_reflexive(data: st.DataObject, mode: VersionMode) -> None:
    version = data.draw(VERSIONS[mode])
    assert compare(version, version, mode) == 0
    assert satisfies(version, "=", version, mode)
    assert satisfies(version, "~", version, mode)


@given(st.data(), mode_strategy)
def test_antisymmetric(data: st.DataObject, mode: VersionMode) -> None:
    a, b = data.draw(VERSIONS[mode]), data.draw(VERSIONS[mode])
    assert compare(a, b, mode) in (-1, 0, 1)
    assert compare(a, b, mode) == -compare(b, a, mode)


@settings(max_examples=300)
@given(st.data(), mode_strategy)
def test_transitive(data: st.DataObject, mode: VersionMode) -> None:
    triple = [data.draw(VERSIONS[mode]) for _ in range(3)]
    for x, y, z in itertools.permutations(triple):
        xy, yz, xz = compare(x, y, mode), compare(y, z, mode), compare(x, z, mode)
        if xy <= 0 and yz <= 0:
            assert xz <= 0, (x, y, z)
        if xy == 0 and yz == 0:
            assert xz == 0, (x, y, z)


@given(grammar_versions(PLAIN_NUMBERS), grammar_versions(PLAIN_NUMBERS))
def test_modes_agree_without_leading_zeros(a: str, b: str) -> None:
    # §0.7: the two versions differ only on leading zeros, ~hash and validity.
    assert compare(a, b, APK2) == compare(a, b, APK3)


@given(grammar_versions(), st.lists(st.sampled_from([".1", "a", "_p1", "_rc", "-r2"])))
def test_fuzzy_matches_token_extensions(base: str, extra: list[str]) -> None:
    longer = base + "".join(extra)
    if is_valid(longer, APK3) and "-r" not in base:
        assert satisfies(longer, "~", base)


@given(st.text(max_size=12), st.text(max_size=12), mode_strategy)
def test_random_text_raises_invalid_or_compares(a: str, b: str, mode: VersionMode) -> None:
    try:
        result = compare(a, b, mode)
    except InvalidVersion:
        assert not (is_valid(a, mode) and is_valid(b, mode))
    else:
        assert result in (-1, 0, 1)
        assert is_valid(a, mode) and is_valid(b, mode)


@given(st.text(alphabet="0123456789._-~rabpz\x00 A", max_size=12), mode_strategy)
def test_version_like_text_raises_invalid_or_compares(text: str, mode: VersionMode) -> None:
    try:
        result = compare(text, "1.0", mode)
    except InvalidVersion as exc:
        assert not is_valid(text, mode)
        assert repr(text) in str(exc)
    else:
        assert result in (-1, 0, 1)
