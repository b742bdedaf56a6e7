"""The status site: a pure view model of one pass (pages, package pages, feeds,
JSON documents, metrics, the plan in words) and the writer that renders it with
jinja2 (the only module importing it) and writes only what changed.

Everything but `writer` is pure. May import `plan`, `model`, `fs` (the writer).
"""
