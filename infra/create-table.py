#!/usr/bin/env python3
"""Creates the config table from infra/dynamodb/config-table.json (boto3 comes with moto).

usage: create-table.py TABLE_NAME   (endpoint from AWS_ENDPOINT_URL_DYNAMODB)
"""
import json, os, pathlib, sys
import boto3

name = sys.argv[1]
definition = json.loads((pathlib.Path(__file__).parent / "dynamodb/config-table.json").read_text())
client = boto3.client("dynamodb", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"))
if name not in client.list_tables()["TableNames"]:
    client.create_table(TableName=name, **definition)
    client.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
print(f"table {name} ready")
