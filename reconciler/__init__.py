"""reconciler: a level-triggered build orchestrator for apk package repositories."""

__version__ = "0.1.0"
