"""The status site: a pure view model of one pass (pages, package pages, feeds,
JSON documents, metrics, the plan in words) and the writer that renders it with
jinja2 (the only module importing it) and writes only what changed. No HTML is
made in Python: it is all in site_templates/, escaped by autoescape
(tests/test_site_no_html.py).

Everything but `writer` is pure. May import `plan`, `model`, `fs` (the writer).
"""
