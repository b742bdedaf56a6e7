"""The hands: performs the plan's actions one by one, each in its own error
boundary, on the repositories (WIP, symlink, final), the job service and the
mirror. Decides nothing and never looks at the repositories again to decide.
May import `plan.actions`, `jobs`, `memory`, `config`, `formats`, `fs`, `model`.
"""
