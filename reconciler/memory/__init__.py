"""What the daemon remembers between passes that it cannot observe again: the
cache (refused results, mirrored indexes, last states -> transitions) and the
append-only event history. May import `fs` and `model`.
"""
