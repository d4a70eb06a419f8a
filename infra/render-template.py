#!/usr/bin/env python3
"""Renders template.yaml as CloudFormation would deploy it, for every meaningful
combination of its parameters, offline: the SAM transform (samtranslator, the library `sam`
itself runs), then the stack's conditions evaluated and `Fn::If` branches taken, resources
whose condition is false removed. The linters and crates/deploy-check then read what would
really be created, not only the source (a duplicate managed policy, for one, exists only
after the transform).

usage: render-template.py OUT_DIR      (writes OUT_DIR/<combination>.json)

Combinations: the cache-refresher in a VPC or not, a stack-made or existing user pool (the
latter with tenant-scoped credentials off), arm64 or x86_64, an alarm e-mail or none.
"""
import copy, itertools, json, logging, os, pathlib, sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

# The transform records usage metrics it never publishes offline, and says so at exit.
logging.getLogger("samtranslator.metrics").setLevel(logging.ERROR)

ROOT = pathlib.Path(__file__).resolve().parent.parent
PSEUDO = {"AWS::Region": "us-east-1", "AWS::Partition": "aws", "AWS::AccountId": "123456789012",
          "AWS::StackName": "tagcfg", "AWS::URLSuffix": "amazonaws.com"}
NO_VALUE = object()

DIMENSIONS = {
    # The VPC renderings are those of a deployment whose watch stack exists: they also name
    # its task role, which TenantAccessRole then trusts.
    "vpc": {"off": {}, "on": {"RefresherSubnetIds": "subnet-0123456789abcdef0,subnet-0123456789abcdef1", "RefresherSecurityGroupIds": "sg-0123456789abcdef0", "WatchTaskRoleArn": "arn:aws:iam::123456789012:role/tagcfg-watch-TaskRole-0123456789AB"}},
    # The existing-pool renderings also switch tenant-scoped credentials off, so both values
    # of TenantScopedCredentials are rendered without doubling the renderings.
    "pool": {"created": {}, "existing": {"ExistingUserPoolId": "us-east-1_Existing", "ExistingUserPoolClientId": "existingclient", "TenantScopedCredentials": "Disabled"}},
    "arch": {"arm64": {"Architecture": "arm64"}, "x86_64": {"Architecture": "x86_64"}},
    "alarms": {"topic": {}, "email": {"AlarmEmail": "ops@example.com"}},
}


class NoManagedPolicyLookups:
    """The transform resolves managed policy names from its bundled list; nothing is fetched."""

    def load(self):
        return {}


def parameter_values(template, overrides):
    values = {name: p.get("Default", "") for name, p in template.get("Parameters", {}).items()}
    values.update(overrides)
    return values


def evaluate(node, values, conditions):
    """A condition expression's truth, for the intrinsics the template's conditions use."""
    if isinstance(node, dict) and len(node) == 1:
        (name, arg), = node.items()
        if name == "Fn::Equals":
            return evaluate(arg[0], values, conditions) == evaluate(arg[1], values, conditions)
        if name == "Fn::Not":
            return not evaluate(arg[0], values, conditions)
        if name == "Fn::And":
            return all(evaluate(a, values, conditions) for a in arg)
        if name == "Fn::Or":
            return any(evaluate(a, values, conditions) for a in arg)
        if name == "Condition":
            return conditions[arg]
        if name == "Ref":
            value = values.get(arg, PSEUDO.get(arg))
            return value.split(",") if isinstance(value, str) and "," in value else value
        if name == "Fn::Join":
            parts = evaluate(arg[1], values, conditions)
            parts = parts if isinstance(parts, list) else [parts]
            return arg[0].join("" if p is None else str(p) for p in parts)
    return node


def resolve_ifs(node, conditions):
    """Takes each `Fn::If` branch the conditions choose; drops `AWS::NoValue`."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, yes, no = node["Fn::If"]
            return resolve_ifs(yes if conditions[name] else no, conditions)
        if node == {"Ref": "AWS::NoValue"}:
            return NO_VALUE
        out = {}
        for key, value in node.items():
            value = resolve_ifs(value, conditions)
            if value is not NO_VALUE:
                out[key] = value
        return out
    if isinstance(node, list):
        return [v for v in (resolve_ifs(v, conditions) for v in node) if v is not NO_VALUE]
    return node


def render(source, overrides):
    template = copy.deepcopy(source)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://tagcfg-artifacts/code.zip"
    values = parameter_values(template, overrides)
    # Parameters are passed as the deployment would; conditions stay for the step below.
    rendered = transform(template, dict(values, **PSEUDO), NoManagedPolicyLookups())
    conditions = {}
    for name, expression in rendered.get("Conditions", {}).items():
        conditions[name] = bool(evaluate(expression, values, conditions))
    resources = {name: r for name, r in rendered["Resources"].items()
                 if conditions.get(r.get("Condition"), True)}
    for resource in resources.values():
        resource.pop("Condition", None)
    rendered["Resources"] = resolve_ifs(resources, conditions)
    rendered["Outputs"] = {name: o for name, o in resolve_ifs(rendered.get("Outputs", {}), conditions).items()
                           if conditions.get(o.pop("Condition", None), True)}
    # Decided: nothing refers to a condition any more, and each parameter has this
    # combination's value as its default (what the linters resolve a Ref to).
    rendered.pop("Conditions", None)
    rendered.pop("Rules", None)
    for name, parameter in rendered.get("Parameters", {}).items():
        parameter["Default"] = values[name]
    rendered["Metadata"] = {"tagcfg:parameters": overrides}
    return rendered


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.json"):
        old.unlink()
    os.environ.setdefault("AWS_DEFAULT_REGION", PSEUDO["AWS::Region"])
    source = yaml_parse((ROOT / "template.yaml").read_text())
    names = list(DIMENSIONS)
    count = 0
    for choice in itertools.product(*(DIMENSIONS[n].items() for n in names)):
        label = "-".join(f"{n}={c[0]}" for n, c in zip(names, choice))
        overrides = {}
        for _, values in choice:
            overrides.update(values)
        (out / f"{label}.json").write_text(json.dumps(render(source, overrides), indent=1, sort_keys=True))
        count += 1
    print(f"[render] {count} renderings of template.yaml in {out}")


main()
