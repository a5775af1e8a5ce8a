"""Tests of the load generator (remora.loadgen) and `remora load`: its schedule, percentiles and
summary, and runs against a server."""
