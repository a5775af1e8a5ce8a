"""MeshConfig: the mesh-wide settings Istio reads from ConfigMap `istio` (key `mesh`) in istiod's
namespace, and `istioctl analyze --meshConfigFile` from a file.

The model follows istio.io/api mesh/v1alpha1/config.proto; defaults are pilot's
DefaultMeshConfig (pkg/config/mesh/mesh.go): a field left out keeps its default, `defaultConfig`
(ProxyConfig) is merged over the default proxy config, and `extensionProviders` are merged by
name over the built-in ones (prometheus, stackdriver, envoy). What Remora acts on is compiled
into each proxy's snapshot (remora.mesh.snapshot.MeshSettings); what it does not is reported
(`findings`, RMR0001) with the field path, as every other unenforced field is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, model_validator

from remora.api.base import Spec, fail
from remora.api.errors import ConfigError, ConfigIssue, Source
from remora.api.networking.http_route import HTTPRetry
from remora.api.networking.shared import MsDuration
from remora.api.validation_messages import document_issues
from remora.api.yamlsource import read_documents

if TYPE_CHECKING:
    from remora.api.kube.core import ConfigMap
    from remora.api.resource import Resource

MESH_NAMESPACE = "istio-system"  # istiod's namespace: where it reads ConfigMap `istio`
MESH_CONFIGMAP = "istio"
MESH_KEY = "mesh"

PathNormalizationType = Literal[
    "DEFAULT", "NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"]


class OutboundTrafficPolicy(Spec):
    mode: Literal["REGISTRY_ONLY", "ALLOW_ANY"] = "ALLOW_ANY"


class InboundTrafficPolicy(Spec):
    mode: Literal["PASSTHROUGH", "LOCALHOST"] = "PASSTHROUGH"


class ProxyPathNormalization(Spec):
    normalization: PathNormalizationType = "DEFAULT"


class DefaultProviders(Spec):
    tracing: list[str] = Field(default_factory=list)
    metrics: list[str] = Field(default_factory=list)
    access_logging: list[str] = Field(default_factory=list)


PROVIDER_KINDS = (
    "envoyExtAuthzHttp", "envoyExtAuthzGrpc", "zipkin", "lightstep", "datadog", "stackdriver",
    "opencensus", "skywalking", "opentelemetry", "prometheus", "envoyFileAccessLog",
    "envoyHttpAls", "envoyTcpAls", "envoyOtelAls",
)
USED_PROVIDERS = ("prometheus", "envoyFileAccessLog")  # the provider kinds Remora acts on


class ExtensionProvider(Spec):
    """A named provider: exactly one provider kind, its settings as written (only
    `envoyFileAccessLog` is read by Remora, see `file_access_log`)."""

    model_config = Spec.model_config | {"extra": "allow"}

    name: str

    @model_validator(mode="after")
    def _one_kind(self) -> ExtensionProvider:
        extra = dict(self.__pydantic_extra__ or {})
        unknown = [key for key in extra if key not in PROVIDER_KINDS]
        if unknown:
            fail(f"unknown field {unknown[0]!r} (a provider is one of: "
                 f"{', '.join(PROVIDER_KINDS)})", unknown[0])
        if len(extra) != 1:
            fail("exactly one provider kind must be set" if extra else "a provider kind is "
                 "required (one of: " + ", ".join(PROVIDER_KINDS) + ")")
        settings = next(iter(extra.values()))
        if settings is not None and not isinstance(settings, Mapping):
            fail("must be a mapping", next(iter(extra)))
        return self

    @property
    def kind(self) -> str:
        return next(iter(self.__pydantic_extra__ or {"": None}))

    @property
    def settings(self) -> Mapping[str, Any]:
        value = (self.__pydantic_extra__ or {}).get(self.kind)
        return value if isinstance(value, Mapping) else {}


class MeshConfig(Spec):
    """Istio's MeshConfig; `None`/empty is "not set" (the default applies, see the properties)."""

    proxy_listen_port: int | None = None
    proxy_inbound_listen_port: int | None = None
    proxy_http_port: int | None = None
    connect_timeout: MsDuration | None = None
    protocol_detection_timeout: Any = None
    tcp_keepalive: dict[str, Any] | None = None
    ingress_class: str | None = None
    ingress_service: str | None = None
    ingress_controller_mode: Literal["UNSPECIFIED", "OFF", "DEFAULT", "STRICT"] | None = None
    ingress_selector: str | None = None
    enable_tracing: bool | None = None
    access_log_file: str | None = None
    access_log_format: str | None = None
    access_log_encoding: Literal["TEXT", "JSON"] | None = None
    enable_envoy_access_log_service: bool | None = None
    disable_envoy_listener_log: bool | None = None
    default_config: dict[str, Any] | None = None
    outbound_traffic_policy: OutboundTrafficPolicy | None = None
    inbound_traffic_policy: InboundTrafficPolicy | None = None
    config_sources: list[dict[str, Any]] = Field(default_factory=list)
    enable_auto_mtls: bool | None = None
    trust_domain: str | None = None
    trust_domain_aliases: list[str] = Field(default_factory=list)
    ca_certificates: list[dict[str, Any]] = Field(default_factory=list)
    default_service_export_to: list[str] = Field(default_factory=list)
    default_virtual_service_export_to: list[str] = Field(default_factory=list)
    default_destination_rule_export_to: list[str] = Field(default_factory=list)
    root_namespace: str | None = None
    locality_lb_setting: dict[str, Any] | None = None
    dns_refresh_rate: Any = None
    h2_upgrade_policy: Literal["DO_NOT_UPGRADE", "UPGRADE"] | None = None
    inbound_cluster_stat_name: str | None = None
    outbound_cluster_stat_name: str | None = None
    certificates: list[dict[str, Any]] = Field(default_factory=list)
    service_settings: list[dict[str, Any]] = Field(default_factory=list)
    enable_prometheus_merge: bool | None = None
    verify_certificate_at_client: bool | None = None
    ca: dict[str, Any] | None = None
    extension_providers: list[ExtensionProvider] = Field(default_factory=list)
    default_providers: DefaultProviders | None = None
    discovery_selectors: list[dict[str, Any]] = Field(default_factory=list)
    path_normalization: ProxyPathNormalization | None = None
    default_http_retry_policy: HTTPRetry | None = None
    mesh_mtls: dict[str, Any] | None = Field(default=None, alias="meshMTLS")
    tls_defaults: dict[str, Any] | None = None
    compliance_policy: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> MeshConfig:
        # agent.ValidateMeshConfig: the checks that concern what Remora reads
        if self.root_namespace is not None and not self.root_namespace:
            fail("must not be empty", "rootNamespace")
        names = [provider.name for provider in self.extension_providers]
        for position, name in enumerate(names):
            if not name:
                fail("empty extension provider name", "extensionProviders", position, "name")
            if names.index(name) != position:
                fail(f"duplicate extension provider name {name!r}", "extensionProviders",
                     position, "name")
        return self

    # Effective values: what is set, else Istio's default.

    @property
    def root(self) -> str:
        return self.root_namespace or MESH_NAMESPACE

    @property
    def domain(self) -> str:
        return self.trust_domain or "cluster.local"

    @property
    def connect_timeout_seconds(self) -> float:
        return self.connect_timeout if self.connect_timeout is not None else 10.0

    @property
    def outbound_mode(self) -> Literal["REGISTRY_ONLY", "ALLOW_ANY"]:
        policy = self.outbound_traffic_policy
        return policy.mode if policy is not None else "ALLOW_ANY"

    @property
    def default_retries(self) -> HTTPRetry | None:
        """defaultHttpRetryPolicy for routes that set no retries (None: Istio's built-in
        policy); "all settings in the retry policy except perTryTimeout" apply globally."""
        policy = self.default_http_retry_policy
        if policy is None or policy.per_try_timeout is None:
            return policy
        return policy.model_copy(update={"per_try_timeout": None})

    @property
    def normalization(self) -> Literal["NONE", "BASE", "MERGE_SLASHES",
                                       "DECODE_AND_MERGE_SLASHES"]:
        value = self.path_normalization.normalization if self.path_normalization else "DEFAULT"
        return "BASE" if value == "DEFAULT" else value  # DEFAULT: "Currently, this is BASE"

    def provider(self, name: str) -> ExtensionProvider | None:
        """A provider by name: the user's, else a built-in one (DefaultMeshConfig)."""
        for provider in self.extension_providers:
            if provider.name == name:
                return provider
        return BUILTIN_PROVIDERS.get(name)

    def file_access_log(self) -> tuple[str, str, Literal["TEXT", "JSON"]]:
        """(path, format, encoding) of the access log; path "" when there is none.

        accessLogFile turns on Envoy's file access log (accessLogFormat, accessLogEncoding);
        otherwise defaultProviders.accessLogging may name an envoyFileAccessLog provider, whose
        logFormat.text / logFormat.labels give the format (labels: JSON)."""
        if self.access_log_file:
            return self.access_log_file, self.access_log_format or "", \
                self.access_log_encoding or "TEXT"
        for name in self.default_providers.access_logging if self.default_providers else ():
            provider = self.provider(name)
            if provider is not None and provider.kind == "envoyFileAccessLog":
                settings = provider.settings
                log_format = settings.get("logFormat") or {}
                if isinstance(log_format, Mapping) and log_format.get("labels"):
                    return str(settings.get("path") or "/dev/stdout"), "", "JSON"
                text = log_format.get("text") if isinstance(log_format, Mapping) else None
                return str(settings.get("path") or "/dev/stdout"), str(text or ""), "TEXT"
        return "", "", "TEXT"


BUILTIN_PROVIDERS: Mapping[str, ExtensionProvider] = {
    provider.name: provider for provider in (
        ExtensionProvider.model_validate({"name": "prometheus", "prometheus": {}}),
        ExtensionProvider.model_validate({"name": "stackdriver", "stackdriver": {}}),
        ExtensionProvider.model_validate(
            {"name": "envoy", "envoyFileAccessLog": {"path": "/dev/stdout"}}),
    )
}

DEFAULT_MESH_CONFIG = MeshConfig()


def parse_mesh_config(text: str, *, file: str = "-", first_line: int = 1,
                      subject: str = "MeshConfig", prefix: str = "") -> MeshConfig:
    """MeshConfig from YAML text; ConfigError naming file:line and the field path.

    `first_line` is the file line of the text's first line (a ConfigMap's `mesh: |` block
    starts on the line after its key); `prefix` goes before each field path (`data.mesh`)."""
    try:
        documents = list(read_documents(text, file))
    except ConfigError as exc:
        raise ConfigError([_shift(issue, first_line, subject, prefix) for issue in exc.issues]) \
            from None
    if not documents:
        return DEFAULT_MESH_CONFIG
    document = documents[0]
    if not isinstance(document.data, dict):
        raise ConfigError([ConfigIssue("MeshConfig must be a mapping",
                                       source=Source(file, first_line), subject=subject,
                                       path=prefix)])
    try:
        return MeshConfig.model_validate(document.data)
    except ValidationError as exc:
        raise ConfigError(document_issues(exc, document, subject=subject, prefix=prefix,
                                          first_line=first_line)) from None


def _shift(issue: ConfigIssue, first_line: int, subject: str, prefix: str) -> ConfigIssue:
    source = issue.source
    if source is not None:
        source = Source(source.file, source.line + first_line - 1)
    return ConfigIssue(issue.message, source=source, subject=subject, path=prefix)


def is_mesh_configmap(resource: Resource) -> bool:
    """ConfigMap `istio` in istiod's namespace: the one Istio reads MeshConfig from."""
    return (resource.kind == "ConfigMap" and resource.name == MESH_CONFIGMAP
            and resource.namespace == MESH_NAMESPACE)


def mesh_config_of(resources: Sequence[Resource]) -> MeshConfig:
    """The MeshConfig the resources carry (ConfigMap istio-system/istio, key `mesh`), else
    Istio's defaults. A mesh config that does not parse was refused when it was loaded
    (`check_mesh_configmap`); here it falls back to the defaults."""
    for resource in resources:
        if is_mesh_configmap(resource):
            try:
                return configmap_mesh_config(resource)  # type: ignore[arg-type]
            except ConfigError:
                return DEFAULT_MESH_CONFIG
    return DEFAULT_MESH_CONFIG


def configmap_mesh_config(configmap: ConfigMap) -> MeshConfig:
    """The MeshConfig in a ConfigMap's `mesh` key; ConfigError with file:line and path."""
    text = configmap.data.get(MESH_KEY)
    if text is None:
        return DEFAULT_MESH_CONFIG
    source = configmap.source_of("data", MESH_KEY)
    file = source.file if source is not None else "-"
    key_line = source.line if source is not None else 0
    # a block scalar (`mesh: |`) starts on the line after its key; a flow value on the key's
    first_line = key_line + 1 if key_line and "\n" in text else max(key_line, 1)
    return parse_mesh_config(text, file=file, first_line=first_line, subject=configmap.subject,
                             prefix=f"data.{MESH_KEY}")
