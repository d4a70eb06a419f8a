//! The rules that only the deployed shape can show, on every rendering of `template.yaml`
//! that `make validate` writes to `target/rendered` (infra/render-template.py: the SAM
//! transform with each parameter combination, conditions decided). `make test` renders
//! first, so these never run on stale or missing renderings there.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

fn renderings() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/rendered");
    let mut found: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .map(|p| {
                    let text = std::fs::read_to_string(&p).unwrap();
                    (
                        p.file_stem().unwrap().to_string_lossy().into_owned(),
                        serde_json::from_str(&text).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    if found.is_empty() {
        assert!(
            std::env::var_os("TAGCFG_EMULATORS").is_none(),
            "no renderings in {}: `make test` runs `make validate` first",
            dir.display()
        );
        eprintln!(
            "SKIPPED rendered: no renderings in {}; run `make validate`",
            dir.display()
        );
    }
    found
}

fn resources<'t>(t: &'t Value, kind: &str) -> Vec<(&'t String, &'t Value)> {
    t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .collect()
}

#[test]
fn every_parameter_combination_is_rendered() {
    let all = renderings();
    if all.is_empty() {
        return;
    }
    assert_eq!(
        all.len(),
        16,
        "vpc × pool × arch × alarms: {:?}",
        all.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
}

#[test]
fn no_role_holds_a_managed_policy_twice() {
    // With the refresher in a VPC, SAM's own AWSLambdaVPCAccessExecutionRole plus the
    // template's made the same ARN appear twice: CloudFormation refuses such a role.
    for (name, t) in renderings() {
        for (id, role) in resources(&t, "AWS::IAM::Role") {
            let arns: Vec<String> = role["Properties"]["ManagedPolicyArns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| a.to_string())
                .collect();
            let mut unique = arns.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                arns.len(),
                unique.len(),
                "{name}: {id} lists a managed policy twice: {arns:?}"
            );
        }
    }
}

#[test]
fn every_function_an_event_rule_invokes_sends_its_failures_somewhere() {
    for (name, t) in renderings() {
        let mut targeted: Vec<String> = Vec::new();
        for (_, rule) in resources(&t, "AWS::Events::Rule") {
            for target in rule["Properties"]["Targets"].as_array().into_iter().flatten() {
                if let Some(function) = target["Arn"]["Fn::GetAtt"][0].as_str() {
                    targeted.push(function.to_owned());
                }
            }
        }
        let configured: BTreeMap<String, &Value> = resources(&t, "AWS::Lambda::EventInvokeConfig")
            .into_iter()
            .filter_map(|(_, c)| Some((c["Properties"]["FunctionName"]["Ref"].as_str()?.to_owned(), c)))
            .collect();
        assert!(!targeted.is_empty(), "{name}: no rule targets a function");
        for function in targeted {
            let config = configured
                .get(&function)
                .unwrap_or_else(|| panic!("{name}: {function} has no EventInvokeConfig"));
            assert!(
                !config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"].is_null(),
                "{name}: {function}'s failures go nowhere"
            );
        }
    }
}

#[test]
fn in_every_combination_pools_clients_alarms_and_logs_are_as_the_rules_say() {
    for (name, t) in renderings() {
        for (id, pool) in resources(&t, "AWS::Cognito::UserPool") {
            assert_eq!(
                pool["Properties"]["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"], true,
                "{name}: {id} allows self sign-up"
            );
        }
        for (id, client) in resources(&t, "AWS::Cognito::UserPoolClient") {
            let writable = client["Properties"]["WriteAttributes"].as_array();
            assert!(
                writable.is_some_and(|w| !w.is_empty() && !w.iter().any(|a| a == "custom:tenantId")),
                "{name}: {id} lets users write custom:tenantId"
            );
        }
        for (id, alarm) in resources(&t, "AWS::CloudWatch::Alarm") {
            assert!(
                alarm["Properties"]["AlarmActions"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty()),
                "{name}: {id} notifies nobody"
            );
        }
        for (id, group) in resources(&t, "AWS::Logs::LogGroup") {
            assert!(
                !group["Properties"]["RetentionInDays"].is_null(),
                "{name}: {id} never expires"
            );
        }
        for (id, function) in resources(&t, "AWS::Lambda::Function") {
            assert!(
                !function["Properties"]["LoggingConfig"]["LogGroup"].is_null(),
                "{name}: {id} logs into a group Lambda creates (no retention)"
            );
            let variables = function["Properties"]["Environment"]["Variables"].as_object();
            for (variable, _) in variables.into_iter().flatten() {
                assert!(
                    !variable.contains("SECRET") || variable.ends_with("_PARAMETER"),
                    "{name}: {id}'s {variable} looks like a secret in the environment"
                );
            }
        }
        let email = t["Metadata"]["tagcfg:parameters"]["AlarmEmail"].is_string();
        assert_eq!(
            !resources(&t, "AWS::SNS::Subscription").is_empty(),
            email,
            "{name}: the e-mail subscription exists exactly when an address is given"
        );
    }
}

/// The tenant-access role (docs/SECURITY.md, "Tenant-scoped credentials"): where it is
/// deployed, the config-api may assume it only with a tenant session tag, and every grant
/// it holds is bounded by that tag (DynamoDB `LeadingKeys`, SSM path) or is a read of the
/// shared and tier layers. Where it is switched off, the function has no such variable or
/// permission.
#[test]
fn tenant_requests_assume_a_role_that_reaches_only_their_own_tenant() {
    const TENANT_KEYS: &str = "T#${aws:PrincipalTag/tenant}";
    let code = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../adapters/src/aws/scoped.rs"))
        .unwrap();
    assert!(
        code.contains(r#"pub const TENANT_TAG: &str = "tenant";"#),
        "the session tag the code sends is the one the policies read"
    );
    let (mut scoped, mut unscoped) = (0, 0);
    for (name, t) in renderings() {
        let r = &t["Resources"];
        let variable = &r["ConfigApiFunction"]["Properties"]["Environment"]["Variables"]["TAGCFG_TENANT_ROLE_ARN"];
        let function_statements: Vec<&Value> = r["ConfigApiFunctionRole"]["Properties"]["Policies"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap())
            .collect();
        let may_assume: Vec<&&Value> = function_statements
            .iter()
            .filter(|s| s["Action"].to_string().contains("sts:AssumeRole"))
            .collect();
        let role = &r["TenantAccessRole"];
        if role.is_null() {
            unscoped += 1;
            assert_eq!(variable, "", "{name}: no role, no variable");
            assert!(may_assume.is_empty(), "{name}: no role to assume");
            continue;
        }
        scoped += 1;
        let role_arn_suffix = "role/${AWS::StackName}-tenant-access";
        assert_eq!(
            role["Properties"]["RoleName"]["Fn::Sub"], "${AWS::StackName}-tenant-access",
            "{name}"
        );
        assert!(
            variable["Fn::Sub"].as_str().unwrap().ends_with(role_arn_suffix),
            "{name}: {variable}"
        );
        assert_eq!(may_assume.len(), 1, "{name}");
        assert_eq!(
            may_assume[0]["Action"],
            serde_json::json!(["sts:AssumeRole", "sts:TagSession"]),
            "{name}"
        );
        assert!(
            may_assume[0]["Resource"]["Fn::Sub"]
                .as_str()
                .unwrap()
                .ends_with(role_arn_suffix),
            "{name}"
        );

        let trust = &role["Properties"]["AssumeRolePolicyDocument"]["Statement"];
        assert_eq!(trust.as_array().unwrap().len(), 1, "{name}");
        let trust = &trust[0];
        assert_eq!(
            trust["Action"],
            serde_json::json!(["sts:AssumeRole", "sts:TagSession"]),
            "{name}"
        );
        // The config-api's role, and the watch tasks' role where the deployment names it.
        let principals = trust["Condition"]["ArnEquals"]["aws:PrincipalArn"].as_array().unwrap();
        assert_eq!(
            principals[0]["Fn::GetAtt"],
            serde_json::json!(["ConfigApiFunctionRole", "Arn"]),
            "{name}"
        );
        let watch_role = t["Parameters"]["WatchTaskRoleArn"]["Default"]
            .as_str()
            .unwrap_or_default();
        match (name.contains("vpc=on"), &principals[1..]) {
            (true, [watch]) => {
                assert_eq!(watch, &serde_json::json!({"Ref": "WatchTaskRoleArn"}), "{name}");
                assert!(watch_role.contains(":role/"), "{name}: {watch_role}");
            }
            (false, []) => assert_eq!(watch_role, "", "{name}"),
            (_, other) => panic!("{name}: unexpected principals {other:?}"),
        }
        assert_eq!(
            trust["Condition"]["StringLike"]["aws:RequestTag/tenant"], "?*",
            "{name}: untagged sessions refused"
        );

        let statements: Vec<&Value> = role["Properties"]["Policies"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap())
            .collect();
        let actions = |s: &Value| -> Vec<String> {
            match &s["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(list) => list.iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
                _ => Vec::new(),
            }
        };
        let reads_only = |s: &Value| {
            actions(s).iter().all(|a| {
                a.ends_with(":GetItem")
                    || a.ends_with(":BatchGetItem")
                    || a.ends_with(":Query")
                    || a.starts_with("ssm:GetParameter")
            })
        };
        let mut own_writes = 0;
        for s in &statements {
            let service = actions(s)[0].split(':').next().unwrap().to_owned();
            match service.as_str() {
                "dynamodb" => {
                    let condition = &s["Condition"];
                    if reads_only(s) && condition["ForAllValues:StringLike"].is_object() {
                        assert_eq!(
                            condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"],
                            serde_json::json!(["T#_shared", "T#_tier_*"]),
                            "{name}"
                        );
                    } else {
                        assert_eq!(
                            condition["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"],
                            serde_json::json!([TENANT_KEYS]),
                            "{name}: a table grant not bounded by the tenant tag: {s}"
                        );
                        own_writes += 1;
                    }
                }
                "ssm" => {
                    let resources = s["Resource"].to_string();
                    if resources.contains("${!aws:PrincipalTag/tenant}/*") {
                        own_writes += 1;
                    } else {
                        assert!(reads_only(s), "{name}: writes outside the tenant's path: {s}");
                        assert!(
                            resources.contains("/_shared/*") && resources.contains("/_tier_*"),
                            "{name}: {s}"
                        );
                    }
                }
                "kms" => assert_eq!(
                    s["Condition"]["StringEquals"]["kms:ViaService"]["Fn::Sub"], "ssm.${AWS::Region}.amazonaws.com",
                    "{name}"
                ),
                other => panic!("{name}: the tenant role may call {other}"),
            }
        }
        assert_eq!(
            own_writes, 2,
            "{name}: one DynamoDB and one SSM grant of the tenant's own"
        );
    }
    if scoped + unscoped > 0 {
        assert_eq!(
            (scoped, unscoped),
            (8, 8),
            "both values of TenantScopedCredentials rendered"
        );
    }
}
