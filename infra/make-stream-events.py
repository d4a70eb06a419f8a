#!/usr/bin/env python3
"""Writes events/stream/*.json: DynamoDB stream batches for stream-publisher, in the shape
Lambda delivers them (DynamoDB JSON images).   python3 infra/make-stream-events.py"""
import json, pathlib

OUT = pathlib.Path(__file__).resolve().parent.parent / "events/stream"
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/tagcfg-config/stream/2026-11-27T00:00:00.000"


def change_item(tenant, revision, key, value=None, op="put", backend="dynamodb", omitted=None, version=1):
    tag = key.split("_config_")[0] + "_config_"
    item = {
        "pk": {"S": f"T#{tenant}"}, "sk": {"S": f"C#{revision:020d}"}, "tenant": {"S": tenant},
        "revision": {"N": str(revision)}, "key": {"S": key}, "tag": {"S": tag}, "backend": {"S": backend},
        "op": {"S": op}, "version": {"N": str(version)}, "actor": {"S": f"{tenant}-user"},
        "at": {"S": "2026-11-27T09:00:00Z"}, "expires_at": {"N": "1795000000"},
    }
    if value is not None:
        item["value"] = {"S": value}
    if omitted:
        item["value_omitted"] = {"S": omitted}
    return item


def record(seq, name, keys, image=None):
    r = {"eventID": f"evt-{seq}", "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
         "awsRegion": "us-east-1", "eventSourceARN": ARN,
         "dynamodb": {"ApproximateCreationDateTime": 1795000000, "Keys": keys, "SequenceNumber": str(100 + seq),
                      "SizeBytes": 200, "StreamViewType": "NEW_IMAGE"}}
    if image is not None:
        r["dynamodb"]["NewImage"] = image
    return r


def keys_of(item):
    return {"pk": item["pk"], "sk": item["sk"]}


put = change_item("acme", 7, "tenant_config_flags/checkout", '{"enabled":true}', version=2)
secret = change_item("acme", 8, "secret_config_payments/api-key", backend="ssm-secure", omitted="secret")
delete = change_item("acme", 9, "tenant_config_old", op="delete", version=3)
value_item = {"pk": {"S": "T#acme"}, "sk": {"S": "K#tenant_config_flags/checkout"}, "key": {"S": "tenant_config_flags/checkout"},
              "value": {"S": '{"enabled":true}'}, "version": {"N": "2"}, "revision": {"N": "7"},
              "updated_at": {"S": "2026-11-27T09:00:00Z"}, "updated_by": {"S": "acme-user"}}
head_item = {"pk": {"S": "T#acme"}, "sk": {"S": "REV"}, "revision": {"N": "9"}}
malformed = change_item("acme", 10, "tenant_config_broken", '{"x":1}')
malformed["op"] = {"S": "upsert"}
after = change_item("globex", 3, "param_config_region", '"eu-west-1"', backend="ssm")

batches = {
    "changes": [record(1, "INSERT", keys_of(put), put), record(2, "INSERT", keys_of(secret), secret),
                record(3, "INSERT", keys_of(delete), delete)],
    "ignored-items": [record(1, "INSERT", keys_of(value_item), value_item), record(2, "MODIFY", keys_of(head_item), head_item),
                      record(3, "REMOVE", keys_of(put))],
    "malformed": [record(1, "INSERT", keys_of(put), put), record(2, "INSERT", keys_of(malformed), malformed),
                  record(3, "INSERT", keys_of(after), after)],
}
OUT.mkdir(parents=True, exist_ok=True)
for name, records in batches.items():
    (OUT / f"{name}.json").write_text(json.dumps({"Records": records}, indent=2) + "\n")
print(f"wrote {len(batches)} batches to {OUT}")
