"""Files: the one way to write what others read (atomic: aside, fsync, rename),
safe joins of untrusted names, bounded reads of apk and key files, and the
crash-test hook. May import `model` and `formats`; nothing that decides.
"""
