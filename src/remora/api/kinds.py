"""Every served kind, registered by importing the model modules; see `KINDS`."""

from remora.api import kube, networking, security, telemetry  # noqa: F401  (they register)
from remora.api.resource import KINDS, KindInfo

__all__ = ["KINDS", "KindInfo"]
