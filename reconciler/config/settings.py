"""YAML configuration -> a frozen Config, with every problem reported at once.

Loading walks the YAML node tree (not the plain data) so that each error can say
`file:line: message`. Unknown keys, wrong types and unsafe names are all errors;
the caller gets a ConfigError listing every one of them, never just the first.
With no file at all, the embedded defaults run the sample tree in this checkout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from reconciler.config.builder import BuilderConfig, read_builder
from reconciler.config.reader import ConfigError, NodeReader
from reconciler.config.sourcehut import SourcehutConfig, read_sourcehut
from reconciler.model.names import STAGING_SEPARATOR, is_safe_arch, is_safe_branch, is_safe_name

# Directory names in the repository layout that a configured branch may not take.
RESERVED_BRANCHES = ("staging", "extra-repos")

__all__ = ["BuilderConfig", "Config", "ConfigError", "default_config", "load_config"]


@dataclass(frozen=True, slots=True)
class BranchConfig:
    name: str
    pmaports: Path
    arches: tuple[str, ...]  # build order; the first is the native arch
    ignore_errors: bool = False
    apk_version: str = "3.0"
    # A git remote (URL or path) to follow: `pmaports` is then the daemon's own
    # checkout of this branch, fetched on push triggers and every resync.
    remote: str = ""
    # Arches that staging branches `<name>_staging_<x>` of this branch build
    # (staging needs `remote`: staging branches are discovered there).
    staging_arches: tuple[str, ...] = ()
    # Set on a discovered staging branch: the configured branch it stages for.
    origin: str = ""

    @property
    def native_arch(self) -> str:
        return self.arches[0]


@dataclass(frozen=True, slots=True)
class PathsConfig:
    data: Path
    html_out: Path
    final_repo: Path
    wip_repo: Path
    symlink_repo: Path
    jobs: Path
    triggers: Path
    state: Path


@dataclass(frozen=True, slots=True)
class JobsConfig:
    service: str = "local"
    max_parallel: int = 2
    timeout_seconds: float = 3 * 3600
    sourcehut: SourcehutConfig | None = None


@dataclass(frozen=True, slots=True)
class RetryConfig:
    max_tries: int = 3
    backoff_seconds: float = 60.0
    backoff_max_seconds: float = 3600.0


@dataclass(frozen=True, slots=True)
class LoopConfig:
    resync_interval_seconds: float = 300.0
    poll_interval_seconds: float = 5.0
    settle_seconds: float = 0.2


@dataclass(frozen=True, slots=True)
class KeysConfig:
    wip_private: Path
    final_public: Path
    final_private: Path  # handed to sign jobs only; the daemon never opens it
    final_name: str = "reconciler-local.rsa.pub"
    generate_missing: bool = True

    @property
    def wip_public(self) -> Path:
        return self.wip_private.with_name(self.wip_private.name + ".pub")


@dataclass(frozen=True, slots=True)
class SiteConfig:
    url: str = "http://localhost:8080/"
    title: str = "reconciler"
    monitoring_max_failures: int = 10
    monitoring_footer: str = ""


@dataclass(frozen=True, slots=True)
class MirrorConfig:
    rsync: str = ""  # e.g. rsync://mirror.example.org/postmarketos/ ("" = no mirror)
    retry_seconds: float = 60.0  # wait after a failed transfer before the next try

    @property
    def enabled(self) -> bool:
        return bool(self.rsync)


@dataclass(frozen=True, slots=True)
class Config:
    source: str
    paths: PathsConfig
    branches: tuple[BranchConfig, ...]
    splitrepos: tuple[str, ...]
    jobs: JobsConfig
    builder: BuilderConfig
    retries: RetryConfig
    loop: LoopConfig
    keys: KeysConfig
    site: SiteConfig
    mirror: MirrorConfig = MirrorConfig()

    def branch(self, name: str) -> BranchConfig:
        for branch in self.branches:
            if branch.name == name:
                return branch
        raise KeyError(name)


DEFAULT_YAML = """\
branches:
  - name: main
    pmaports: examples/pmaports
    arches: [x86_64, aarch64, armv7]
  - name: v25.12
    pmaports: examples/pmaports
    arches: [x86_64, aarch64, armv7]
    ignore_errors: true
"""


def default_config(base: Path) -> Config:
    """The embedded defaults: the sample tree, local jobs, synthetic builder."""
    return parse_config(DEFAULT_YAML, "<embedded defaults>", base)


def load_config(path: Path | None, base: Path | None = None) -> Config:
    """Load `path`, or the embedded defaults when None. Relative paths resolve
    against the config file's directory (or `base`, default the working directory)."""
    if path is None:
        return default_config((base or Path.cwd()).resolve())
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}:1: cannot read the file: {exc}"]) from exc
    return parse_config(text, str(path), (base or path.parent).resolve())


def parse_config(text: str, source: str, base: Path) -> Config:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise ConfigError([f"{source}:{line}: not valid YAML: {exc}"]) from exc
    reader = NodeReader(source, base)
    config = _read_config(reader, root)
    reader.raise_if_errors()
    assert config is not None
    return config


def _read_config(r: NodeReader, root: yaml.Node | None) -> Config | None:
    top = r.mapping(
        root,
        "top level",
        {
            "paths",
            "branches",
            "splitrepos",
            "jobs",
            "builder",
            "retries",
            "loop",
            "keys",
            "site",
            "mirror",
        },
    )
    branches = _read_branches(r, top.get("branches"))  # first: a missing list is on line 1
    paths = _read_paths(r, top.get("paths"))
    splitrepos = tuple(
        r.str_list(top.get("splitrepos"), "splitrepos", ["systemd"], check=is_safe_name)
    )
    j = r.mapping(
        top.get("jobs"), "jobs", {"service", "max_parallel", "timeout_seconds", "sourcehut"}
    )
    service = r.choice(j.get("service"), "jobs.service", "local", ("local", "sourcehut"))
    jobs = JobsConfig(
        service=service,
        max_parallel=r.integer(j.get("max_parallel"), "jobs.max_parallel", 2, minimum=1),
        timeout_seconds=r.number(j.get("timeout_seconds"), "jobs.timeout_seconds", 10800.0),
        sourcehut=read_sourcehut(r, j.get("sourcehut")),
    )
    if service == "sourcehut" and j.get("sourcehut") is None:
        r.error(j.get("service"), "jobs.sourcehut: missing, required with jobs.service: sourcehut")
    builder = read_builder(
        r, top.get("builder"), [(b.name, b.pmaports, b.remote) for b in branches]
    )
    t = r.mapping(
        top.get("retries"), "retries", {"max_tries", "backoff_seconds", "backoff_max_seconds"}
    )
    retries = RetryConfig(
        max_tries=r.integer(t.get("max_tries"), "retries.max_tries", 3, minimum=1),
        backoff_seconds=r.number(t.get("backoff_seconds"), "retries.backoff_seconds", 60.0),
        backoff_max_seconds=r.number(
            t.get("backoff_max_seconds"), "retries.backoff_max_seconds", 3600.0
        ),
    )
    lp = r.mapping(
        top.get("loop"),
        "loop",
        {"resync_interval_seconds", "poll_interval_seconds", "settle_seconds"},
    )
    loop = LoopConfig(
        resync_interval_seconds=r.number(
            lp.get("resync_interval_seconds"), "loop.resync_interval_seconds", 300.0
        ),
        poll_interval_seconds=r.number(
            lp.get("poll_interval_seconds"), "loop.poll_interval_seconds", 5.0
        ),
        settle_seconds=r.number(lp.get("settle_seconds"), "loop.settle_seconds", 0.2),
    )
    k = r.mapping(
        top.get("keys"),
        "keys",
        {"wip_private", "final_public", "final_private", "final_name", "generate_missing"},
    )
    keys_dir = paths.data / "keys"
    final_name = r.string(k.get("final_name"), "keys.final_name", "reconciler-local.rsa.pub")
    if not (is_safe_name(final_name) and final_name.endswith(".pub")):
        r.error(k.get("final_name") or root, "keys.final_name: expected a file name ending .pub")
    keys = KeysConfig(
        wip_private=r.path(k.get("wip_private"), "keys.wip_private", keys_dir / "wip.rsa"),
        final_public=r.path(k.get("final_public"), "keys.final_public", keys_dir / "final.rsa.pub"),
        final_private=r.path(k.get("final_private"), "keys.final_private", keys_dir / "final.rsa"),
        final_name=final_name,
        generate_missing=r.boolean(k.get("generate_missing"), "keys.generate_missing", True),
    )
    s = r.mapping(
        top.get("site"), "site", {"url", "title", "monitoring_max_failures", "monitoring_footer"}
    )
    site = SiteConfig(
        url=r.string(s.get("url"), "site.url", "http://localhost:8080/"),
        title=r.string(s.get("title"), "site.title", "reconciler"),
        monitoring_max_failures=r.integer(
            s.get("monitoring_max_failures"), "site.monitoring_max_failures", 10, minimum=1
        ),
        monitoring_footer=r.string(s.get("monitoring_footer"), "site.monitoring_footer", ""),
    )
    return Config(
        source=r.source,
        paths=paths,
        branches=branches,
        splitrepos=splitrepos,
        jobs=jobs,
        builder=builder,
        retries=retries,
        loop=loop,
        keys=keys,
        site=site,
        mirror=_read_mirror(r, top.get("mirror")),
    )


def _read_paths(r: NodeReader, node: yaml.Node | None) -> PathsConfig:
    names = {"data", "html_out", "final_repo", "wip_repo", "symlink_repo", "jobs", "triggers"}
    p = r.mapping(node, "paths", names | {"state"})
    data = r.path(p.get("data"), "paths.data", Path("_data"))
    return PathsConfig(
        data=data,
        html_out=r.path(p.get("html_out"), "paths.html_out", Path("_html_out")),
        final_repo=r.path(p.get("final_repo"), "paths.final_repo", data / "repo" / "final"),
        wip_repo=r.path(p.get("wip_repo"), "paths.wip_repo", data / "repo" / "wip"),
        symlink_repo=r.path(p.get("symlink_repo"), "paths.symlink_repo", data / "repo" / "symlink"),
        jobs=r.path(p.get("jobs"), "paths.jobs", data / "jobs"),
        triggers=r.path(p.get("triggers"), "paths.triggers", data / "triggers"),
        state=r.path(p.get("state"), "paths.state", data / "state"),
    )


def _read_branches(r: NodeReader, node: yaml.Node | None) -> tuple[BranchConfig, ...]:
    items = r.sequence(node, "branches", required=True)
    if node is not None and isinstance(node, yaml.SequenceNode) and not items:
        r.error(node, "branches: expected at least one branch")
    branches: list[BranchConfig] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"branches[{index}]"
        m = r.mapping(
            item,
            where,
            {
                "name",
                "pmaports",
                "arches",
                "ignore_errors",
                "apk_version",
                "remote",
                "staging_arches",
            },
        )
        name = r.string(m.get("name"), f"{where}.name", None)
        if name is not None and not is_safe_branch(name):
            r.error(m.get("name") or item, f"{where}.name: {name!r} is not a safe branch name")
        elif name is not None and (name in RESERVED_BRANCHES or STAGING_SEPARATOR in name):
            r.error(
                m.get("name") or item,
                f"{where}.name: {name!r} is reserved for staging repositories"
                f" (a configured branch may not be {' or '.join(RESERVED_BRANCHES)}"
                f" nor contain {STAGING_SEPARATOR!r})",
            )
        if name in seen:
            r.error(m.get("name") or item, f"{where}.name: branch {name!r} is listed twice")
        seen.add(name or "")
        pmaports = r.path(m.get("pmaports"), f"{where}.pmaports", None)
        arches = r.str_list(m.get("arches"), f"{where}.arches", None, check=is_safe_arch)
        if m.get("arches") is not None and not arches:
            r.error(m["arches"], f"{where}.arches: expected at least one arch")
        if len(set(arches)) != len(arches):
            r.error(m.get("arches") or item, f"{where}.arches: an arch is listed twice")
        apk_version = r.choice(m.get("apk_version"), f"{where}.apk_version", "3.0", ("3.0", "2.14"))
        ignore_errors = r.boolean(m.get("ignore_errors"), f"{where}.ignore_errors", False)
        remote = r.string(m.get("remote"), f"{where}.remote", "")
        if remote.startswith("-") or "\n" in remote:
            r.error(m.get("remote"), f"{where}.remote: expected a git URL or path")
            remote = ""
        staging_arches = r.str_list(
            m.get("staging_arches"), f"{where}.staging_arches", [], check=is_safe_arch
        )
        if m.get("staging_arches") is None:
            staging_arches = list(arches)
        elif not set(staging_arches) <= set(arches):
            r.error(m["staging_arches"], f"{where}.staging_arches: expected arches of the branch")
        if name and pmaports is not None and arches:
            branches.append(
                BranchConfig(
                    name=name,
                    pmaports=pmaports,
                    arches=tuple(arches),
                    ignore_errors=ignore_errors,
                    apk_version=apk_version,
                    remote=remote,
                    staging_arches=tuple(a for a in arches if a in staging_arches),
                )
            )
    return tuple(branches)


def _read_mirror(r: NodeReader, node: yaml.Node | None) -> MirrorConfig:
    m = r.mapping(node, "mirror", {"rsync", "retry_seconds"})
    target = r.string(m.get("rsync"), "mirror.rsync", "")
    if target and (target.startswith("-") or "\n" in target or "\x00" in target):
        r.error(m.get("rsync"), "mirror.rsync: expected an rsync destination")
        target = ""
    return MirrorConfig(
        rsync=target.rstrip("/") + "/" if target else "",
        retry_seconds=r.number(m.get("retry_seconds"), "mirror.retry_seconds", 60.0),
    )
