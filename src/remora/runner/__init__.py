"""The local runner: workloads as processes with sidecars, probes, restarts and autoscaling."""
