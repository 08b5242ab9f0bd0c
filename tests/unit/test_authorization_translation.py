"""AuthorizationPolicy -> Envoy RBAC, RequestAuthentication -> jwt_authn: the pure translation,
case by case as istiod's builder and its worked examples (builder/testdata/http) build them."""

import pytest

from chaosmesh_py.localmesh.authorization import (
    generate,
    policies_for,
    quote_meta,
    rbac_filters,
    skipped_rules,
    unsupported,
)
from chaosmesh_py.localmesh.request_authentication import (
    PUBLIC_ONLY_JWKS,
    jwks_uris,
    jwt_filter,
)

NEVER = {
    "permissions": [{"not_rule": {"any": True}}],
    "principals": [{"not_id": {"any": True}}],
}
ANY = {
    "permissions": [{"and_rules": {"rules": [{"any": True}]}}],
    "principals": [{"and_ids": {"ids": [{"any": True}]}}],
}


def policy(name, spec, namespace="foo", annotations=None, created="2026-01-01T00:00:00Z"):
    metadata = {"name": name, "namespace": namespace, "creationTimestamp": created}
    if annotations:
        metadata["annotations"] = annotations
    return {"kind": "AuthorizationPolicy", "metadata": metadata, "spec": spec}


def rules_of(filters):
    return [f["typed_config"].get("rules") for f in filters]


def principal_ids(rule, action="ALLOW"):
    (principal,) = generate(rule, "foo", action)["principals"]
    return principal["and_ids"]["ids"]


def permission_rules(rule, action="ALLOW"):
    (permission,) = generate(rule, "foo", action)["permissions"]
    return permission["and_rules"]["rules"]


# --- empty rules, actions, names, dry-run ---------------------------------------------------


def test_allow_with_no_rules_matches_nothing_and_allow_empty_rule_matches_everything():
    filters = rbac_filters([policy("nothing", {}), policy("everything", {"rules": [{}]})])
    (rules,) = rules_of(filters)
    assert rules["action"] == "ALLOW"
    assert rules["policies"] == {
        "ns[foo]-policy[everything]-rule[0]": ANY,
        "ns[foo]-policy[nothing]-rule[0]": NEVER,
    }


def test_deny_with_no_rules_is_a_never_matching_policy():
    (rules,) = rules_of(rbac_filters([policy("deny", {"action": "DENY"})]))
    assert rules == {"action": "DENY", "policies": {"ns[foo]-policy[deny]-rule[0]": NEVER}}


def test_one_filter_per_action_in_the_order_audit_deny_allow():
    filters = rbac_filters(
        [
            policy("a", {"action": "ALLOW", "rules": [{}]}),
            policy("d", {"action": "DENY", "rules": [{}, {}]}),
            policy("l", {"action": "AUDIT", "rules": [{}]}),
            policy("c", {"action": "CUSTOM", "provider": {"name": "x"}, "rules": [{}]}),
        ]
    )
    assert [f["name"] for f in filters] == ["envoy.filters.http.rbac"] * 3
    assert [r["action"] for r in rules_of(filters)] == ["LOG", "DENY", "ALLOW"]
    assert list(rules_of(filters)[1]["policies"]) == [
        "ns[foo]-policy[d]-rule[0]",
        "ns[foo]-policy[d]-rule[1]",
    ]
    # istiod's quirk: without shadow rules, the prefix of their (unset) action's default, ALLOW.
    prefixes = [f["typed_config"].get("shadow_rules_stat_prefix") for f in filters]
    assert prefixes == ["istio_dry_run_allow_"] * 3


def test_dry_run_goes_to_shadow_rules_with_istiods_stat_prefix():
    dry = {"istio.io/dry-run": "true"}
    (deny,) = rbac_filters([policy("d", {"action": "DENY", "rules": [{}]}, annotations=dry)])
    config = deny["typed_config"]
    assert "rules" not in config  # nothing enforced: Envoy lets every request through
    assert config["shadow_rules"]["policies"] == {"ns[foo]-policy[d]-rule[0]": ANY}
    assert config["shadow_rules_stat_prefix"] == "istio_dry_run_deny_"
    (mixed,) = rbac_filters(
        [policy("d", {"rules": [{}]}, annotations=dry), policy("e", {"rules": [{}]})]
    )
    assert list(mixed["typed_config"]["rules"]["policies"]) == ["ns[foo]-policy[e]-rule[0]"]
    assert list(mixed["typed_config"]["shadow_rules"]["policies"]) == ["ns[foo]-policy[d]-rule[0]"]
    assert mixed["typed_config"]["shadow_rules_stat_prefix"] == "istio_dry_run_allow_"
    # istiod's ParseBool: "false" or garbage is enforced.
    (enforced,) = rbac_filters(
        [policy("x", {"rules": [{}]}, annotations={"istio.io/dry-run": "no"})]
    )
    assert "shadow_rules" not in enforced["typed_config"]


# --- which policies apply -------------------------------------------------------------------


def test_selection_root_namespace_first_then_selector_and_never_target_refs():
    chosen = policies_for(
        [
            policy("other-ns", {}, namespace="bar"),
            policy("mine", {"selector": {"matchLabels": {"app": "httpbin"}}}),
            policy("not-mine", {"selector": {"matchLabels": {"app": "ratings"}}}),
            policy("whole-ns", {}),
            policy("mesh", {}, namespace="istio-system", created="2026-02-01T00:00:00Z"),
            policy("waypoint", {"targetRefs": [{"kind": "Service", "name": "httpbin"}]}),
        ],
        "foo",
        {"app": "httpbin", "version": "v1"},
    )
    assert [p["metadata"]["name"] for p in chosen] == ["mesh", "mine", "whole-ns"]


def test_unsupported_names_custom_and_target_refs():
    assert unsupported(policy("a", {"rules": [{}]})) == []
    problems = unsupported(
        policy("c", {"action": "CUSTOM", "targetRef": {"kind": "Gateway", "name": "g"}})
    )
    assert len(problems) == 2 and "targetRef" in problems[0] and "CUSTOM" in problems[1]


# --- sources --------------------------------------------------------------------------------


def test_principals_with_istios_wildcards_match_the_spiffe_uri():
    ids = principal_ids(
        {"from": [{"source": {"principals": ["cluster.local/ns/a/sa/b", "p-*", "*-s", "*"]}}]}
    )
    assert ids == [
        {
            "or_ids": {
                "ids": [
                    {
                        "authenticated": {
                            "principal_name": {"exact": "spiffe://cluster.local/ns/a/sa/b"}
                        }
                    },
                    {"authenticated": {"principal_name": {"prefix": "spiffe://p-"}}},
                    {
                        "authenticated": {
                            "principal_name": {"safe_regex": {"regex": "spiffe://.*-s"}}
                        }
                    },
                    {"authenticated": {"principal_name": {"safe_regex": {"regex": ".+"}}}},
                ]
            }
        }
    ]


def test_namespaces_service_accounts_and_not_forms():
    ids = principal_ids(
        {
            "from": [
                {
                    "source": {
                        "namespaces": ["bookinfo"],
                        "notNamespaces": ["test-*"],
                        "serviceAccounts": ["sleep"],
                    }
                }
            ]
        }
    )
    # istiod's order: principals, requestPrincipals, serviceAccounts, ..., namespaces, ...
    assert ids == [
        {
            "or_ids": {
                "ids": [
                    {
                        "authenticated": {
                            "principal_name": {
                                "safe_regex": {"regex": "spiffe://.+/ns/foo/(.+/|)sa/sleep(/.+)?"}
                            }
                        }
                    }
                ]
            }
        },
        {
            "or_ids": {
                "ids": [
                    {
                        "authenticated": {
                            "principal_name": {"safe_regex": {"regex": ".*/ns/bookinfo/.*"}}
                        }
                    }
                ]
            }
        },
        {
            "not_id": {
                "or_ids": {
                    "ids": [
                        {
                            "authenticated": {
                                "principal_name": {"safe_regex": {"regex": ".*/ns/test-.*/.*"}}
                            }
                        }
                    ]
                }
            }
        },
    ]


def test_quote_meta_is_gos_not_pythons():
    assert quote_meta("a-b.c*") == "a-b\\.c\\*"


def test_ip_blocks_are_the_direct_address_and_remote_ip_blocks_the_forwarded_one():
    ids = principal_ids(
        {"from": [{"source": {"ipBlocks": ["10.1.2.3"], "remoteIpBlocks": ["192.168.0.0/16"]}}]}
    )
    assert ids == [
        {"or_ids": {"ids": [{"remote_ip": {"address_prefix": "192.168.0.0", "prefix_len": 16}}]}},
        {
            "or_ids": {
                "ids": [{"direct_remote_ip": {"address_prefix": "10.1.2.3", "prefix_len": 32}}]
            }
        },
    ]


def test_request_principals_split_iss_and_sub_at_the_last_slash():
    ids = principal_ids(
        {"from": [{"source": {"requestPrincipals": ["https://issuer.example/alice", "*"]}}]}
    )

    def claim(name, matcher):
        return {
            "metadata": {
                "filter": "envoy.filters.http.jwt_authn",
                "path": [{"key": "payload"}, {"key": name}],
                "value": {"string_match": matcher},
            }
        }

    assert ids == [
        {
            "or_ids": {
                "ids": [
                    {
                        "and_ids": {
                            "ids": [
                                claim("iss", {"exact": "https://issuer.example"}),
                                claim("sub", {"exact": "alice"}),
                            ]
                        }
                    },
                    {
                        "and_ids": {
                            "ids": [
                                claim("iss", {"safe_regex": {"regex": ".+"}}),
                                claim("sub", {"safe_regex": {"regex": ".+"}}),
                            ]
                        }
                    },
                ]
            }
        }
    ]


def test_nested_claims_accept_a_string_or_a_list_member():
    (metadata,) = principal_ids(
        {"when": [{"key": "request.auth.claims[account][tier]", "values": ["gold", "plat*"]}]}
    )
    values = {
        "or_match": {
            "value_matchers": [
                {"string_match": {"exact": "gold"}},
                {"string_match": {"prefix": "plat"}},
            ]
        }
    }
    assert metadata == {
        "metadata": {
            "filter": "envoy.filters.http.jwt_authn",
            "path": [{"key": "payload"}, {"key": "account"}, {"key": "tier"}],
            "value": {"or_match": {"value_matchers": [{"list_match": {"one_of": values}}, values]}},
        }
    }


def test_headers_and_audiences_in_when():
    ids = principal_ids(
        {
            "when": [
                {"key": "request.headers[x-user]", "values": ["*"], "notValues": ["bob"]},
                {"key": "request.auth.audiences", "values": ["bookinfo"]},
            ]
        }
    )
    assert ids[0] == {"or_ids": {"ids": [{"header": {"name": "x-user", "present_match": True}}]}}
    assert ids[1] == {
        "not_id": {
            "or_ids": {"ids": [{"header": {"name": "x-user", "string_match": {"exact": "bob"}}}]}
        }
    }
    assert ids[2]["metadata"]["path"] == [{"key": "payload"}, {"key": "aud"}]


# --- operations -----------------------------------------------------------------------------


def test_operations_hosts_methods_paths_ports_in_istiods_order():
    rules = permission_rules(
        {
            "to": [
                {
                    "operation": {
                        "ports": ["9080"],
                        "paths": ["/api/*", "*/info", "/items/{*}/detail"],
                        "methods": ["GET"],
                        "hosts": ["*.example.com"],
                    }
                }
            ]
        }
    )
    assert rules == [
        {
            "or_rules": {
                "rules": [
                    {
                        "header": {
                            "name": ":authority",
                            "string_match": {"suffix": ".example.com", "ignore_case": True},
                        }
                    }
                ]
            }
        },
        {
            "or_rules": {
                "rules": [{"header": {"name": ":method", "string_match": {"exact": "GET"}}}]
            }
        },
        {
            "or_rules": {
                "rules": [
                    {"url_path": {"path": {"prefix": "/api/"}}},
                    {"url_path": {"path": {"suffix": "/info"}}},
                    {
                        "uri_template": {
                            "name": "uri-template",
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.path.match"
                                ".uri_template.v3.UriTemplateMatchConfig",
                                "path_template": "/items/*/detail",
                            },
                        }
                    },
                ]
            }
        },
        {"or_rules": {"rules": [{"destination_port": 9080}]}},
    ]


def test_not_paths_is_not_of_or():
    rules = permission_rules({"to": [{"operation": {"notPaths": ["/healthz", "/ready"]}}]})
    assert rules == [
        {
            "not_rule": {
                "or_rules": {
                    "rules": [
                        {"url_path": {"path": {"exact": "/healthz"}}},
                        {"url_path": {"path": {"exact": "/ready"}}},
                    ]
                }
            }
        }
    ]


# --- what istiod cannot build ---------------------------------------------------------------


def test_an_unknown_when_key_skips_the_rule_under_any_action():
    for action in ("ALLOW", "DENY"):
        spec = {
            "action": action,
            "rules": [{"when": [{"key": "source.planet", "values": ["mars"]}]}, {}],
        }
        (rules,) = rules_of(rbac_filters([policy("p", spec)]))
        assert list(rules["policies"]) == ["ns[foo]-policy[p]-rule[1]"]
        assert skipped_rules(policy("p", spec)) == ["rules[0]: unknown attribute source.planet"]


def test_a_bad_value_skips_the_rule_under_allow_and_only_the_value_under_deny():
    rule = {"to": [{"operation": {"ports": ["http", "9080"]}}]}
    (allow,) = rules_of(rbac_filters([policy("p", {"rules": [rule]})]))
    assert allow["policies"] == {}  # an ALLOW filter with no policy: everything denied
    (deny,) = rules_of(rbac_filters([policy("p", {"action": "DENY", "rules": [rule]})]))
    (permission,) = deny["policies"]["ns[foo]-policy[p]-rule[0]"]["permissions"]
    assert permission == {
        "and_rules": {"rules": [{"or_rules": {"rules": [{"destination_port": 9080}]}}]}
    }


@pytest.mark.parametrize("bad", ["10.0.0.300", "fe80::1/200", "net"])
def test_an_ip_that_is_no_address_fails_an_allow_rule(bad):
    spec = {"rules": [{"from": [{"source": {"ipBlocks": [bad]}}]}]}
    assert skipped_rules(policy("p", spec))[0].startswith("rules[0]: invalid IP address")


# --- RequestAuthentication -> jwt_authn ------------------------------------------------------


def request_auth(name, *rules):
    return {
        "kind": "RequestAuthentication",
        "metadata": {"name": name, "namespace": "foo"},
        "spec": {"jwtRules": list(rules)},
    }


def test_one_rule_is_one_provider_required_or_missing_allowed():
    rule = {
        "issuer": "https://issuer.example",
        "jwksUri": "http://127.0.0.1:9/jwks.json",
        "audiences": ["bookinfo"],
        "forwardOriginalToken": True,
        "fromHeaders": [{"name": "x-jwt", "prefix": "Bearer "}],
        "fromParams": ["token"],
    }
    config = jwt_filter([request_auth("a", rule)], {"http://127.0.0.1:9/jwks.json": '{"keys":[]}'})
    assert config is not None
    typed = config["typed_config"]
    assert config["name"] == "envoy.filters.http.jwt_authn"
    assert typed["providers"] == {
        "origins-0": {
            "issuer": "https://issuer.example",
            "audiences": ["bookinfo"],
            "forward": True,
            "payload_in_metadata": "payload",
            "normalize_payload_in_metadata": {"space_delimited_claims": ["permission", "scope"]},
            "from_headers": [{"name": "x-jwt", "value_prefix": "Bearer "}],
            "from_params": ["token"],
            "local_jwks": {"inline_string": '{"keys":[]}'},
        }
    }
    assert typed["rules"] == [
        {
            "match": {"prefix": "/"},
            "requires": {
                "requires_any": {
                    "requirements": [{"provider_name": "origins-0"}, {"allow_missing": {}}]
                }
            },
        }
    ]
    assert typed["bypass_cors_preflight"] is True


def test_rules_of_several_policies_merge_sorted_by_issuer():
    config = jwt_filter(
        [
            request_auth("z", {"issuer": "zeta", "jwks": "{}"}),
            request_auth("a", {"issuer": "alpha", "jwks": "{}"}),
        ],
        {},
    )
    assert config is not None
    typed = config["typed_config"]
    assert [p["issuer"] for p in typed["providers"].values()] == ["alpha", "zeta"]
    (rule,) = typed["rules"]
    requirements = rule["requires"]["requires_any"]["requirements"]
    assert requirements[:2] == [{"provider_name": "origins-0"}, {"provider_name": "origins-1"}]
    assert requirements[2]["requires_all"]["requirements"][1] == {
        "requires_any": {"requirements": [{"provider_name": "origins-1"}, {"allow_missing": {}}]}
    }


def test_a_jwks_uri_not_fetched_gets_the_key_nobody_holds():
    rule = {"issuer": "i", "jwksUri": "http://unreachable.example/jwks"}
    assert jwks_uris([request_auth("a", rule)]) == ["http://unreachable.example/jwks"]
    config = jwt_filter([request_auth("a", rule)], {"http://unreachable.example/jwks": None})
    assert config is not None
    local = config["typed_config"]["providers"]["origins-0"]["local_jwks"]
    assert local == {"inline_string": PUBLIC_ONLY_JWKS}
    # Inline keys need no fetch.
    assert jwks_uris([request_auth("b", {"issuer": "i", "jwks": "{}", "jwksUri": "x"})]) == []


def test_no_rules_no_filter():
    assert jwt_filter([], {}) is None
    assert jwt_filter([request_auth("a")], {}) is None


def test_a_container_port_becomes_the_local_listeners_port():
    spec = {"rules": [{"to": [{"operation": {"ports": ["8000", "9000"]}}]}]}
    (rules,) = rules_of(rbac_filters([policy("p", spec)], {8000: 31234}))
    (permission,) = rules["policies"]["ns[foo]-policy[p]-rule[0]"]["permissions"]
    assert permission["and_rules"]["rules"] == [
        {"or_rules": {"rules": [{"destination_port": 31234}, {"destination_port": 9000}]}}
    ]


def test_request_authentication_unsupported_parts():
    from chaosmesh_py.localmesh.request_authentication import unsupported as ra_unsupported

    assert ra_unsupported(request_auth("a", {"issuer": "i", "jwksUri": "http://x"})) == []
    (problem,) = ra_unsupported(request_auth("b", {"issuer": "i"}))
    assert problem.startswith("jwtRules[0]: OpenID discovery")
