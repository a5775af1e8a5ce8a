"""Every YAML example in the seed tutorials that is a served kind loads and validates cleanly.

Blocks come from tests/seedblocks.py. A block that is not whole Kubernetes/Istio YAML is listed in
SKIPPED with its reason; the test fails both when an unlisted block does not load cleanly and when
a listed one does (the listing is stale), so no seed block is ever skipped silently.

Some skipped blocks are whole objects mangled in a mechanical way (bullets for dashes, indentation
lost); REPAIRED names the repair, and the repaired text must then load cleanly. INVALID holds the
blocks that Istio or Kubernetes themselves would reject, with the issues Remora must report.
"""

from __future__ import annotations

from collections import Counter

import pytest

from remora.api.loader import LoadResult, load_text
from remora.api.resource import split_api_version
from tests.seedblocks import REPAIRS, SEEDS_DIR, Block, all_blocks, seed_files

S000 = "000_8899366a61007aea.txt"
S001 = "001_e0f7ac26e7bf4c30.txt"
S002 = "002_03fd0d57e6368be1.txt"
S003 = "003_75b092bdea1b8ee4.txt"
S004 = "004_025b8d0e91e55d5b.txt"

COMPOSE = "Docker Compose file, not a Kubernetes object"
HELM_TEMPLATE = "Helm template ({{ }} directives); not YAML until rendered"
HELM_CHART = "Helm Chart.yaml (chart metadata), not a Kubernetes object"
HELM_VALUES = "Helm values file, not a Kubernetes object"
APP_CONFIG = "application config (Spring/Dubbo), not a Kubernetes object"
OUTLINE = "prose outline written as YAML (Chinese keys), not a Kubernetes object"
FRAGMENT = "fragment of an object (no apiVersion/kind), shown for one field"
BULLETS = "pseudo-YAML: list dashes printed as bullets (•, ◦, ▪)"
MISSING = "required field is missing"
FLAT = "indentation lost in the tutorial text (every line flush left)"
FLAT_UNMODELLED = (
    "indentation lost (every line flush left), so keys repeat in one mapping, which YAML "
    "decoding refuses; a kind Remora does not model (NetworkPolicy, Role, Pod), so not restored"
)

SKIPPED: dict[tuple[str, int], str] = {
    (S000, 116): COMPOSE,
    (S000, 300): APP_CONFIG,
    (S000, 361): HELM_CHART,
    (S000, 370): HELM_VALUES,
    (S000, 402): HELM_TEMPLATE,
    (S000, 588): APP_CONFIG,
    (S000, 739): FRAGMENT + " (a pod spec's env)",
    (S000, 753): FRAGMENT + " (a pod spec's probes)",
    (S000, 852): APP_CONFIG,
    (S001, 62): FLAT,
    (S001, 124): FLAT,
    (S001, 165): FLAT,
    (S001, 197): FLAT,
    (S001, 230): FLAT,
    (S001, 256): FLAT,
    (S001, 323): FLAT,
    (S001, 399): FLAT,
    (S001, 426): FLAT,
    (S001, 448): FLAT,
    (S001, 472): FLAT_UNMODELLED,
    (S001, 493): FLAT_UNMODELLED,
    (S001, 518): FLAT,
    (S001, 575): FLAT_UNMODELLED,
    (S002, 108): FRAGMENT + " (a container's probes)",
    (S002, 149): BULLETS,
    (S002, 243): FRAGMENT + " (pod annotations)",
    (S002, 300): BULLETS,
    (S002, 422): FRAGMENT + " (container resources and annotations)",
    (S002, 439): FRAGMENT + " (pod affinity), with bullets",
    (S002, 460): BULLETS,
    (S002, 482): BULLETS,
    (S002, 506): "Prometheus scrape config with bullets, not a Kubernetes object",
    (S002, 590): "Java properties file labelled yaml",
    (S002, 598): BULLETS,
    (S002, 645): BULLETS,
    (S002, 739): BULLETS,
    (S002, 786): BULLETS,
    (S003, 204): COMPOSE,
    (S003, 550): HELM_CHART,
    (S003, 560): HELM_VALUES,
    (S003, 598): HELM_TEMPLATE,
    (S003, 944): FRAGMENT + " (container resources)",
    (S004, 133): OUTLINE,
    (S004, 221): OUTLINE,
    (S004, 252): OUTLINE,
    (S004, 352): OUTLINE,
    (S004, 398): OUTLINE,
    (S004, 415): OUTLINE,
    (S004, 460): OUTLINE,
    (S004, 981): OUTLINE,
    (S004, 1049): OUTLINE,
    (S004, 1152): OUTLINE,
    (S004, 1447): OUTLINE,
    (S004, 1601): "GitLab CI pipeline, not a Kubernetes object",
    (S004, 1652): OUTLINE,
    (S004, 1687): OUTLINE,
    (S004, 1716): HELM_VALUES + " (Harbor chart, in a here-document)",
    (S004, 1851): OUTLINE,
    (S004, 1983): OUTLINE,
    (S004, 2025): HELM_CHART,
    (S004, 2050): HELM_VALUES,
    (S004, 2183): HELM_TEMPLATE,
    (S004, 2292): HELM_TEMPLATE,
    (S004, 2316): HELM_TEMPLATE + " (_helpers.tpl)",
    (S004, 2420): HELM_VALUES + " (values-dev.yaml)",
    (S004, 2467): HELM_VALUES + " (values-prod.yaml)",
    (S004, 2829): OUTLINE,
    (S004, 2972): OUTLINE,
    (S004, 3046): OUTLINE,
    (S004, 3113): OUTLINE,
    (S004, 3181): OUTLINE,
    (S004, 3892): "shell script labelled yaml; its here-documents are extracted on their own",
    (S004, 4588): OUTLINE,
    (S004, 4891): OUTLINE,
    (S004, 5384): OUTLINE,
}

REPAIRED: dict[tuple[str, int], str] = {
    **{key: "bullets" for key, reason in SKIPPED.items() if reason == BULLETS},
    **{key: "indent" for key, reason in SKIPPED.items() if reason == FLAT},
}

INVALID: dict[tuple[str, int], list[str]] = {
    # Kubernetes rejects these too: apps/v1 requires spec.selector, matching the template labels.
    # Most are abbreviated in the tutorial; 003:735's template has no labels at all.
    (S001, 448): [f"{S001}:453: Deployment default/optimized-service: spec.selector: " + MISSING],
    (S002, 645): [f"{S002}:649: StatefulSet default/seata-server: spec.selector: " + MISSING],
    (S003, 735): [f"{S003}:750: StatefulSet default/nacos: spec.template.metadata.labels: "
                  "`selector` does not match template `labels`"],
    (S003, 830): [f"{S003}:847: StatefulSet default/nacos: spec.selector: " + MISSING],
    (S004, 2651): [f"{S004}:2655: Deployment default/user-service: spec.selector: " + MISSING],
    (S004, 2785): [f"{S004}:2806: Deployment default/user-service: spec.selector: " + MISSING],
}  # fmt: skip

# Objects in Istio's API groups that Remora does not model: real kinds Remora does not serve, and
# seed mistakes (PeerAuthentication belongs to security.istio.io, not networking.istio.io). The
# seeds' two EnvoyFilters (gzip, cache) are modelled: they load like any resource.
ISTIO_GROUPS = ("networking.istio.io", "security.istio.io", "telemetry.istio.io")
UNSERVED_ISTIO = {
    ("networking.istio.io/v1alpha3", "PeerAuthentication"): 1,
}

pytestmark = pytest.mark.skipif(not seed_files(), reason=f"no seeds in {SEEDS_DIR}")

BLOCKS = all_blocks()


def key(block: Block) -> tuple[str, int]:
    return block.seed, block.line


def text_of(block: Block) -> str:
    """The block's text as checked: repaired where REPAIRED says so, padded to seed lines."""
    repair = REPAIRED.get(key(block))
    text = REPAIRS[repair](block) if repair else block.text
    return "\n" * (block.line - 1) + text


def clean(result: LoadResult) -> bool:
    return not result.issues and bool(result.resources or result.unsupported)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_seed_block_loads_and_validates(block: Block) -> None:
    where = key(block)
    if where in SKIPPED:
        raw = load_text(block.padded, block.seed)
        assert not clean(raw), f"{block.id} loads cleanly: remove it from SKIPPED"
        if where not in REPAIRED:
            return
    result = load_text(text_of(block), block.seed)
    if where in INVALID:
        assert [str(issue) for issue in result.issues] == INVALID[where]
        return
    assert [str(issue) for issue in result.issues] == []
    assert result.resources or result.unsupported, f"{block.id} holds no object"


def test_every_listed_block_exists() -> None:
    found = {key(block) for block in BLOCKS}
    assert set(SKIPPED) - found == set()
    assert set(INVALID) - found == set()


def test_every_api_version_line_is_in_an_extracted_block() -> None:
    """Guards the extractor: no Kubernetes object in the seeds escapes the test."""
    covered = {(b.seed, b.line + i) for b in BLOCKS for i in range(b.text.count("\n") + 1)}
    missed = []
    for path in seed_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
            if line.lstrip().startswith("apiVersion:") and (path.name, number) not in covered:
                missed.append(f"{path.name}:{number}: {line.strip()}")
    # Lines in kubectl/shell blocks that only name an API version inside a non-YAML command.
    assert missed == []


def test_istio_kinds_that_are_not_served_are_the_known_ones() -> None:
    unserved: Counter[tuple[str, str]] = Counter()
    for block in BLOCKS:
        for obj in load_text(text_of(block), block.seed).unsupported:
            if split_api_version(obj.api_version)[0] in ISTIO_GROUPS:
                unserved[(obj.api_version, obj.kind)] += 1
    assert dict(unserved) == UNSERVED_ISTIO


def test_seeds_cover_the_main_kinds() -> None:
    """The extraction finds the kinds the tutorials teach (a smoke test of the extractor)."""
    kinds: Counter[str] = Counter()
    for block in BLOCKS:
        if key(block) not in INVALID:
            kinds.update(r.kind for r in load_text(text_of(block), block.seed).resources)
    expected = {"VirtualService", "DestinationRule", "Gateway", "ServiceEntry",
                "PeerAuthentication", "AuthorizationPolicy", "RequestAuthentication", "Telemetry",
                "Deployment", "StatefulSet", "Service", "ConfigMap", "Secret", "Namespace",
                "HorizontalPodAutoscaler", "ServiceAccount"}  # fmt: skip
    assert expected - set(kinds) == set()
