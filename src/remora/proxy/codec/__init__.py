"""HTTP codecs with no I/O: bytes in, events out, bytes back (STYLE.md, practice 1)."""
