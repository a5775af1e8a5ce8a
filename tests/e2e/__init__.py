"""Multi-process tests: real `remora` processes, upstreams and peers on 127.0.0.1 (meshkit.py
starts and always stops them)."""
