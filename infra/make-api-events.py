#!/usr/bin/env python3
"""Writes events/api/*.json: API Gateway HTTP API (payload 2.0) events for config-api.

The tokens are RS256 JWTs signed with the *test* key of crates/tenant-auth/tests/fixtures
(public, for tests only), valid until 2100, shaped like Cognito access tokens. The events
are committed; run this again only to change them:  python3 infra/make-api-events.py
Needs the `cryptography` package.
"""
import base64, json, pathlib
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

ROOT = pathlib.Path(__file__).resolve().parent.parent
KEY = serialization.load_pem_private_key((ROOT / "crates/tenant-auth/tests/fixtures/rsa-private.pem").read_bytes(), None)
ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_tagcfgEvents"
CLIENT = "tagcfg-events-client"
OUT = ROOT / "events/api"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(tenant, scope, exp=4102444800):
    """A tenant's token, or an operator's with tenant=None (no tenant claim)."""
    header = {"alg": "RS256", "kid": "test-rsa", "typ": "JWT"}
    claims = {"iss": ISSUER, "client_id": CLIENT, "sub": f"{tenant or 'operator'}-events-user", "token_use": "access",
              "iat": 1767225600, "exp": exp, "scope": scope}
    if tenant:
        claims["custom:tenantId"] = tenant
    signing_input = f"{b64(json.dumps(header, separators=(',', ':')).encode())}.{b64(json.dumps(claims, separators=(',', ':')).encode())}"
    signature = KEY.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


ACME_WRITE = token("acme", "tagcfg/config:write")
ACME_ADMIN = token("acme", "tagcfg/config:admin")
ACME_READ = token("acme", "openid")
GLOBEX_READ = token("globex", "tagcfg/config:read")
EXPIRED = token("acme", "tagcfg/config:write", exp=1700000000)
OPERATOR = token(None, "tagcfg/config:operator")


def event(method, path, query="", token=None, body=None, headers=None, route=None):
    h = {"host": "api.tagcfg.example", "user-agent": "curl/8.5.0", "accept": "*/*"}
    if token:
        h["authorization"] = f"Bearer {token}"
    if body is not None:
        h["content-type"] = "application/json"
    h.update(headers or {})
    route_key = route or (f"{method} /v1/config/{{key+}}" if path.startswith("/v1/config/") else f"{method} {path}")
    e = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": h,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "tagcfgapi",
            "domainName": "api.tagcfg.example",
            "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.10", "userAgent": "curl/8.5.0"},
            "routeKey": route_key,
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000,
        },
        "isBase64Encoded": False,
    }
    if query:
        e["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&"))
    if path.startswith("/v1/config/"):
        e["pathParameters"] = {"key": path[len("/v1/config/"):]}
    if path.startswith("/v1/tenants/"):
        e["pathParameters"] = {"tenant": path[len("/v1/tenants/"):]}
    if body is not None:
        e["body"] = body
    return e


EVENTS = {
    # The happy paths, in the order the test replays them.
    "put-flag": event("PUT", "/v1/config/tenant_config_flags/checkout", token=ACME_WRITE, body='{"enabled":true,"rollout_percent":25}'),
    "get-flag": event("GET", "/v1/config/tenant_config_flags/checkout", token=ACME_READ),
    "get-flag-not-modified": event("GET", "/v1/config/tenant_config_flags/checkout", token=ACME_READ, headers={"if-none-match": '"1"'}),
    "put-flag-if-match": event("PUT", "/v1/config/tenant_config_flags/checkout", token=ACME_WRITE, body='{"enabled":false,"rollout_percent":0}', headers={"if-match": '"1"'}),
    "put-param": event("PUT", "/v1/config/param_config_payments/endpoint", token=ACME_WRITE, body='"https://payments.acme.example/v2"'),
    "get-param": event("GET", "/v1/config/param_config_payments/endpoint", token=ACME_READ),
    "get-param-min-revision": event("GET", "/v1/config/param_config_payments/endpoint", "min_revision=3", token=ACME_READ),
    "put-shared-region": event("PUT", "/v1/config/param_config_region/default", "layer=shared", token=OPERATOR, body='"eu-west-1"'),
    "put-tenant-tier": event("PUT", "/v1/tenants/globex", token=OPERATOR, body='{"tier":"pro"}', route="PUT /v1/tenants/{tenant}"),
    "get-shared-fallback-globex": event("GET", "/v1/config/param_config_region/default", token=GLOBEX_READ),
    "get-flag-other-tenant": event("GET", "/v1/config/tenant_config_flags/checkout", token=GLOBEX_READ),
    "list": event("GET", "/v1/config", "prefix=tenant_config_&limit=10", token=ACME_READ),
    "batch-get": event("POST", "/v1/config:batchGet", token=ACME_READ, body='{"keys":["tenant_config_flags/checkout","param_config_payments/endpoint","tenant_config_missing"]}'),
    "changes": event("GET", "/v1/changes", "since=0", token=ACME_READ),
    "history": event("GET", "/v1/config/tenant_config_flags/checkout/history", token=ACME_READ),
    "delete-flag": event("DELETE", "/v1/config/tenant_config_flags/checkout", token=ACME_WRITE, headers={"if-match": '"2"'}),
    "healthz": event("GET", "/healthz"),
    "openapi": event("GET", "/openapi.json"),
    # The error cases.
    "error-no-token": event("GET", "/v1/config/tenant_config_flags/checkout"),
    "error-bad-token": event("GET", "/v1/config/tenant_config_flags/checkout", token="not.a.jwt"),
    "error-expired-token": event("GET", "/v1/config/tenant_config_flags/checkout", token=EXPIRED),
    "error-admin-writes-shared": event("PUT", "/v1/config/param_config_region/default", "layer=shared", token=ACME_ADMIN, body='"us-east-1"'),
    "error-read-only-write": event("PUT", "/v1/config/tenant_config_flags/checkout", token=ACME_READ, body="true"),
    "error-bad-key": event("PUT", "/v1/config/tenant_config_../etc", token=ACME_WRITE, body="true"),
    "error-unknown-tag": event("GET", "/v1/config/billing_plan", token=ACME_READ),
    "error-stale-if-match": event("PUT", "/v1/config/param_config_payments/endpoint", token=ACME_WRITE, body='"x"', headers={"if-match": '"7"'}),
    "error-oversize-value": event("PUT", "/v1/config/param_config_big", token=ACME_WRITE, body=json.dumps("x" * 5000)),
    "error-malformed-json": event("PUT", "/v1/config/tenant_config_flags/checkout", token=ACME_WRITE, body='{"enabled": tru'),
    "error-tenant-in-query": event("GET", "/v1/config/tenant_config_flags/checkout", "tenant=globex", token=ACME_READ),
}

OUT.mkdir(parents=True, exist_ok=True)
for name, e in EVENTS.items():
    e["requestContext"]["requestId"] = f"evt-{name}"
    (OUT / f"{name}.json").write_text(json.dumps(e, indent=2) + "\n")
print(f"wrote {len(EVENTS)} events to {OUT}")
