"""Jobs: the JobService protocol and its two services (local processes;
builds.sr.ht in `sourcehut`), the scripts jobs run (synthetic and pmbootstrap
builds, sign jobs) and the programs inside them (runner, synthetic builder,
signer, silence watchdog). May import `config`, `operator.triggers` (the runner's
wake-up), `formats`, `fs` and `model`; the only package that talks to a job
service.
"""
