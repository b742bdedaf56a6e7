"""The images tree's pages and index.json (site.imagetree, site.images_writer).

The pure model is checked table by table: the releases' order and pretty names,
devices' and UIs' pretty names, sizes, dates newest first with the latest
marked, index.json's content, hostile names left out and quoted. index.json is
validated against the schema kept beside the module with a maintained
validator (jsonschema). Then a sample tree is published on disk, observed by the
real scanner, written by the writer through templates rendered as the site
writer renders them, and every link of every page is followed: images pages
against the images directory, the status site's style sheet and logs against a
sibling html_out, as nginx serves them (/images/ and /).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

import jinja2
import jsonschema
import pytest

from reconciler.config.branches import BranchConfig
from reconciler.config.images import DeviceImages, ImagesConfig
from reconciler.model.jobs import JobIntent, JobKey, JobKind
from reconciler.model.names import RepoKey
from reconciler.model.observations import ImageFile, PublishedImage
from reconciler.observed.images import ImageScanner
from reconciler.site.images_writer import ImagesWriter, Render
from reconciler.site.imagetree import (
    DATES,
    DEVICES,
    FILES,
    INTERFACES,
    RELEASES,
    ImageTree,
    build_tree,
    human_size,
    is_file_name,
    iso_timestamp,
    natural_key,
    site_root_from_images,
)
from reconciler.site.writer import TEMPLATES_DIR, fingerprint

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "reconciler" / "site" / "images_index.schema.json"
SITE_URL = "https://build.example.org/"
IMAGES_URL = SITE_URL + "images/"
SITE_TITLE = "Example builds"
SHA256 = "a" * 64
SHA512 = "b" * 128


# -- inputs ---------------------------------------------------------------------


def config(**changes: object) -> ImagesConfig:
    """Branches master (edge), v25.12 and v26.06; two devices, one without a
    pretty name."""
    values: dict[str, object] = {
        "devices": (
            DeviceImages("demo-phone", "Demo Phone", uis=("demo", "phosh")),
            DeviceImages("qemu-amd64", uis=("console",)),
        ),
        "branches": ("master", "v25.12", "v26.06"),
        "development_branch": "master",
        "releases": {"master": "edge", "v25.12": "v25.12", "v26.06": "v26.06"},
        "url": IMAGES_URL,
    }
    values.update(changes)
    return ImagesConfig(**values)  # type: ignore[arg-type]


BRANCHES = (
    BranchConfig("master", Path("/pmaports"), ("aarch64",)),
    BranchConfig("v25.12", Path("/pmaports"), ("aarch64",)),
    BranchConfig("v26.06", Path("/pmaports"), ("aarch64",), ignore_errors=True),
)


def stem(release: str, device: str, ui: str, date: str) -> str:
    return f"{date}-postmarketOS-{release}-{ui}-1.0-{device}"


def image(
    release: str = "edge",
    device: str = "demo-phone",
    ui: str = "demo",
    date: str = "20250620-0000",
    *,
    size: int = 1000,
    sums: bool = True,
    extra: tuple[ImageFile, ...] = (),
) -> PublishedImage:
    """A date directory as the scanner reports it: the image, its checksum files
    (with the values on the image) and the package list."""
    name = stem(release, device, ui, date) + ".img.xz"
    files = [
        ImageFile(name, size, SHA256 if sums else "", SHA512 if sums else ""),
        ImageFile(stem(release, device, ui, date) + "-packages.txt", 42),
    ]
    if sums:
        files += [ImageFile(name + ".sha256", 100), ImageFile(name + ".sha512", 164)]
    return PublishedImage(
        release, device, ui, date, tuple(sorted([*files, *extra], key=lambda f: f.name))
    )


def job_id(device: str = "demo-phone", date: str = "20250620-0000", ui: str = "demo") -> str:
    intent = JobIntent(JobKind.IMAGE, RepoKey("master", "", "aarch64"), device, f"{date}~{ui}")
    return JobKey(intent, 1).job_id


def tree_of(*images: PublishedImage, **kwargs: object) -> ImageTree:
    values: dict[str, object] = {
        "config": config(),
        "branches": BRANCHES,
        "job_ids": {},
        "site_url": SITE_URL,
        "site_title": SITE_TITLE,
    }
    values.update(kwargs)
    return build_tree(images, **values)  # type: ignore[arg-type]


# -- the model: order, names, sizes -----------------------------------------------------


@pytest.mark.parametrize(
    ("releases", "expected"),
    [
        (["v25.12", "edge", "v26.06"], ["edge", "v26.06", "v25.12"]),
        (["v25.06", "v25.12"], ["v25.12", "v25.06"]),
        (["v9.1", "v25.12", "edge"], ["edge", "v25.12", "v9.1"]),  # numbers by value
        (["edge"], ["edge"]),
        ([], []),
    ],
)
def test_releases_come_edge_first_then_newest_first(
    releases: list[str], expected: list[str]
) -> None:
    tree = tree_of(*(image(r) for r in releases))
    root = tree.pages["index.html"]
    assert root.level == RELEASES
    assert [e.name for e in root.entries] == expected
    assert [r["name"] for r in tree.index["releases"]] == expected


@pytest.mark.parametrize(
    ("release", "pretty"),
    [
        ("edge", "edge (unstable)"),
        ("v25.12", "v25.12"),
        ("v26.06", "v26.06 (work in progress)"),  # ignore_errors
        ("v24.06", "v24.06 (end of life)"),  # no configured branch
    ],
)
def test_release_pretty_names(release: str, pretty: str) -> None:
    tree = tree_of(image(release))
    assert [e.pretty_name for e in tree.pages["index.html"].entries] == [pretty]
    assert tree.pages[f"{release}/index.html"].heading == pretty
    assert tree.index["releases"][0]["pretty_name"] == pretty


def test_a_renamed_development_release_is_the_unstable_one() -> None:
    renamed = config(releases={"master": "next", "v25.12": "v25.12", "v26.06": "v26.06"})
    tree = tree_of(image("v25.12"), image("next"), image("edge"), config=renamed)
    assert [(e.name, e.pretty_name) for e in tree.pages["index.html"].entries] == [
        ("next", "next (unstable)"),
        ("v25.12", "v25.12"),
        ("edge", "edge (end of life)"),
    ]


@pytest.mark.parametrize(
    ("device", "ui", "device_names", "pretty_device", "pretty_ui"),
    [
        ("demo-phone", "phosh", {}, "Demo Phone", "Phosh"),
        ("qemu-amd64", "console", {}, "qemu-amd64", "Console"),  # no pretty name: the codename
        ("qemu-amd64", "console", {"qemu-amd64": "QEMU amd64"}, "QEMU amd64", "Console"),
        ("gone-device", "gone-ui", {}, "gone-device", "gone-ui"),  # not configured any more
    ],
)
def test_device_and_ui_pretty_names(
    device: str, ui: str, device_names: dict[str, str], pretty_device: str, pretty_ui: str
) -> None:
    tree = tree_of(image(device=device, ui=ui), device_names=device_names)
    release_page = tree.pages["edge/index.html"]
    assert release_page.level == DEVICES
    assert [(e.name, e.pretty_name) for e in release_page.entries] == [(device, pretty_device)]
    device_page = tree.pages[f"edge/{device}/index.html"]
    assert device_page.level == INTERFACES
    assert [(e.name, e.pretty_name) for e in device_page.entries] == [(ui, pretty_ui)]
    (release,) = tree.index["releases"]
    assert release["devices"][0]["pretty_name"] == pretty_device
    assert release["devices"][0]["interfaces"][0]["pretty_name"] == pretty_ui


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024 * 1024 - 1, "1.0 MiB"),  # 1023.999 KiB rounds up: the next unit
        (5 * 1024**2 + 100 * 1024, "5.1 MiB"),
        (3 * 1024**3, "3.0 GiB"),
        (2048 * 1024**3, "2048.0 GiB"),  # GiB is the largest unit
    ],
)
def test_human_sizes(size: int, text: str) -> None:
    assert human_size(size) == text


def test_natural_key_orders_numbers_by_value() -> None:
    assert sorted(["v25.12", "v9.1", "v25.6"], key=natural_key) == ["v9.1", "v25.6", "v25.12"]


@pytest.mark.parametrize(
    ("images_url", "site_url", "root"),
    [
        ("https://b.example/images/", "https://b.example/", "../"),
        ("https://b.example/ci/images/", "https://b.example/ci/", "../"),
        ("https://b.example/a/b/images/", "https://b.example/a", "../../"),
        ("https://images.example/", "https://b.example/", "https://b.example/"),
        ("https://b.example/", "https://b.example/", "https://b.example/"),  # not below
    ],
)
def test_the_way_to_the_status_site(images_url: str, site_url: str, root: str) -> None:
    assert site_root_from_images(images_url, site_url) == root


def test_dates_are_newest_first_and_the_first_is_latest() -> None:
    dates = ["20250620-0000", "20250704-0000", "20250627-1230"]
    tree = tree_of(*(image(date=d) for d in dates))
    page = tree.pages["edge/demo-phone/demo/index.html"]
    assert page.level == DATES
    assert [(e.name, e.latest) for e in page.entries] == [
        ("20250704-0000", True),
        ("20250627-1230", False),
        ("20250620-0000", False),
    ]
    assert page.entries[1].time == "2025-06-27T12:30Z"
    assert page.entries[1].pretty_name == "2025-06-27 12:30 UTC"
    images = tree.index["releases"][0]["devices"][0]["interfaces"][0]["images"]
    assert [i["timestamp"] for i in images] == [
        "2025-07-04T00:00:00",
        "2025-06-27T12:30:00",
        "2025-06-20T00:00:00",
    ]


def test_a_date_page_lists_files_with_sizes_checksums_and_the_log() -> None:
    job = job_id()
    orphan = ImageFile("notes.txt.sha256", 70)  # names no file: a plain file
    tree = tree_of(
        image(size=5 * 1024**2, extra=(orphan,)),
        job_ids={("edge", "demo-phone", "demo", "20250620-0000"): job},
    )
    page = tree.pages["edge/demo-phone/demo/20250620-0000/index.html"]
    assert page.level == FILES
    name = stem("edge", "demo-phone", "demo", "20250620-0000") + ".img.xz"
    rows = {row.name: row for row in page.files}
    assert sorted(rows) == sorted([name, name[:-7] + "-packages.txt", "notes.txt.sha256"])
    row = rows[name]
    assert (row.size, row.size_text) == (5 * 1024**2, "5.0 MiB")
    assert (row.sha256, row.sha256_href) == (SHA256, name + ".sha256")
    assert (row.sha512, row.sha512_href) == (SHA512, name + ".sha512")
    packages = rows[name[:-7] + "-packages.txt"]
    assert (packages.sha256, packages.sha256_href, packages.size_text) == ("", "", "42 B")
    assert page.job_id == job
    assert page.log_href == f"logs/{quote(job, safe='')}.log"
    assert page.site_root == "../../../../../"
    assert page.title == f"edge/demo-phone/demo/20250620-0000 - {SITE_TITLE} // Images"
    assert [(c.text, c.href) for c in page.crumbs] == [
        ("images", "../../../../"),
        ("edge", "../../../"),
        ("demo-phone", "../../"),
        ("demo", "../"),
        ("20250620-0000", ""),
    ]
    root = tree.pages["index.html"]
    assert root.title == f"{SITE_TITLE} // Images"
    assert (root.site_root, root.images_root) == ("../", "")


def test_index_json_lists_images_as_bpo_does() -> None:
    tree = tree_of(image(size=1234), image("v25.12", "qemu-amd64", "console", sums=False))
    name = stem("edge", "demo-phone", "demo", "20250620-0000") + ".img.xz"
    other = stem("v25.12", "qemu-amd64", "console", "20250620-0000") + ".img.xz"
    assert tree.index == {
        "releases": [
            {
                "name": "edge",
                "pretty_name": "edge (unstable)",
                "devices": [
                    {
                        "name": "demo-phone",
                        "pretty_name": "Demo Phone",
                        "interfaces": [
                            {
                                "name": "demo",
                                "pretty_name": "Demo",
                                "images": [
                                    {
                                        "name": name,
                                        "timestamp": "2025-06-20T00:00:00",
                                        "size": 1234,
                                        "url": f"{IMAGES_URL}edge/demo-phone/demo/20250620-0000/"
                                        + name,
                                        "sha256": SHA256,
                                        "sha512": SHA512,
                                    }
                                ],
                            }
                        ],
                    }
                ],
            },
            {
                "name": "v25.12",
                "pretty_name": "v25.12",
                "devices": [
                    {
                        "name": "qemu-amd64",
                        "pretty_name": "qemu-amd64",
                        "interfaces": [
                            {
                                "name": "console",
                                "pretty_name": "Console",
                                "images": [
                                    {  # no checksum files: no checksum keys
                                        "name": other,
                                        "timestamp": "2025-06-20T00:00:00",
                                        "size": 1000,
                                        "url": f"{IMAGES_URL}v25.12/qemu-amd64/console/"
                                        f"20250620-0000/{other}",
                                    }
                                ],
                            }
                        ],
                    }
                ],
            },
        ]
    }
    assert tree.index_json.endswith(b"\n")


def test_index_json_lists_every_file_but_checksums_and_the_package_list() -> None:
    extra = (
        ImageFile("20250620-0000-postmarketOS-edge-demo-1.0-demo-phone-boot.img", 10),
        ImageFile("20250620-0000-x-android-recovery.zip", 20),
        ImageFile("index.html", 30),  # the writer's own page
    )
    tree = tree_of(image(extra=extra))
    images = tree.index["releases"][0]["devices"][0]["interfaces"][0]["images"]
    assert [i["name"] for i in images] == [
        "20250620-0000-postmarketOS-edge-demo-1.0-demo-phone-boot.img",
        stem("edge", "demo-phone", "demo", "20250620-0000") + ".img.xz",
        "20250620-0000-x-android-recovery.zip",
    ]


def test_a_directory_without_images_is_not_in_index_json() -> None:
    empty = PublishedImage("edge", "demo-phone", "demo", "20250620-0000", ())
    tree = tree_of(empty)
    assert tree.index == {"releases": []}
    assert [e.name for e in tree.pages["index.html"].entries] == ["edge"]  # the page shows it
    assert tree.pages["edge/demo-phone/demo/20250620-0000/index.html"].files == ()


def test_an_empty_tree_has_a_root_page_and_an_empty_index() -> None:
    tree = tree_of()
    assert list(tree.pages) == ["index.html"]
    assert tree.pages["index.html"].entries == ()
    assert tree.index == {"releases": []}


@pytest.mark.parametrize(
    ("hostile", "listed"),
    [
        (image("../etc"), False),
        (image("Edge"), True),  # a valid release name (branch names keep their case)
        (image("v25_12"), False),  # "_" is never in a release
        (image(device="a b"), False),
        (image(device="<script>"), False),
        (image(ui="phosh/.."), False),
        (image(ui="UPPER"), False),
        (image(date="20251340-0000"), False),  # no 40th of a 13th month
        (image(date="2025062-00000"), False),
        (image(device="x" * 65), False),
    ],
)
def test_directories_with_names_the_model_refuses_are_left_out(
    hostile: PublishedImage, listed: bool
) -> None:
    tree = tree_of(hostile, image("v25.12"))
    pages = set(tree.pages)
    wanted = {hostile.release, hostile.device, hostile.ui, hostile.date}
    assert any(all(part in p for part in wanted) for p in pages) is listed
    releases = [r["name"] for r in tree.index["releases"]]
    assert (hostile.release in releases) is (listed or hostile.release == "v25.12")


@pytest.mark.parametrize(
    ("name", "listed"),
    [
        ("20250620-0000-postmarketOS-edge-demo-1.0_rc1+git-demo-phone.img.xz", True),
        ("<img src=x onerror=alert(1)>.img.xz", False),
        ("a b.img.xz", False),
        ('quote".img.xz', False),
        ("ünïcode.img.xz", False),
        (".hidden", False),
        ("-dash-first", False),
        ("index.html", False),
        ("x" * 256, False),
        ("x" * 255, True),
    ],
)
def test_file_names_the_model_refuses_are_left_out(name: str, listed: bool) -> None:
    assert is_file_name(name) is listed
    tree = tree_of(image(extra=(ImageFile(name, 1),)))
    page = tree.pages["edge/demo-phone/demo/20250620-0000/index.html"]
    assert (name in {row.name for row in page.files}) is listed
    images = tree.index["releases"][0]["devices"][0]["interfaces"][0]["images"]
    assert (name in {i["name"] for i in images}) is listed


def test_links_quote_what_a_url_would_read_otherwise() -> None:
    name = "20250620-0000-postmarketOS-edge-demo-1.0+git-demo-phone.img.xz"
    tree = tree_of(image(device="demo+phone", extra=(ImageFile(name, 1, SHA256),)))
    page = tree.pages["edge/demo+phone/demo/20250620-0000/index.html"]
    row = next(r for r in page.files if r.name == name)
    assert row.href == name.replace("+", "%2B")
    assert [e.href for e in tree.pages["edge/index.html"].entries] == ["demo%2Bphone/"]
    images = tree.index["releases"][0]["devices"][0]["interfaces"][0]["images"]
    urls = {i["name"]: i["url"] for i in images}
    assert urls[name] == (f"{IMAGES_URL}edge/demo%2Bphone/demo/20250620-0000/" + row.href)


@pytest.mark.parametrize(
    ("sha256", "sha512", "keys"),
    [
        (SHA256, SHA512, {"sha256", "sha512"}),
        (SHA256, "", {"sha256"}),
        ("", SHA512, {"sha512"}),
        ("", "", set()),
        ("A" * 64, "b" * 127, set()),  # not what the hash is: left out
        ("<script>" + "a" * 56, "b" * 128 + "\n", set()),
    ],
)
def test_checksums_are_listed_only_when_they_are_hex_of_their_length(
    sha256: str, sha512: str, keys: set[str]
) -> None:
    name = "20250620-0000-x.img.xz"
    tree = tree_of(image(extra=(ImageFile(name, 1, sha256, sha512),)))
    images = tree.index["releases"][0]["devices"][0]["interfaces"][0]["images"]
    (entry,) = [i for i in images if i["name"] == name]
    assert set(entry) == {"name", "timestamp", "size", "url"} | keys
    row = next(
        r
        for r in tree.pages["edge/demo-phone/demo/20250620-0000/index.html"].files
        if r.name == name
    )
    assert {k for k in ("sha256", "sha512") if getattr(row, k)} == keys


@pytest.mark.parametrize(
    "job",
    ["", "not a job id", "image@master@main@aarch64@demo-phone@../x@1", "a/b@c", job_id() + "\n"],
)
def test_a_job_id_that_is_none_gets_no_log_link(job: str) -> None:
    tree = tree_of(image(), job_ids={("edge", "demo-phone", "demo", "20250620-0000"): job})
    page = tree.pages["edge/demo-phone/demo/20250620-0000/index.html"]
    assert (page.job_id, page.log_href) == ("", "")


def test_the_same_inputs_make_equal_trees() -> None:
    images = (image(), image(date="20250627-0000"), image("v25.12"))
    assert tree_of(*images) == tree_of(*reversed(images))
    assert tree_of(*images) != tree_of(*images[:2])


def test_iso_timestamp() -> None:
    assert iso_timestamp("20251231-2359") == "2025-12-31T23:59:00"


# -- index.json against its schema --------------------------------------------------------


def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    assert cls is jsonschema.Draft202012Validator
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_index_json_validates_against_the_schema() -> None:
    images = (
        image(size=1234),
        image(date="20250627-0000", sums=False),
        image("v25.12", "qemu-amd64", "console"),
        image("v24.06", "demo+phone", "phosh", extra=(ImageFile("x.img", 0, "", SHA512),)),
    )
    check = validator()
    for tree in (tree_of(*images), tree_of()):
        document = json.loads(tree.index_json)
        errors = [e.message for e in check.iter_errors(document)]
        assert errors == []


@pytest.mark.parametrize(
    "broken",
    [
        lambda d: d["releases"][0].pop("pretty_name"),
        lambda d: d["releases"][0]["devices"][0]["interfaces"][0]["images"][0].pop("url"),
        lambda d: d["releases"][0]["devices"][0]["interfaces"][0]["images"][0].update(size="1"),
        lambda d: d["releases"][0]["devices"][0]["interfaces"][0]["images"][0].update(sha256=""),
        lambda d: d["releases"][0]["devices"][0]["interfaces"][0]["images"][0].update(extra=1),
        lambda d: d["releases"][0]["devices"][0]["interfaces"][0].update(images=[]),
        lambda d: d["releases"][0]["devices"][0].update(name="A B"),
        lambda d: d["releases"][0]["devices"][0]["interfaces"][0]["images"][0].update(
            timestamp="2025-06-20"
        ),
    ],
)
def test_the_schema_refuses_what_is_not_the_format(broken: Callable[[dict], object]) -> None:  # type: ignore[type-arg]
    document = json.loads(tree_of(image()).index_json)
    broken(document)
    assert list(validator().iter_errors(document)) != []


# -- rendered and written ---------------------------------------------------------------


def make_render(html_out: Path) -> Render:
    """What the site writer gives: its jinja2 environment (configured as in
    site.writer.SiteWriter), with `static_url` for the files in html_out/static."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(["html", "xml", "atom", "svg"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )

    def static_url(name: str) -> str:
        return f"static/{name}?v={fingerprint((html_out / 'static' / name).read_bytes())}"

    env.globals["static_url"] = static_url

    def render(template: str, context: Mapping[str, object]) -> str:
        return env.get_template(template).render(context)

    return render


def publish(root: Path, release: str, device: str, ui: str, date: str, size: int = 3000) -> str:
    """A date directory as execute.images publishes it (with the `.job` file);
    the image's name."""
    directory = root / release / device / ui / date
    directory.mkdir(parents=True)
    name = stem(release, device, ui, date) + ".img.xz"
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    (directory / name).write_bytes(data)
    (directory / (name + ".sha256")).write_text(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
    (directory / (name + ".sha512")).write_text(f"{hashlib.sha512(data).hexdigest()}  {name}\n")
    (directory / (stem(release, device, ui, date) + "-packages.txt")).write_text("a\nb\n")
    (directory / ".job").write_text(job_id(device, date, ui) + "\n")
    return name


@dataclass
class Sample:
    images: Path  # served at /images/
    html_out: Path  # served at /
    writer: ImagesWriter
    render: Render
    scanner: ImageScanner
    job_ids: dict[tuple[str, str, str, str], str] = field(default_factory=dict)

    def tree(self) -> ImageTree:
        observed = self.scanner.scan(full=True)
        return tree_of(*observed, job_ids=self.job_ids)

    def write(self) -> int:
        return self.writer.write(self.tree())


SAMPLE = [
    ("edge", "demo-phone", "demo", "20250620-0000"),
    ("edge", "demo-phone", "demo", "20250627-0000"),
    ("edge", "demo-phone", "phosh", "20250627-0000"),
    ("edge", "qemu-amd64", "console", "20250627-0000"),
    ("v25.12", "demo-phone", "demo", "20250620-0000"),
    ("v24.06", "qemu-amd64", "console", "20240601-0000"),  # end of life
]


def make_sample(tmp_path: Path) -> Sample:
    """The sample tree published, the status site's files beside it (its style
    sheet, icon, and the logs of the jobs that built the images but one)."""
    images, html_out = tmp_path / "data" / "images", tmp_path / "html_out"
    (html_out / "static").mkdir(parents=True)
    for name in ("style.css", "favicon.svg"):
        (html_out / "static" / name).write_bytes((TEMPLATES_DIR / "static" / name).read_bytes())
    (html_out / "logs").mkdir()
    (html_out / "index.html").write_text("status\n")
    job_ids = {}
    for number, (release, device, ui, date) in enumerate(SAMPLE):
        publish(images, release, device, ui, date, size=1000 + number * 1500)
        if release != "v24.06":
            job = job_id(device, date, ui)
            job_ids[(release, device, ui, date)] = job
            (html_out / "logs" / f"{job}.log").write_text("built\n")
    render = make_render(html_out)
    writer = ImagesWriter(images, render)
    return Sample(images, html_out, writer, render, ImageScanner(images), job_ids)


@pytest.fixture(name="sample")
def sample_fixture(tmp_path: Path) -> Sample:
    return make_sample(tmp_path)


# A minimal DOM: what a page links and how it is built.
VOID = {"meta", "link", "img", "br", "hr", "input", "source", "wbr", "area", "col", "embed"}
LINKS = {"a": "href", "link": "href", "img": "src", "script": "src"}


@dataclass
class PageFacts:
    links: list[tuple[str, str]] = field(default_factory=list)  # (tag, url)
    tags: list[str] = field(default_factory=list)
    inline: list[str] = field(default_factory=list)  # style attributes, on* handlers
    unclosed: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    classes: set[str] = field(default_factory=set)
    title: str = ""


class Facts(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.facts = PageFacts()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.facts.tags.append(tag)
        values = {k: v or "" for k, v in attrs}
        if tag in LINKS and LINKS[tag] in values:
            self.facts.links.append((tag, values[LINKS[tag]]))
        self.facts.inline += [k for k in values if k == "style" or k.startswith("on")]
        self.facts.classes |= set(values.get("class", "").split())
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.facts.unclosed.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] == "title":
            self.facts.title += data
        self.facts.text.append(data)


def page_facts(path: Path) -> PageFacts:
    parser = Facts()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert parser.stack == [], f"{path}: unclosed {parser.stack}"
    return parser.facts


def target_of(sample: Sample, url_path: str) -> Path:
    """The file nginx serves for a URL path: /images/ from the images directory,
    everything else from html_out."""
    if url_path.startswith("/images/"):
        return sample.images / url_path.removeprefix("/images/")
    return sample.html_out / url_path.lstrip("/")


@dataclass
class Crawl:
    pages: dict[str, PageFacts]  # URL path -> the page
    broken: list[str]
    reached: set[str]  # URL paths of every file reached


def crawl(sample: Sample) -> Crawl:
    """Follow every relative link from /images/, as a browser resolves it."""
    start = "/images/index.html"
    todo, pages, broken, reached = [start], {}, [], {start}
    while todo:
        url = todo.pop()
        facts = page_facts(target_of(sample, url))
        pages[url] = facts
        for tag, href in facts.links:
            parts = urlsplit(href)
            assert not parts.scheme and not parts.netloc, f"{url}: absolute link {href}"
            resolved = urlsplit(urljoin("http://x" + url, href)).path
            path = posixpath.normpath(unquote(resolved)) + ("/" if resolved.endswith("/") else "")
            target = target_of(sample, path)
            if path.endswith("/"):
                target = target / "index.html"
                path += "index.html"
            if not target.is_file():
                broken.append(f"{url}: {tag} {href} -> {path} missing")
                continue
            if path not in reached:
                reached.add(path)
                if path.startswith("/images/") and path.endswith(".html"):
                    todo.append(path)
    return Crawl(pages, broken, reached)


def test_every_link_of_every_page_resolves(sample: Sample) -> None:
    assert sample.write() > 0
    found = crawl(sample)
    assert found.broken == []
    # Every directory of the tree has its page, and every page is reached.
    directories = {p for p in sample.images.rglob("*") if p.is_dir()} | {sample.images}
    for directory in directories:
        assert (directory / "index.html").is_file(), directory
    pages = {
        "/images/" + p.relative_to(sample.images).as_posix() for p in sample.images.rglob("*.html")
    }
    assert pages == set(found.pages)
    # Every file of every date directory but the hidden `.job` is linked.
    files = {
        "/images/" + p.relative_to(sample.images).as_posix()
        for p in sample.images.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name != "index.json"
    }
    assert files - found.reached == set()
    # The status site: its style sheet, icon and front page, and the logs but v24.06's.
    assert {"/static/style.css", "/static/favicon.svg", "/index.html"} <= found.reached
    assert {p for p in found.reached if p.startswith("/logs/")} == {
        f"/logs/{job}.log" for job in sample.job_ids.values()
    }
    assert "/images/index.json" in found.reached


def test_pages_are_well_formed_styled_and_titled(sample: Sample) -> None:
    sample.write()
    for url, facts in crawl(sample).pages.items():
        assert facts.unclosed == [], url
        assert facts.inline == [], f"{url}: inline style or script (the CSP forbids them)"
        assert "script" not in facts.tags and "style" not in facts.tags, url
        sheets = [href for tag, href in facts.links if tag == "link" and "style.css" in href]
        assert len(sheets) == 1 and "?v=" in sheets[0], url
        relpath = url.removeprefix("/images/").removesuffix("index.html").rstrip("/")
        assert facts.title == (
            f"{relpath} - {SITE_TITLE} // Images" if relpath else f"{SITE_TITLE} // Images"
        )
        assert "nav" in facts.tags and "h1" in facts.tags, url


def test_the_pages_say_what_the_model_says(sample: Sample) -> None:
    sample.write()
    pages = crawl(sample).pages
    root = " ".join(pages["/images/index.html"].text)
    assert root.index("edge (unstable)") < root.index("v25.12") < root.index("v24.06 (end of life)")
    dates = pages["/images/edge/demo-phone/demo/index.html"]
    assert "latest" in dates.classes
    text = " ".join(dates.text)
    assert text.index("20250627-0000") < text.index("latest") < text.index("20250620-0000")
    files = pages["/images/edge/demo-phone/demo/20250627-0000/index.html"]
    words = " ".join(files.text)
    assert "KiB" in words and "build log" in words
    image_file = (
        sample.images
        / "edge/demo-phone/demo/20250627-0000"
        / (stem("edge", "demo-phone", "demo", "20250627-0000") + ".img.xz")
    )
    assert hashlib.sha256(image_file.read_bytes()).hexdigest() in words
    assert hashlib.sha512(image_file.read_bytes()).hexdigest() in words
    old = " ".join(pages["/images/v24.06/qemu-amd64/console/20240601-0000/index.html"].text)
    assert "not known" in old  # no job id for it: no log link


def test_hostile_pretty_names_are_escaped(tmp_path: Path) -> None:
    sample = make_sample(tmp_path)
    hostile = '<script>alert("x")</script> & <b>'
    devices = (DeviceImages("demo-phone", hostile, uis=("demo",)),)
    ui_names = {"demo": "<img src=x onerror=alert(1)>"}
    tree = tree_of(
        *sample.scanner.scan(),
        config=config(devices=devices, ui_names=ui_names),
        site_title="<i>title</i>",
    )
    sample.writer.write(tree)
    for page in sample.images.rglob("index.html"):
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text and "<img" not in text and "<b>" not in text, page
        assert "<i>" not in text, page
    release = (sample.images / "edge" / "index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;" in release
    facts = page_facts(sample.images / "edge" / "demo-phone" / "index.html")
    assert facts.inline == [] and "img" not in facts.tags
    assert json.loads(tree.index_json)["releases"][0]["devices"][0]["pretty_name"] == hostile


def test_only_changed_files_are_written(sample: Sample) -> None:
    first = sample.write()
    pages = len(list(sample.images.rglob("index.html")))
    assert first == pages + 1  # and index.json
    # A replaced file is a new inode (written aside, renamed over the old one).
    inodes = {p: p.stat().st_ino for p in sample.images.rglob("index.*")}
    # The pages and index.json in the tree do not change what the scanner sees.
    assert sample.write() == 0
    assert sample.writer.rendered == pages
    # A new writer (a restart) renders again but finds the same bytes on disk.
    again = ImagesWriter(sample.images, sample.render)
    assert again.write(sample.tree()) == 0
    assert again.rendered == pages
    assert {p: p.stat().st_ino for p in sample.images.rglob("index.*")} == inodes
    # A new image: its page, its UI's page (the dates), its device's (the UI's
    # count of images) and index.json change; nothing else.
    publish(sample.images, "edge", "demo-phone", "demo", "20250704-0000")
    assert sample.write() == 4
    changed = {
        p.relative_to(sample.images).as_posix()
        for p in sample.images.rglob("index.*")
        if p.stat().st_ino != inodes.get(p)
    }
    assert changed == {
        "index.json",
        "edge/demo-phone/demo/index.html",
        "edge/demo-phone/demo/20250704-0000/index.html",
        "edge/demo-phone/index.html",  # the UI's count of images
    }


def test_pages_of_directories_that_went_are_not_made_again(sample: Sample) -> None:
    tree = sample.tree()
    gone = sample.images / "edge" / "demo-phone" / "demo" / "20250620-0000"
    for path in sorted(gone.rglob("*"), reverse=True):
        path.unlink()
    gone.rmdir()
    sample.writer.write(tree)  # observed before the directory went
    assert not gone.exists()


def test_the_page_of_a_directory_left_without_images_goes(sample: Sample) -> None:
    sample.write()
    ui = sample.images / "edge" / "demo-phone" / "phosh"
    date = ui / "20250627-0000"
    for path in date.iterdir():
        path.unlink()
    date.rmdir()
    assert (ui / "index.html").is_file()
    sample.write()
    assert not (ui / "index.html").exists()  # it would list a date that is gone
    device = (sample.images / "edge" / "demo-phone" / "index.html").read_text(encoding="utf-8")
    assert "phosh/" not in device
    assert crawl(sample).broken == []


def test_hostile_entries_in_the_tree_are_left_alone(sample: Sample) -> None:
    """A directory named as no device is and a symlink among an image's files are
    neither listed nor touched; a directory where a page goes is left, with a
    warning, and the other pages are written."""
    odd = sample.images / "edge" / "Not A Device"
    odd.mkdir()
    (odd / "index.html").write_text("someone else's\n")
    date = sample.images / "edge" / "demo-phone" / "demo" / "20250627-0000"
    (date / "evil.img.xz").symlink_to("/etc/passwd")
    (sample.images / "v25.12" / "index.html").mkdir(parents=True)
    assert sample.write() > 0
    assert (odd / "index.html").read_text() == "someone else's\n"
    assert "evil" not in (date / "index.html").read_text(encoding="utf-8")
    assert "Not A Device" not in (sample.images / "edge" / "index.html").read_text()
    assert (sample.images / "v25.12" / "index.html").is_dir()
    assert (sample.images / "v25.12" / "demo-phone" / "index.html").is_file()


def test_index_json_on_disk_is_the_tree_s_and_validates(sample: Sample) -> None:
    tree = sample.tree()
    sample.writer.write(tree)
    data = (sample.images / "index.json").read_bytes()
    assert data == tree.index_json
    document = json.loads(data)
    assert list(validator().iter_errors(document)) == []
    names = [r["name"] for r in document["releases"]]
    assert names == ["edge", "v25.12", "v24.06"]
    changed = replace(tree, index_json=b'{"releases": []}\n')
    assert sample.writer.write(changed) == 1
    assert (sample.images / "index.json").read_bytes() == b'{"releases": []}\n'


def test_a_new_style_sheet_renders_every_page_again(sample: Sample) -> None:
    """The pages link the style sheet with its fingerprint: new bytes (a deploy)
    need new links, though no page's value changed."""
    tree = sample.tree()
    sample.writer.write(tree, style="first")
    assert sample.writer.write(tree, style="first") == 0
    sheet = sample.html_out / "static" / "style.css"
    sheet.write_bytes(sheet.read_bytes() + b"/* new */\n")
    pages = len(list(sample.images.rglob("index.html")))
    assert sample.writer.write(tree, style="second") == pages  # index.json is the same
    version = f"?v={fingerprint(sheet.read_bytes())}"
    for page in sample.images.rglob("index.html"):
        assert version in page.read_text(encoding="utf-8"), page


def test_an_update_from_the_same_source_builds_no_tree(tmp_path: Path) -> None:
    """The loop calls `update` every pass: with the same observed images and style it
    must not even build the tree."""
    built: list[int] = []
    writer = ImagesWriter(tmp_path / "images", lambda name, context: "page")

    def empty_tree() -> ImageTree:
        built.append(1)
        return ImageTree(pages={}, index_json=b"{}")

    writer.update(("a",), empty_tree, style=1)
    writer.update(("a",), empty_tree, style=1)
    assert built == [1]
    writer.update(("b",), empty_tree, style=1)
    writer.update(("b",), empty_tree, style=2)
    assert built == [1, 1, 1]
