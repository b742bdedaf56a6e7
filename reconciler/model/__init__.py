"""The values every other package passes around: names and repositories, packages,
jobs, observations, package and repository progress, the disk layout's names and
the error kinds. Frozen dataclasses and StrEnums; no I/O, no behaviour beyond
formatting and small derived properties. Imports nothing of reconciler.
"""
