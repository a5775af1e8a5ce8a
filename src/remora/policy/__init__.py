"""Policy: pure decisions (matching, load balancing, flags) with no I/O; clocks and RNGs are parameters."""
