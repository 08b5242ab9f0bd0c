"""Port of ``pkg/config/validation/agent/validation.go`` (the parts VirtualService and
DestinationRule use): durations, ports, DNS names, retries, client TLS, locality load balancing.
"""

from __future__ import annotations

from chaosmesh_py.localmesh.apiserver.webhook import golang, names
from chaosmesh_py.localmesh.apiserver.webhook.golang import Err, Validation
from chaosmesh_py.localmesh.apiserver.webhook.proto import Message

MILLISECOND_NS = 1_000_000
_OUTBOUND_HOST_PREFIX = "outbound"
_OUTBOUND_HOST_NAME_FORMAT = "outbound_.<PORT>_._.<HOSTNAME>"

SUPPORTED_RETRY_ON_POLICIES = frozenset(
    {
        # x-envoy-retry-on
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "envoy-ratelimited",
        "http3-post-connect-failure",
        # x-envoy-retry-grpc-on
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)

_TOPOLOGY_LABELS = (
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
)


def validate_duration(duration_ns: int) -> Err:
    """``ValidateDuration``: at least 1ms, whole milliseconds."""
    if duration_ns < MILLISECOND_NS:
        return golang.error("duration must be greater than 1ms")
    if duration_ns % MILLISECOND_NS:
        return golang.error("only durations to ms precision are supported")
    return None


def validate_port(port: int) -> Err:
    if 1 <= port <= 65535:
        return None
    return golang.error(f"port number {port} must be in the range 1..65535")


def check_dns1123_preconditions(name: str) -> Err:
    if len(name.encode()) > 255:
        return golang.error(f"domain name {golang.quote(name)} too long (max 255)")
    if not name:
        return golang.error("empty domain name not allowed")
    return None


def validate_dns1123_labels(domain: str) -> Err:
    parts = domain.split(".")
    top_level_domain = parts[-1]
    if golang.atoi(top_level_domain) is not None:
        return golang.error(
            f"domain name {golang.quote(domain)} invalid "
            f"(top level domain {golang.quote(top_level_domain)} cannot be all-numeric)"
        )
    for index, label in enumerate(parts):
        if index == len(parts) - 1 and label == "":
            return None  # a trailing dot: an unambiguous name such as istio.io.
        if not names.is_dns1123_label(label):
            return golang.error(
                f"domain name {golang.quote(domain)} invalid (label {golang.quote(label)} invalid)"
            )
    return None


def validate_fqdn(fqdn: str) -> Err:
    return check_dns1123_preconditions(fqdn) or validate_dns1123_labels(fqdn)


def validate_wildcard_domain(domain: str) -> Err:
    """``ValidateWildcardDomain``: an FQDN whose first label may be a wildcard."""
    problem = check_dns1123_preconditions(domain)
    if problem is not None:
        return problem
    first, dot, rest = domain.partition(".")
    if not names.is_wildcard_dns1123_label(first):
        return golang.error(
            f"domain name {golang.quote(domain)} invalid (label {golang.quote(first)} invalid)"
        )
    return validate_dns1123_labels(rest) if dot else None


def validate_wildcard_domain_for_virtual_service_bound_to_gateway(sni: bool, domain: str) -> Err:
    problem = check_dns1123_preconditions(domain)
    if problem is not None:
        return problem
    if sni and domain.startswith(_OUTBOUND_HOST_PREFIX + "_"):
        parts = domain.split("_")
        if len(parts) < 4:
            return golang.error(
                f"domain name {domain} invalid, should follow '{_OUTBOUND_HOST_NAME_FORMAT}' format"
            )
        direction, port, hostname = parts[0], parts[1].strip("."), parts[3].strip(".")
        if direction != _OUTBOUND_HOST_PREFIX:
            return golang.error(
                f"domain name {golang.quote(domain)} invalid (label {golang.quote(direction)} "
                "invalid)"
            )
        for part, wanted in ((port, "0123456789"), (hostname, _LETTERS)):
            if not any(char in wanted for char in part):
                return golang.error(
                    f"domain name {golang.quote(domain)} invalid (label {golang.quote(part)} "
                    f"invalid). should follow {_OUTBOUND_HOST_NAME_FORMAT} format"
                )
        return None
    return validate_wildcard_domain(domain)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def validate_http_retry(retries: Message | None) -> Err:
    """``ValidateHTTPRetry``."""
    if retries is None:
        return None
    errs: Err = None
    attempts = retries.integer("attempts")
    if attempts < 0:
        errs = golang.multierror_append(errs, golang.error("attempts cannot be negative"))
    retry_on = retries.text("retryOn")
    if attempts == 0 and (
        retries.has("perTryTimeout") or retry_on != "" or retries.has("retryRemoteLocalities")
    ):
        errs = golang.append_errors(
            errs, golang.error("http retry policy configured when attempts are set to 0 (disabled)")
        )
    per_try_timeout = retries.duration("perTryTimeout")
    if per_try_timeout is not None:
        errs = golang.append_errors(errs, validate_duration(per_try_timeout))
    if retry_on != "":
        for policy in retry_on.split(","):
            code = golang.atoi(policy)
            has_text = code is not None and code in golang.HTTP_STATUS_TEXT_CODES
            if not has_text and policy not in SUPPORTED_RETRY_ON_POLICIES:
                errs = golang.append_errors(
                    errs, golang.error(f"{golang.quote(policy)} is not a valid retryOn policy")
                )
    backoff = retries.duration("backoff")
    if backoff is not None:
        errs = golang.append_errors(errs, validate_duration(backoff))
    return errs


def validate_tls(settings: Message | None) -> Err:
    """``ValidateTLS`` for a client TLS policy (the configmap:// credentialName form is not
    checked: the local mesh has no credentials to resolve)."""
    if settings is None:
        return None
    errs: Err = None
    mode = settings.text("mode") or "DISABLE"
    skip_verify = (settings.wrapper("insecureSkipVerify") or False) is True
    ca, credential = settings.text("caCertificates"), settings.text("credentialName")
    alt_names = settings.has("subjectAltNames")
    if skip_verify and mode == "SIMPLE" and (ca or credential or alt_names):
        errs = golang.append_errors(
            errs,
            golang.error(
                "cannot specify CaCertificates or CredentialName or SubjectAltNames when "
                "InsecureSkipVerify is set true"
            ),
        )
    if skip_verify and mode == "MUTUAL" and (ca or alt_names):
        errs = golang.append_errors(
            errs,
            golang.error(
                "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set "
                "true"
            ),
        )
    if mode in ("SIMPLE", "MUTUAL") and credential:
        files = ("clientCertificate", "caCertificates", "privateKey", "caCrl")
        if any(settings.text(field) for field in files):
            errs = golang.append_errors(
                errs,
                golang.error(
                    "cannot specify client certificates or CA certificate or CA CRL If "
                    "credentialName is set"
                ),
            )
        return errs
    if mode == "MUTUAL":
        if not settings.text("clientCertificate"):
            errs = golang.append_errors(
                errs, golang.error("client certificate required for mutual tls")
            )
        if not settings.text("privateKey"):
            errs = golang.append_errors(errs, golang.error("private key required for mutual tls"))
    return errs


def validate_locality_lb_setting(lb: Message | None, outlier: Message | None) -> Validation:
    """``ValidateLocalityLbSetting``."""
    if lb is None:
        return Validation()
    errs = Validation()
    distribute, failover = lb.messages("distribute"), lb.messages("failover")
    priorities = lb.texts("failoverPriority")
    if distribute and failover:
        return Validation(
            golang.error("can not simultaneously specify 'distribute' and 'failover'")
        )
    if failover and priorities:
        for label in priorities:
            if label in _TOPOLOGY_LABELS:
                return Validation(
                    golang.error(
                        "can not simultaneously set 'failover' and topology label "
                        f"'{label}' in 'failover_priority'"
                    )
                )
    sources = []
    for entry in distribute:
        locality = entry or Message({})
        sources.append(locality.text("from"))
        weights = locality.integer_map("to")
        for weight in weights.values():
            if not 0 < weight <= 100:
                message = "locality weight must be in range [1, 100]"
                return golang.append_validation(errs, golang.error(message))
        if sum(weights.values()) != 100:
            total = sum(weights.values())
            return golang.append_validation(
                errs, golang.error(f"total locality weight {total} != 100")
            )
        errs = golang.append_validation(errs, _validate_localities(list(weights)))
    errs = golang.append_validation(errs, _validate_localities(sources))
    return golang.append_validation(
        errs,
        *_failover_findings(
            failover,
            priorities,
            outlier,
            same_region="locality lb failover settings must specify different regions",
            not_a_region="locality lb failover only specify region",
            wildcard="locality lb failover region should not contain '*' wildcard",
        ),
    )


def validate_zone_aware_lb_setting(lb: Message | None, outlier: Message | None) -> Validation:
    """``ValidateZoneAwareLbSetting``."""
    if lb is None:
        return Validation()
    errs = Validation()
    priorities = lb.texts("failoverPriority")
    for label in priorities:
        if label in _TOPOLOGY_LABELS:
            errs = golang.append_validation(
                errs,
                golang.error(
                    f"'failover_priority' for zone aware lb must not use topology label '{label}'"
                    "; region- and zone-level routing are handled automatically"
                ),
            )
    return golang.append_validation(
        errs,
        *_failover_findings(
            lb.messages("failover"),
            priorities,
            outlier,
            same_region="zone aware lb failover settings must specify different regions",
            not_a_region="zone aware lb failover only specifies region; zone and subzone "
            "failover are handled automatically",
            wildcard="zone aware lb failover region should not contain '*' wildcard",
        ),
    )


def _failover_findings(
    failover: list[Message | None],
    priorities: list[str],
    outlier: Message | None,
    *,
    same_region: str,
    not_a_region: str,
    wildcard: str,
) -> list[Err | Validation]:
    """Failover needs outlier detection (a warning), and each failover goes from one region to
    another (the wording differs per load balancer)."""
    found: list[Err | Validation] = []
    if (failover or priorities) and outlier is None:
        found.append(golang.warning("outlier detection policy must be provided for failover"))
    for entry in failover:
        item = entry or Message({})
        source, target = item.text("from"), item.text("to")
        if source == target:
            found.append(golang.error(same_region))
        if "/" in source or "/" in target:
            found.append(golang.error(not_a_region))
        if "*" in source or "*" in target:
            found.append(golang.error(wildcard))
    return found


def _validate_localities(localities: list[str]) -> Err:
    """``validateLocalities``: at most one trailing '*', no overlapping region/zone/subzone."""
    seen: dict[str, dict[str, dict[str, bool]]] = {}
    for locality in localities:
        overlap = golang.error(f"locality {locality} overlap with previous specified ones")
        stars = locality.count("*")
        if stars and (stars > 1 or not locality.endswith("*")):
            return golang.error(
                f"locality {locality} wildcard '*' number can not exceed 1 and must be in the end"
            )
        if "*" in seen:
            return overlap
        items = locality.split("/", 2)
        if any(item == "" for item in items):
            return golang.error(
                f"locality {locality} must not contain empty region/zone/subzone info"
            )
        region, zone, subzone = [*items, "", ""][:3]
        depth = len(items) - 1
        if depth == 0:
            if region in seen:
                return overlap
            seen[region] = {"*": {"*": True}}
        elif depth == 1:
            if region in seen:
                if "*" in seen[region] or zone in seen[region]:
                    return overlap
                seen[region][zone] = {"*": True}
            else:
                seen[region] = {zone: {"*": True}}
        elif region in seen:
            if "*" in seen[region]:
                return overlap
            if zone in seen[region]:
                if seen[region][zone].get("*") or seen[region][zone].get(subzone):
                    return overlap
                seen[region][zone][subzone] = True
            else:
                seen[region][zone] = {subzone: True}
        else:
            seen[region] = {zone: {subzone: True}}
    return None


def validate_ip_subnet(subnet: str) -> Err:
    """``ValidateIPSubnet``: CIDR (one '/') or a plain address."""
    if subnet.count("/") == 1:
        return (
            None
            if golang.is_ip_prefix(subnet)
            else golang.error(f"{subnet} is not a valid CIDR block")
        )
    return None if golang.is_ip_address(subnet) else golang.error(f"{subnet} is not a valid IP")
