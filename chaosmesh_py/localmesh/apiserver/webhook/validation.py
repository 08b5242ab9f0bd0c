"""Port of the helpers in ``pkg/config/validation/validation.go`` that VirtualService and
DestinationRule validation call: header names and values, StringMatch and regexes, faults,
destinations and weights, CORS, redirect, direct response, mirrors, rewrite, gateway names,
exportTo and workload selectors. Names, order of checks and messages follow the Go functions.

Go's ``regexp`` (which istiod compiles regexes with) is RE2's syntax, so RE2 itself (the
``re2`` module) parses here, with the differences Go has: ``\\C`` is refused, RE2's own memory
bound ("pattern too large") is not Go's, and error texts are reworded into Go's.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable

import re2

from chaosmesh_py.localmesh.apiserver.webhook import agent, golang, names
from chaosmesh_py.localmesh.apiserver.webhook.golang import Err, Validation
from chaosmesh_py.localmesh.apiserver.webhook.header_value import validate_header_value
from chaosmesh_py.localmesh.apiserver.webhook.proto import DecodeError, Message

KB = 1024
MB = 1024 * KB
_TCHARS = "!#$%&'*+-.^_`|~" + "A-Z" + "a-z" + "0-9"
_VALID_HEADER_NAME = re.compile("[" + _TCHARS + "]+")
_HTTP_HEADER_VALUE = re.compile("[^\u0000-\u0008\u000a-\u001f\u007f]*")
_PSEUDO_HEADERS = frozenset({":method", ":scheme", ":authority", ":path", ":status"})
_SUPPORTED_CORS_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*"}
)
# pkg/util/grpc SupportedGRPCStatus: the names of google.golang.org/grpc/codes, by code.
_GRPC_STATUS_CODES = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
# RE2's error code texts, as Go's regexp/syntax words the same errors.
_GO_REGEXP_ERRORS = {
    "invalid escape sequence": "invalid escape sequence",
    "invalid character class": "invalid character class",
    "invalid character class range": "invalid character class range",
    "missing ]": "missing closing ]",
    "missing )": "missing closing )",
    "unexpected )": "unexpected )",
    "trailing \\": "trailing backslash at end of expression",
    "no argument for repetition operator": "missing argument to repetition operator",
    "invalid repetition size": "invalid repeat count",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "invalid UTF-8": "invalid UTF-8",
    "invalid named capture group": "invalid named capture",
}
# Either an escape (``\x``) or a ``\Q...\E`` literal run, scanned left to right.
_REPETITION_ERRORS = ("bad repetition operator", "invalid repetition size")
_REPEAT_COUNT = re.compile(r"\{([0-9]+)(?:,([0-9]*))?\}")
_ESCAPES = re.compile(r"\\Q.*?(?:\\E|\Z)|\\.", re.DOTALL)


def _int32(value: int) -> int:
    """Go's int32 conversion and arithmetic (two's complement wrap)."""
    return (value + 2**31) % 2**32 - 2**31


# -- header names and values -----------------------------------------------------------------


def validate_http_header_name_or_jwt_claim_route(name: str) -> Err:
    if name == "":
        return golang.error("header name cannot be empty")
    if names.is_jwt_routing_claim(name) or name in _PSEUDO_HEADERS:
        return None
    if not _VALID_HEADER_NAME.fullmatch(name):
        return golang.error(f"header name {name} is not a valid header name")
    return None


def validate_cors_http_header_name(name: str) -> Err:
    if name == "":
        return golang.error("header name cannot be empty")
    if name == "*" or _VALID_HEADER_NAME.fullmatch(name):
        return None
    return golang.error(f"header name {name} is not a valid header name")


def is_internal_header(key: str) -> bool:
    return key.startswith(":") or key.lower() == "host"


def is_authority_header(key: str) -> bool:
    return key.lower() in (":authority", "host")


def validate_http_header_with_authority_operation_name(name: str) -> Err:
    if name == "":
        return golang.error("header name cannot be empty")
    if is_internal_header(name) and not is_authority_header(name):
        return golang.error(f'invalid header {golang.quote(name)}: header cannot have ":" prefix')
    return None


def validate_http_header_operation_name(name: str) -> Err:
    if name == "":
        return golang.error("header name cannot be empty")
    if name.lower() == "host":
        return golang.error(f"invalid header {golang.quote(name)}: cannot set Host header")
    if is_internal_header(name):
        return golang.error(f'invalid header {golang.quote(name)}: header cannot have ":" prefix')
    return None


def validate_http_header_value(value: str) -> Err:
    if not _HTTP_HEADER_VALUE.fullmatch(value):
        return golang.error(f"header value configuration {value} is invalid")
    problem = validate_header_value(value)
    if problem is not None:
        return golang.error(f"header value configuration: {problem}")
    return None


def header_operation_errors(headers: Message | None) -> list[Err]:
    """The checks of a ``Headers`` block (route or destination level), in Go's order."""
    request = headers.message("request") if headers else None
    response = headers.message("response") if headers else None
    found: list[Err] = []
    for name, value in _operations(request):
        found += [validate_http_header_with_authority_operation_name(name)]
        found += [validate_http_header_value(value)]
    found += [validate_http_header_operation_name(name) for name in _removals(request)]
    for name, value in _operations(response):
        found += [validate_http_header_operation_name(name), validate_http_header_value(value)]
    found += [validate_http_header_operation_name(name) for name in _removals(response)]
    return found


def _operations(operations: Message | None) -> list[tuple[str, str]]:
    """The ``add`` then the ``set`` entries of a HeaderOperations."""
    if operations is None:
        return []
    return [*operations.text_map("add").items(), *operations.text_map("set").items()]


def _removals(operations: Message | None) -> list[str]:
    return operations.texts("remove") if operations else []


# -- numbers ---------------------------------------------------------------------------------


def validate_weight(weight: int) -> Err:
    return golang.error(f"weight {weight} < 0") if weight < 0 else None


def validate_percent(value: int) -> Err:
    if 0 <= value <= 100:
        return None
    return golang.error(f"percentage {value} is not in range 0..100")


def validate_percentage(percentage: Message | None) -> Err:
    if percentage is None:
        return None
    value = percentage.number("value")
    if value < 0.0 or value > 100.0 or 0.0 < value < 0.0001:
        return golang.error(
            f"percentage {golang.float_v(value)} is neither 0.0, nor in range [0.0001, 100.0]"
        )
    return None


# -- StringMatch and regexes -----------------------------------------------------------------

MATCH_TYPES = ("exact", "prefix", "regex")


def validate_string_match(match: Message | None, where: str) -> Err:
    kind = match.oneof(*MATCH_TYPES) if match else None
    if kind == "prefix" and match and match.text("prefix") == "":
        return golang.error(f"{golang.quote(where)}: prefix string match should not be empty")
    if kind == "regex":
        return validate_string_match_regexp(match, where)
    return None


def validate_string_match_regexp(match: Message | None, where: str) -> Err:
    if match is None or match.oneof(*MATCH_TYPES) != "regex":
        return None
    regex = match.text("regex")
    if regex == "":
        return golang.error(f"{golang.quote(where)}: regex string match should not be empty")
    return validate_string_regexp(regex, where)


def validate_string_regexp(regex: str, where: str) -> Err:
    # Istio approximates Envoy's RE2 program size by the length, and raises Envoy's limit.
    if len(regex.encode(errors="surrogatepass")) > 1024:
        return golang.error(
            f"{golang.quote(where)}: regex is too large, max length allowed is 1024"
        )
    problem = go_regexp_compile_error(regex)
    if problem is None:
        return None
    return golang.error(
        f"{golang.quote(where)}: {problem}; Istio uses RE2 style regex-based match "
        "(https://github.com/google/re2/wiki/Syntax)"
    )


def go_regexp_compile_error(regex: str) -> str | None:
    """What ``regexp.Compile(regex)`` answers in Go, or None if it compiles.

    Go parses left to right and reports the first error, which is ``\\C`` when it comes before
    anything RE2 refuses, that is when the text before it is fine but for a group or class
    left open (which Go only reports at the end)."""
    problem = _re2_error(regex)
    if problem is not None and problem[0].startswith("pattern too large"):
        problem = None  # RE2's memory budget, which Go does not have: the syntax is fine
    any_byte = next((e.start() for e in _ESCAPES.finditer(regex) if e.group() == "\\C"), None)
    if any_byte is not None and problem is not None:
        before = _re2_error(regex[:any_byte])
        if before is not None and before[0] not in ("missing )", "missing ]"):
            any_byte = None  # an error before the escape: Go stops there
    if any_byte is not None:
        return "error parsing regexp: invalid escape sequence: `\\C`"
    if problem is None:
        return None
    code, argument = problem
    too_many = [
        count.group()
        for count in _REPEAT_COUNT.finditer(argument)
        if max(int(bound or 0) for bound in count.groups()) > 1000
    ]
    if code in _REPETITION_ERRORS and too_many:
        # Go checks the count of a repetition before whether it follows another one.
        return f"error parsing regexp: invalid repeat count: `{too_many[0]}`"
    return f"error parsing regexp: {_GO_REGEXP_ERRORS.get(code, code)}: `{argument}`"


def _re2_error(regex: str) -> tuple[str, str] | None:
    """RE2's refusal of ``regex`` as (error code text, the part it points at), or None."""
    try:
        re2.compile(regex, _RE2_OPTIONS)
    except UnicodeEncodeError:  # a lone surrogate: not UTF-8
        return "invalid UTF-8", regex
    except re2.error as failure:
        text = failure.args[0]
        text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        code, _, argument = text.partition(": ")
        return code, argument
    return None


# -- gateways and destinations ---------------------------------------------------------------


def validate_gateway_names(gateway_names: Iterable[str], gateway_semantics: bool) -> Validation:
    errs = Validation()
    for name in gateway_names:
        namespace, slash, gateway = name.partition("/")
        if not slash:
            if "." in name:
                parts = name.split(".")
                recommended = f"{parts[1]}/{parts[0]}"
                errs = golang.append_validation(
                    errs,
                    golang.warning(
                        f"using legacy gatewayName format {golang.quote(name)}; prefer the "
                        f"<namespace>/<name> format: {golang.quote(recommended)}"
                    ),
                )
            return golang.append_validation(errs, agent.validate_fqdn(name))
        if not namespace or not gateway:
            errs = golang.append_validation(
                errs, golang.error("config namespace and gateway name cannot be empty")
            )
        if not names.is_dns1123_label(namespace):
            errs = golang.append_validation(
                errs, golang.error(f"invalid value for namespace: {golang.quote(namespace)}")
            )
        if not names.is_dns1123_label(gateway) and not gateway_semantics:
            errs = golang.append_validation(
                errs, golang.error(f"invalid value for gateway name: {golang.quote(gateway)}")
            )
    return errs


def validate_http_route_destinations(weights: list[Message | None], gateway_semantics: bool) -> Err:
    return _validate_route_destinations(weights, gateway_semantics, with_headers=True)


def validate_route_destinations(weights: list[Message | None], gateway_semantics: bool) -> Err:
    """For TCP and TLS routes: the same, without header manipulation."""
    return _validate_route_destinations(weights, gateway_semantics, with_headers=False)


def _validate_route_destinations(
    weights: list[Message | None], gateway_semantics: bool, *, with_headers: bool
) -> Err:
    errs: Err = None
    total_weight = 0
    for weight in weights:
        if weight is None:
            errs = golang.multierror_append(errs, golang.error("weight may not be nil"))
            continue
        if not weight.has("destination"):
            errs = golang.multierror_append(errs, golang.error("destination is required"))
        if with_headers:
            errs = golang.append_errors(errs, *header_operation_errors(weight.message("headers")))
        if not gateway_semantics:
            errs = golang.append_errors(errs, validate_destination(weight.message("destination")))
        errs = golang.append_errors(errs, validate_weight(weight.integer("weight")))
        total_weight = _int32(total_weight + weight.integer("weight"))
    if len(weights) > 1 and total_weight == 0:
        errs = golang.append_errors(errs, golang.error("total destination weight = 0"))
    return errs


def validate_destination(destination: Message | None) -> Err:
    if destination is None:
        return None
    errs: Err = None
    host = destination.text("host")
    if host == "*":
        errs = golang.append_errors(errs, golang.error(f"invalid destination host {host}"))
    else:
        errs = golang.append_errors(errs, agent.validate_wildcard_domain(host))
    subset = destination.text("subset")
    if subset != "":
        errs = golang.append_errors(errs, validate_subset_name(subset))
    port = destination.message("port")
    if port is not None:
        errs = golang.append_errors(errs, agent.validate_port(port.integer("number", "uint32")))
    return errs


def validate_subset_name(name: str) -> Err:
    if not name:
        return golang.error("subset name cannot be empty")
    if not names.is_dns1123_label(name):
        return golang.error(f"subset name is invalid: {name}")
    return None


# -- faults ----------------------------------------------------------------------------------


def validate_http_fault_injection(fault: Message | None) -> Err:
    if fault is None:
        return None
    errs: Err = None
    abort, delay = fault.message("abort"), fault.message("delay")
    if abort is None and delay is None:
        message = "HTTP fault injection must have an abort and/or a delay"
        errs = golang.multierror_append(errs, golang.error(message))
    errs = golang.append_errors(errs, validate_http_fault_injection_abort(abort))
    return golang.append_errors(errs, validate_http_fault_injection_delay(delay))


def validate_http_fault_injection_abort(abort: Message | None) -> Validation:
    if abort is None:
        return Validation()
    errs = golang.append_validation(Validation(), validate_percentage(abort.message("percentage")))
    kind = abort.oneof("httpStatus", "grpcStatus", "http2Error")
    if kind == "grpcStatus":
        return golang.append_validation(errs, validate_grpc_status(abort.text("grpcStatus")))
    if kind == "http2Error":
        problem = golang.error("HTTP/2 abort fault injection not supported yet")
        return golang.append_validation(errs, problem)
    if kind == "httpStatus":
        return golang.append_validation(errs, validate_http_status(abort.integer("httpStatus")))
    return golang.append_validation(
        errs, golang.warning("abort configured, but error type not set")
    )


def validate_http_status(status: int) -> Err:
    if status < 200 or status > 600:
        return golang.error(f"HTTP status {status} is not in range 200-599")
    return None


def validate_grpc_status(status: str) -> Err:
    if status in _GRPC_STATUS_CODES:
        return None
    return golang.error(
        f"gRPC status {golang.quote(status)} is not supported. See "
        "https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of supported "
        "codes, for example 'NOT_FOUND'"
    )


def validate_http_fault_injection_delay(delay: Message | None) -> Err:
    if delay is None:
        return None
    errs = golang.append_errors(None, validate_percentage(delay.message("percentage")))
    kind = delay.oneof("fixedDelay", "exponentialDelay")
    if kind is not None:
        errs = golang.append_errors(errs, agent.validate_duration(delay.duration(kind) or 0))
    if kind == "exponentialDelay":
        problem = golang.error("exponentialDelay not supported yet")
        errs = golang.multierror_append(errs, problem)
    return errs


# -- CORS, redirect, direct response, mirrors, rewrite ---------------------------------------


def validate_cors_policy(policy: Message | None) -> Err:
    if policy is None:
        return None
    errs: Err = None
    for origin in policy.messages("allowOrigins"):
        errs = golang.append_errors(errs, _validate_allow_origins(origin or Message({})))
    for method in policy.texts("allowMethods"):
        if method not in _SUPPORTED_CORS_METHODS:
            problem = golang.error(f"{golang.quote(method)} is not a supported HTTP method")
            errs = golang.append_errors(errs, problem)
    for field in ("allowHeaders", "exposeHeaders"):
        for name in policy.texts(field):
            errs = golang.append_errors(errs, validate_cors_http_header_name(name))
    max_age = policy.duration("maxAge")
    if max_age is not None:
        errs = golang.append_errors(errs, agent.validate_duration(max_age))
        nanos = max_age % 10**9 if max_age >= 0 else -(-max_age % 10**9)  # Duration.Nanos
        if nanos > 0:
            problem = golang.error("max_age duration is accurate only to seconds precision")
            errs = golang.multierror_append(errs, problem)
    return errs


def _validate_allow_origins(origin: Message) -> Err:
    kind = origin.oneof(*MATCH_TYPES)
    match = origin.text(kind) if kind else ""
    if match == "":
        return golang.error(f"'{match}' is not a valid match type for CORS allow origins")
    return validate_string_match_regexp(origin, "corsPolicy.allowOrigins")


def validate_http_redirect(redirect: Message | None, matches: list[Message | None]) -> Err:
    if redirect is None:
        return None
    uri, prefix_rewrite = redirect.text("uri"), redirect.text("prefixRewrite")
    if uri and prefix_rewrite:
        return golang.error("redirect may only specify one of uri or prefix_rewrite")
    if prefix_rewrite:
        for match in matches:
            match_uri = match.message("uri") if match else None
            if match_uri is not None and match_uri.oneof(*MATCH_TYPES) != "prefix":
                return golang.error(
                    "redirect prefix_rewrite requires all URI matches to use prefix match type"
                )
    port_kind = redirect.oneof("port", "derivePort")
    targets = (uri, prefix_rewrite, redirect.text("authority"), port_kind, redirect.text("scheme"))
    if not any(targets):
        return golang.error("redirect must specify URI, authority, scheme, or port")
    code = redirect.integer("redirectCode", "uint32")
    if code != 0 and not 300 <= code <= 399:
        return golang.error(f"{code} is not a valid redirect code, must be 3xx")
    if redirect.text("scheme") not in ("", "http", "https"):
        return golang.error('invalid redirect scheme, must be "http" or "https"')
    port = redirect.integer("port", "uint32") if port_kind == "port" else 0
    if port > 0:
        return agent.validate_port(port)
    return None


def validate_http_direct_response(direct_response: Message | None) -> Validation:
    if direct_response is None:
        return Validation()
    errs = Validation()
    body = direct_response.message("body")
    if body is not None:
        kind = body.oneof("string", "bytes")
        size = len(body.text("string").encode()) if kind == "string" else 0
        if kind == "bytes":
            try:
                size = len(base64.b64decode(body.text("bytes"), validate=True))
            except (binascii.Error, ValueError):
                raise DecodeError(f"{body.path}.bytes: illegal base64 data") from None
        if size > MB:
            message = "large direct_responses may impact control plane performance, must be "
            errs = golang.append_validation(errs, golang.error(message + "less than 1MB"))
        elif size > 100 * KB:
            message = "large direct_responses may impact control plane performance"
            errs = golang.append_validation(errs, golang.warning(message))
    status = _int32(direct_response.integer("status", "uint32"))
    return golang.append_validation(errs, validate_http_status(status))


def validate_http_mirrors(mirrors: list[Message | None]) -> Validation:
    errs = Validation()
    for mirror in mirrors:
        if mirror is None:
            errs = golang.append_validation(errs, golang.error("mirror cannot be null"))
            continue
        destination = mirror.message("destination")
        if destination is None:
            problem = golang.error("destination is required for mirrors")
            errs = golang.append_validation(errs, problem)
            continue
        errs = golang.append_validation(errs, validate_destination(destination))
        errs = golang.append_validation(
            errs, *mirror_percentage_errors(mirror.message("percentage"), "mirror percentage")
        )
    return errs


def mirror_percentage_errors(percentage: Message | None, what: str) -> list[Err]:
    """A mirror's share of traffic: 0-100 (no 0.0001 floor, unlike faults)."""
    value = percentage.number("value") if percentage else 0.0
    found: list[Err] = []
    if value > 100:
        found.append(golang.error(f"{what} must have a max value of 100 (it has {value:f})"))
    if value < 0:
        found.append(golang.error(f"{what} must have a min value of 0 (it has {value:f})"))
    return found


def validate_http_rewrite(rewrite: Message | None) -> Err:
    if rewrite is None:
        return None
    uri, regex_rewrite = rewrite.text("uri"), rewrite.message("uriRegexRewrite")
    if uri and regex_rewrite is not None:
        return golang.error("rewrite may only contain one of URI or UriRegexRewrite")
    if not uri and regex_rewrite is None and not rewrite.text("authority"):
        return golang.error(
            "rewrite must specify at least one of URI, UriRegexRewrite, or authority. "
            "Only one of URI or UriRegexRewrite may be specified"
        )
    problem = _validate_uri_regex_rewrite(regex_rewrite)
    if problem is not None:
        return golang.join(golang.error("UriRegexRewrite has errors"), problem)
    return None


def _validate_uri_regex_rewrite(regex_rewrite: Message | None) -> Err:
    if regex_rewrite is None:
        return None
    if regex_rewrite.text("match") == "" or regex_rewrite.text("rewrite") == "":
        return golang.error(
            "UriRegexRewrite requires both Rewrite and Match fields to be specified"
        )
    return validate_string_regexp(regex_rewrite.text("match"), "HTTPRewrite.UriRegexRewrite.Match")
