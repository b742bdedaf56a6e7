"""The file formats, byte-compatible with apk-tools and abuild: apk v2 packages,
APKINDEX text and archives, tar blocks, RSA signatures, apk version ordering,
dependency strings and APKBUILDs read without running shell.

Pure: bytes and text in, values out (reading and writing the files is `fs`'s
job). May import `model` and cryptography, nothing else of reconciler.
"""
