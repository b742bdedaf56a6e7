"""The HTTP receivers: GitLab push hooks and job-end callbacks in, trigger files
out, and the hashed tokens that guard them. They never build or index inside a
request. May import `config`, `operator.triggers`, `fs` and `model`.
"""
