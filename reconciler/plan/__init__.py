"""The decisions: plan(desired, observed, settings, now) -> the next actions and
every package's and repository's state with a reason, and the memo that reuses
a plan while its inputs are the same.

Pure: no I/O, no clock, no randomness. May import `operator.intents` (the
standing intents it obeys), `formats.apkversion` and `model`; never an adapter.
"""
