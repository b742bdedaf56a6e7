"""The HTTP receivers: GitLab push hooks and job-end callbacks in, trigger files
out; image jobs' files in (uploads), and the hashed tokens that guard them. `app`
is the WSGI application (the checks), `webhook` serves it with waitress (the only
module importing it), `coalesce` keeps a flood of requests to one trigger per key
and window, `jobend` holds the job-end routes, `upload` the upload route and its
directory, `tokens` the store. They never build or index inside a request. May
import `config`, `operator.triggers`, `fs`, `formats` (the checksum block's file
names) and `model`.
"""
