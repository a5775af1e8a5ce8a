"""Tests of `remora load`: its schedule, percentiles and summary, and a run against a server."""
