#!/usr/bin/env python3
"""Writes events/eventbridge/*.json: the events cache-refresher receives.
python3 infra/make-eventbridge-events.py"""
import json, pathlib

OUT = pathlib.Path(__file__).resolve().parent.parent / "events/eventbridge"


def envelope(source, detail_type, detail, n):
    return {"version": "0", "id": f"6a7e8feb-b491-4cf7-a9f1-bf3703467{n:03d}", "detail-type": detail_type,
            "source": source, "account": "123456789012", "time": "2026-11-27T09:00:00Z", "region": "us-east-1",
            "resources": [], "detail": detail}


def ssm(operation, name, n, kind="String"):
    return envelope("aws.ssm", "Parameter Store Change", {"operation": operation, "name": name, "type": kind, "description": ""}, n)


events = {
    "config-changed": envelope("tagcfg", "ConfigChanged", {
        "tenant": "acme", "revision": 7, "key": "tenant_config_flags/checkout", "tag": "tenant_config_",
        "backend": "dynamodb", "op": "put", "version": 2, "actor": "acme-user", "at": "2026-11-27T09:00:00Z",
        "value": {"enabled": True}}, 1),
    "config-changed-secret": envelope("tagcfg", "ConfigChanged", {
        "tenant": "acme", "revision": 8, "key": "secret_config_payments/api-key", "tag": "secret_config_",
        "backend": "ssm-secure", "op": "put", "version": 1, "actor": "acme-user", "at": "2026-11-27T09:00:01Z",
        "value_omitted": "secret"}, 2),
    "config-changed-malformed": envelope("tagcfg", "ConfigChanged", {"tenant": "acme", "revision": "seven"}, 3),
    "ssm-create": ssm("Create", "/tagcfg/acme/param_config/payments/endpoint", 4),
    "ssm-update": ssm("Update", "/tagcfg/acme/param_config/payments/endpoint", 5),
    "ssm-delete": ssm("Delete", "/tagcfg/acme/param_config/payments/endpoint", 6),
    "ssm-outside-root": ssm("Update", "/other-app/database/url", 7),
}
OUT.mkdir(parents=True, exist_ok=True)
for name, e in events.items():
    (OUT / f"{name}.json").write_text(json.dumps(e, indent=2) + "\n")
print(f"wrote {len(events)} events to {OUT}")
