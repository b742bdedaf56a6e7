"""reconciler: a level-triggered build orchestrator for apk package repositories.

The packages are the architecture (ARCHITECTURE.md draws it): `model` and
`formats` at the bottom, pure; `plan` decides; `desired`, `observed`, `execute`,
`jobs`, `memory` and `operator` are the adapters around it; `site` shows,
`hooks` listen, `loop` wires one pass and `cli` is the command line on top.
`reconciler.signer` and `reconciler.synthetic` are entry points that job
scripts name; their programs live in `jobs`.
"""

__version__ = "0.1.0"
