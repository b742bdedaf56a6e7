"""The configuration: YAML -> a frozen Config, every section of it (branches,
paths, jobs, the builder, builds.sr.ht, retries, loop, keys, site, mirror), with
every problem reported at once as `file:line: message`. May import `model`.
"""
