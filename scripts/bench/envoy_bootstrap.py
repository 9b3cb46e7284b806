"""Envoy's bootstrap for each scenario through Envoy, as data: one listener
and route for all, differing only in the auth filter (none, jwt_authn,
ext_authz to a server over TCP or a Unix socket, ward's dynamic module, or
the do-nothing module), so the scenarios compare the filters and nothing
else. Pure: builds a dict, starts nothing."""

from __future__ import annotations

from typing import Optional


def envoy_config(mode: str, http_port: int, admin_port: int, upstream_port: int,
                 authz_port: Optional[int] = None, authz_unix: Optional[str] = None,
                 jwks: Optional[str] = None, module_config: str = "") -> dict:
    """The bootstrap for one Envoy scenario: the same listener and route for
    all, differing only in the auth filter. `module`: ward's module
    (`libward_envoy.so`) with `module_config` (ward's YAML) as its filter
    config; `noop_module`: the do-nothing module (`libward_noop.so`, from
    benches/tools/noop_module.c). Envoy finds either on its
    ENVOY_DYNAMIC_MODULES_SEARCH_PATH."""

    def sock(port):
        return {"socket_address": {"address": "127.0.0.1", "port_value": port}}

    def cluster(name, address, http2=False):
        c = {"name": name, "type": "STATIC", "connect_timeout": "1s",
             "load_assignment": {"cluster_name": name, "endpoints": [
                 {"lb_endpoints": [{"endpoint": {"address": address}}]}]}}
        if http2:
            c["typed_extension_protocol_options"] = {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}}}}
        return c

    filters = []
    clusters = [cluster("upstream", sock(upstream_port))]
    if mode == "ext_authz":
        filters.append({"name": "envoy.filters.http.ext_authz", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "transport_api_version": "V3",
            "failure_mode_allow": False,
            "status_on_error": {"code": 503},
            "include_peer_certificate": False,
            "grpc_service": {"envoy_grpc": {"cluster_name": "authz"}, "timeout": "0.5s"}}})
        address = {"pipe": {"path": authz_unix}} if authz_unix else sock(authz_port)
        clusters.append(cluster("authz", address, http2=True))
    elif mode == "jwt_authn":
        filters.append({"name": "envoy.filters.http.jwt_authn", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"bench": {
                "issuer": "https://idp.test",
                "audiences": ["api"],
                "forward": True,
                "local_jwks": {"inline_string": jwks},
                # Like ward's identity headers.
                "claim_to_headers": [{"header_name": "x-user-id", "claim_name": "sub"},
                                     {"header_name": "x-user-email", "claim_name": "email"}],
                "jwt_cache_config": {"jwt_cache_size": 1000}}},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}]}})
    elif mode in ("module", "noop_module"):
        filters.append({"name": "ward", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "dynamic_module_config": {"name": "ward_envoy" if mode == "module" else "ward_noop"},
            "filter_name": "ward",
            "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                              "value": module_config}}})
    filters.append({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
    return {
        "admin": {"address": sock(admin_port)},
        "static_resources": {
            "listeners": [{"name": "ingress", "address": sock(http_port), "filter_chains": [{
                "filters": [{"name": "envoy.filters.network.http_connection_manager",
                             "typed_config": {
                                 "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                 "stat_prefix": "ingress_http",
                                 "codec_type": "AUTO",
                                 "normalize_path": True,
                                 "merge_slashes": True,
                                 "route_config": {"name": "local", "virtual_hosts": [{
                                     "name": "all", "domains": ["*"],
                                     "routes": [{"match": {"prefix": "/"},
                                                 "route": {"cluster": "upstream"}}]}]},
                                 "http_filters": filters}}]}]}],
            "clusters": clusters,
        },
    }
