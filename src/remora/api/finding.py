"""One unenforced thing set in one resource, as remora.api.unenforced reports it.

Plain data in a module that loads nothing else: the proxy's compiled snapshot carries findings
(remora.mesh.encoding decodes them) and the serving proxy loads no models.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    """One unenforced thing set in one resource: `spec.subsets[0].trafficPolicy.tls`."""

    subject: str  # "DestinationRule default/reviews"
    kind: str
    path: str  # the concrete path ("" for the whole resource)
    reason: str

    @property
    def message(self) -> str:
        if not self.path:
            return f"{self.kind} is NOT enforced by Remora: {self.reason}"
        return f"{self.path} is not enforced by Remora: {self.reason}"

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"
