"""DestinationRule: traffic policy and subsets for one service host.

Rules follow istio/istio pkg/config/validation/validation.go (ValidateDestinationRule,
validateSubset, validateExportTo).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from pydantic import Field, model_validator

from remora.api.base import Spec, fail
from remora.api.common import WorkloadSelector
from remora.api.networking import names
from remora.api.networking.traffic_policy import TrafficPolicy
from remora.api.resource import Resource, served


class Subset(Spec):
    """A named group of endpoints selected by labels, with an optional policy override."""

    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    traffic_policy: TrafficPolicy | None = None

    @model_validator(mode="after")
    def _valid(self) -> Subset:
        # validateSubset / validateSubsetName
        if not self.name:
            fail("subset name cannot be empty", "name")
        if not names.is_dns1123_label(self.name):
            fail(f"subset name is invalid: {self.name}", "name")
        if problem := names.check_labels(self.labels):
            fail(problem, "labels")
        return self


class DestinationRuleSpec(Spec):
    """Policies for traffic to `host` once routing has happened."""

    host: str
    traffic_policy: TrafficPolicy | None = None
    subsets: list[Subset] = Field(default_factory=list)
    export_to: list[str] = Field(default_factory=list)
    workload_selector: WorkloadSelector | None = None

    @model_validator(mode="after")
    def _valid(self) -> DestinationRuleSpec:
        if problem := names.check_wildcard_domain(self.host):
            fail(problem, "host")
        seen: set[str] = set()
        for position, subset in enumerate(self.subsets):
            if subset.name in seen:
                fail(f"duplicate subset names: {subset.name}", "subsets", position, "name")
            seen.add(subset.name)
        if problem := names.check_export_to(self.export_to):
            fail(problem, "exportTo")
        # validateExportTo: a rule with a selector stays in its own namespace
        if self.workload_selector is not None and (
            len(self.export_to) > 1 or "*" in self.export_to
        ):
            fail("destination rule with workload selector cannot have exportTo beyond "
                 "current namespace", "exportTo")  # fmt: skip
        return self

    def subset(self, name: str) -> Subset | None:
        """The subset called `name`, if defined."""
        return next((s for s in self.subsets if s.name == name), None)

    @property
    def subset_names(self) -> Iterator[str]:
        return (s.name for s in self.subsets)


@served("networking.istio.io", "v1alpha3", "v1beta1", "v1")
class DestinationRule(Resource):
    """networking.istio.io DestinationRule."""

    KIND: ClassVar[str] = "DestinationRule"

    spec: DestinationRuleSpec
