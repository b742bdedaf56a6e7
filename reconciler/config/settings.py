"""YAML configuration -> a frozen Config, with every problem reported at once.

Loading walks the YAML node tree (not the plain data) so that each error can say
`file:line: message`. Unknown keys, wrong types and unsafe names are all errors;
the caller gets a ConfigError listing every one of them, never just the first.
With no file at all, the embedded defaults run the sample tree in this checkout.
Each section has its own module (`branches`, `sections`, `builder`, `sourcehut`,
`images`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from reconciler.config.branches import BranchConfig, read_branches
from reconciler.config.builder import BuilderConfig, read_builder
from reconciler.config.images import ImagesConfig, read_images
from reconciler.config.reader import NodeReader
from reconciler.config.sections import (
    InputsConfig,
    JobsConfig,
    KeysConfig,
    LoopConfig,
    MirrorConfig,
    PathsConfig,
    RetentionConfig,
    RetryConfig,
    SiteConfig,
    read_inputs,
    read_jobs,
    read_keys,
    read_loop,
    read_mirror,
    read_paths,
    read_retention,
    read_retries,
    read_site,
)
from reconciler.model.errors import ConfigError
from reconciler.model.names import RepoKey, is_safe_name


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
    mirror: MirrorConfig = field(default_factory=MirrorConfig)
    inputs: InputsConfig = field(default_factory=InputsConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)

    def branch(self, name: str) -> BranchConfig:
        for branch in self.branches:
            if branch.name == name:
                return branch
        raise KeyError(name)

    def repositories(self, staging: tuple[BranchConfig, ...] = ()) -> list[RepoKey]:
        """Every repository the configured branches (and these staging branches)
        publish, in build order."""
        return [
            RepoKey(branch.name, splitrepo, arch)
            for branch in (*self.branches, *staging)
            for arch in branch.arches
            for splitrepo in ("", *self.splitrepos)
        ]


DEFAULT_YAML = """\
branches:
  - name: main
    pmaports: examples/pmaports
    arches: [x86_64, aarch64, armv7]
  - name: v25.12
    pmaports: examples/pmaports
    arches: [x86_64, aarch64, armv7]
    ignore_errors: true
images:
  devices:
    - codename: demo-phone
      uis: [demo, console]
    - codename: demo-laptop
      uis: [console, demo]
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
    return config


def _is_splitrepo_name(name: str) -> bool:
    """A split repository's name: safe in a path, and not "main", which job ids
    use for the main repository."""
    return is_safe_name(name) and name != "main"


def _read_config(r: NodeReader, root: yaml.Node | None) -> Config:
    top = r.mapping(
        root,
        "top level",
        {"paths", "branches", "splitrepos", "jobs", "builder", "retries", "loop", "keys"}
        | {"site", "mirror", "inputs", "retention", "images"},
    )
    branches = read_branches(r, top.get("branches"))  # first: a missing list is on line 1
    paths = read_paths(r, top.get("paths"))
    splitrepos = tuple(
        r.str_list(top.get("splitrepos"), "splitrepos", ["systemd"], check=_is_splitrepo_name)
    )
    jobs = read_jobs(r, top.get("jobs"))
    site = read_site(r, top.get("site"))
    names = tuple(b.name for b in branches)
    return Config(
        source=r.source,
        paths=paths,
        branches=branches,
        splitrepos=splitrepos,
        jobs=jobs,
        builder=read_builder(r, top.get("builder"), {b.name for b in branches}),
        retries=read_retries(r, top.get("retries")),
        loop=read_loop(r, top.get("loop")),
        keys=read_keys(r, top.get("keys"), paths.data, root, jobs.service),
        site=site,
        mirror=read_mirror(r, top.get("mirror")),
        inputs=read_inputs(r, top.get("inputs")),
        retention=read_retention(r, top.get("retention")),
        images=read_images(r, top.get("images"), names, jobs.max_parallel, site.url),
    )
