"""What should exist: pmaports checkouts (git, staging branches) -> the packages
each repository should hold, with dependencies resolved and APKBUILD parses
cached across passes and restarts. May import `config`, `operator` (removal
requests), `formats`, `fs` and `model`; the only package that runs git.
"""
