"""The operators' hands on the daemon: the registry of operations (hold, retry,
rebuild, ...) with their fields, validation and effect; the standing intents they
leave and their durable file; pushes; and trigger files, the one format every
writer uses, with the watched directory the daemon reads them from.

`intents`, `operations`, `pushes` and `world` are pure; `store`, `triggers` and
`trigger_dir` touch files (`trigger_dir` is the only module importing watchdog).
May import `fs` and `model`.
"""
