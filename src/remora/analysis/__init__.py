"""Cross-resource analysis with istioctl analyze's message codes and wording: `analyze()`."""

from remora.analysis.runner import analyze

__all__ = ["analyze"]
