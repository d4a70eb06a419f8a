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
