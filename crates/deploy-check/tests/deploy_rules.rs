//! Rules a first real deployment needs, checked on `template.yaml` and
//! `infra/watch-server.yaml`. Each one fails on the template as it was before the rule
//! existed; the defect it found is named beside it.

use std::path::PathBuf;

use serde_yaml::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn yaml(path: &str) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(root().join(path)).unwrap()).unwrap()
}

fn templates() -> Vec<(&'static str, Value)> {
    ["template.yaml", "infra/watch-server.yaml"]
        .into_iter()
        .map(|p| (p, yaml(p)))
        .collect()
}

/// Every resource of type `kind`: (logical id, resource).
fn resources<'t>(t: &'t Value, kind: &str) -> Vec<(String, &'t Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(id, r)| (id.as_str().unwrap().to_owned(), r))
        .collect()
}

/// The name a `!Ref X` or `!GetAtt X.Y` points at.
fn referenced(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(t) if t.tag == "!Ref" => t.value.as_str().map(str::to_owned),
        Value::Tagged(t) if t.tag == "!GetAtt" => t.value.as_str().and_then(|s| s.split('.').next()).map(str::to_owned),
        _ => None,
    }
}

/// Every `!Ref` anywhere inside `v`.
fn refs_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Tagged(t) if t.tag == "!Ref" => {
            if let Some(name) = t.value.as_str() {
                out.push(name.to_owned());
            }
            refs_in(&t.value, out);
        }
        Value::Tagged(t) => refs_in(&t.value, out),
        Value::Mapping(m) => m.values().for_each(|v| refs_in(v, out)),
        Value::Sequence(s) => s.iter().for_each(|v| refs_in(v, out)),
        _ => {}
    }
}

#[test]
fn no_function_lists_a_managed_policy_sam_attaches_itself() {
    // SAM attaches AWSLambdaVPCAccessExecutionRole whenever VpcConfig is set (even behind
    // !If); listing it again put the same ARN twice in the role, which CloudFormation
    // refuses.
    let t = yaml("template.yaml");
    for (id, function) in resources(&t, "AWS::Serverless::Function") {
        let policies = serde_yaml::to_string(&function["Properties"]["Policies"]).unwrap();
        if !function["Properties"]["VpcConfig"].is_null() {
            assert!(
                !policies.contains("AWSLambdaVPCAccessExecutionRole"),
                "{id} lists AWSLambdaVPCAccessExecutionRole, which SAM adds for VpcConfig"
            );
        }
        if let Some(list) = function["Properties"]["Policies"].as_sequence() {
            let names: Vec<String> = list.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect();
            let mut unique = names.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                names.len(),
                unique.len(),
                "{id} lists a managed policy twice: {names:?}"
            );
        }
    }
}

#[test]
fn every_asynchronously_invoked_function_has_an_on_failure_destination() {
    // EventBridge invokes Lambda asynchronously: the rule's RetryPolicy and DLQ cover
    // delivery only; a failing function's events were dropped after Lambda's two retries.
    let t = yaml("template.yaml");
    let asynchronous = ["EventBridgeRule", "CloudWatchEvent", "Schedule", "SNS", "S3"];
    for (id, function) in resources(&t, "AWS::Serverless::Function") {
        let Some(events) = function["Properties"]["Events"].as_mapping() else {
            continue;
        };
        let invoked_async = events
            .values()
            .any(|e| e["Type"].as_str().is_some_and(|k| asynchronous.contains(&k)));
        if invoked_async {
            let on_failure = &function["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"];
            assert!(
                !on_failure["Destination"].is_null() && !on_failure["Type"].is_null(),
                "{id} is invoked asynchronously but has no EventInvokeConfig on-failure destination"
            );
        }
    }
}

#[test]
fn user_pools_are_admin_create_only_and_the_tenant_attribute_is_not_writable() {
    // Self sign-up plus a writable custom:tenantId let anyone with the public client id
    // sign up as any tenant.
    let t = yaml("template.yaml");
    for (id, pool) in resources(&t, "AWS::Cognito::UserPool") {
        assert_eq!(
            pool["Properties"]["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"].as_bool(),
            Some(true),
            "{id} allows self sign-up"
        );
    }
    for (id, client) in resources(&t, "AWS::Cognito::UserPoolClient") {
        let writable = client["Properties"]["WriteAttributes"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{id} sets no WriteAttributes: every attribute is writable"));
        assert!(
            !writable.is_empty(),
            "{id}: an empty WriteAttributes leaves every attribute writable"
        );
        assert!(
            writable.iter().all(|a| a.as_str() != Some("custom:tenantId")),
            "{id} lets users write custom:tenantId"
        );
    }
}

#[test]
fn no_secret_reaches_an_environment_variable() {
    // The service secret was a plain Lambda variable: readable with
    // lambda:GetFunctionConfiguration, and a second copy of the SSM parameter.
    for (path, t) in templates() {
        let secret_parameters: Vec<String> = t["Parameters"]
            .as_mapping()
            .map(|m| {
                m.iter()
                    .filter(|(name, p)| {
                        let name = name.as_str().unwrap_or_default().to_lowercase();
                        p["NoEcho"].as_bool() == Some(true)
                            || ((name.contains("secret") || name.contains("password") || name.contains("token"))
                                && !name.ends_with("parameter"))
                    })
                    .map(|(name, _)| name.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        for (id, function) in resources(&t, "AWS::Serverless::Function") {
            let Some(variables) = function["Properties"]["Environment"]["Variables"].as_mapping() else {
                continue;
            };
            for (name, value) in variables {
                let name = name.as_str().unwrap_or_default();
                let mut refs = Vec::new();
                refs_in(value, &mut refs);
                for r in refs {
                    assert!(
                        !secret_parameters.contains(&r),
                        "{path}: {id}'s {name} carries the secret parameter {r}"
                    );
                }
                if name.contains("SECRET") {
                    assert!(
                        name.ends_with("_PARAMETER"),
                        "{path}: {id}'s {name} looks like a secret value; pass the name of a SecureString instead"
                    );
                }
            }
        }
    }
}

#[test]
fn every_alarm_notifies_someone() {
    for (path, t) in templates() {
        for (id, alarm) in resources(&t, "AWS::CloudWatch::Alarm") {
            let actions = alarm["Properties"]["AlarmActions"].as_sequence();
            assert!(
                actions.is_some_and(|a| !a.is_empty()),
                "{path}: {id} has no AlarmActions"
            );
        }
    }
}

#[test]
fn every_log_group_expires_and_every_function_logs_into_one() {
    for (path, t) in templates() {
        let groups = resources(&t, "AWS::Logs::LogGroup");
        for (id, group) in &groups {
            assert!(
                !group["Properties"]["RetentionInDays"].is_null(),
                "{path}: {id} keeps its logs forever"
            );
        }
        for (id, function) in resources(&t, "AWS::Serverless::Function") {
            let target = referenced(&function["Properties"]["LoggingConfig"]["LogGroup"])
                .unwrap_or_else(|| panic!("{path}: {id} logs into a log group Lambda creates, which never expires"));
            assert!(
                groups.iter().any(|(g, _)| *g == target),
                "{path}: {id} logs into {target}, which is not a log group of the template"
            );
        }
    }
}

#[test]
fn queue_policies_name_the_rules_that_may_send() {
    // A service principal without aws:SourceArn lets any rule of any account's
    // EventBridge send into the queue (the confused deputy).
    for (path, t) in templates() {
        for (id, policy) in resources(&t, "AWS::SQS::QueuePolicy") {
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
                .as_sequence()
                .unwrap()
            {
                if statement["Principal"]["Service"].is_null() {
                    continue;
                }
                let condition = serde_yaml::to_string(&statement["Condition"]).unwrap();
                assert!(
                    condition.contains("aws:SourceArn"),
                    "{path}: {id} has no aws:SourceArn condition"
                );
            }
        }
    }
}

#[test]
fn the_watch_service_rolls_back_a_deployment_that_cannot_start() {
    let t = yaml("infra/watch-server.yaml");
    for (id, service) in resources(&t, "AWS::ECS::Service") {
        let breaker = &service["Properties"]["DeploymentConfiguration"]["DeploymentCircuitBreaker"];
        assert_eq!(
            breaker["Enable"].as_bool(),
            Some(true),
            "{id} has no deployment circuit breaker"
        );
        assert_eq!(breaker["Rollback"].as_bool(), Some(true), "{id} does not roll back");
    }
}

#[test]
fn the_table_uses_the_free_aws_owned_key() {
    // SSEEnabled: true selects the AWS-managed KMS key, billed per request.
    let t = yaml("template.yaml");
    for (id, table) in resources(&t, "AWS::DynamoDB::Table") {
        assert_ne!(
            table["Properties"]["SSESpecification"]["SSEEnabled"].as_bool(),
            Some(true),
            "{id} pays KMS per request for encryption at rest"
        );
    }
}

#[test]
fn every_cognito_verifier_declares_its_token_type() {
    // Cognito's custom:tenantId reaches ID tokens only (access tokens need a V2
    // pre-token-generation trigger): the stack takes ID tokens, and says so.
    let t = yaml("template.yaml");
    for (id, function) in resources(&t, "AWS::Serverless::Function") {
        let variables = &function["Properties"]["Environment"]["Variables"];
        if !variables["TAGCFG_COGNITO_USER_POOL_ID"].is_null() {
            assert_eq!(
                variables["TAGCFG_TOKEN_USE"].as_str(),
                Some("id"),
                "{id} does not declare the token type"
            );
        }
    }
    let watch = yaml("infra/watch-server.yaml");
    let container = &watch["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0];
    let declared = container["Environment"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|v| v["Name"] == "TAGCFG_TOKEN_USE" && v["Value"] == "id");
    assert!(declared, "the watch-server task does not declare the token type");
}

#[test]
fn the_http_api_stage_is_throttled() {
    let t = yaml("template.yaml");
    for (id, api) in resources(&t, "AWS::Serverless::HttpApi") {
        let settings = &api["Properties"]["DefaultRouteSettings"];
        for limit in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
            assert!(
                !settings[limit].is_null(),
                "{id} sets no {limit}: one caller can use the account's whole limit"
            );
        }
    }
}
