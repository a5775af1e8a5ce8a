"""Compilation: resources and a proxy identity in, an immutable Snapshot out (no I/O)."""
