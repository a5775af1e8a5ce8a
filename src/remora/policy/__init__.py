"""Policy: pure decisions (matching, balancing, flags); no I/O, clocks and RNGs are parameters."""
