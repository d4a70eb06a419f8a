//! Keeps `template.yaml` in step with the code: every function's `Binary` is a crate of the
//! workspace; the environment the template sets satisfies each binary's own configuration
//! parser; the stream filter and the EventBridge rule patterns are the ones the code
//! publishes and the end-to-end test uses; each function's policy grants the AWS actions
//! its code calls.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use serde_json::json;
use serde_yaml::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn template() -> Value {
    yaml("template.yaml")
}

fn yaml(path: &str) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(root().join(path)).unwrap()).unwrap()
}

fn functions(t: &Value) -> Vec<(String, &Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(name, r)| {
            (
                r["Metadata"]["BuildProperties"]["Binary"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name:?} has no Binary"))
                    .to_owned(),
                r,
            )
        })
        .collect()
}

/// A template value as the deployed function would see it: plain strings as they are,
/// `!Ref Parameter` as the parameter's default, other intrinsics as a placeholder.
fn resolve(t: &Value, v: &Value, var: &str) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Tagged(tagged) if tagged.tag == "!Ref" => {
            let name = tagged.value.as_str().unwrap();
            match &t["Parameters"][name]["Default"] {
                Value::Null => Some(placeholder(var)),
                d => resolve(t, d, var),
            }
        }
        Value::Tagged(tagged) if tagged.tag == "!If" => {
            // Conditions default to the branch of a stack deployed with default parameters.
            let branches = tagged.value.as_sequence().unwrap();
            let taken = &branches[1];
            match taken {
                Value::Tagged(inner) if inner.tag == "!Ref" && inner.value == "AWS::NoValue" => None,
                other => resolve(t, other, var),
            }
        }
        _ => Some(placeholder(var)),
    }
}

fn placeholder(var: &str) -> String {
    match var {
        "TAGCFG_COGNITO_USER_POOL_ID" => "us-east-1_Placeholder".into(),
        "TAGCFG_SERVICE_SECRET" => "x".repeat(40),
        _ => format!("placeholder-{}", var.to_lowercase()),
    }
}

fn environment(t: &Value, function: &Value) -> HashMap<String, String> {
    function["Properties"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter_map(|(k, v)| {
            let k = k.as_str().unwrap().to_owned();
            resolve(t, v, &k).filter(|v| !v.is_empty()).map(|v| (k, v))
        })
        .collect()
}

#[test]
fn every_binary_is_a_crate_and_its_environment_parses() {
    let t = template();
    let fns = functions(&t);
    let names: BTreeSet<&str> = fns.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["cache-refresher", "config-api", "stream-publisher"])
    );
    for (binary, function) in &fns {
        assert!(
            root().join("crates").join(binary).join("src/main.rs").exists(),
            "{binary} is not a crate with a main.rs"
        );
        let env = environment(&t, function);
        let get = |k: &str| env.get(k).cloned();
        let parsed = match binary.as_str() {
            "config-api" => config_api::ApiConfig::from_lookup(get)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            "stream-publisher" => stream_publisher::PublisherConfig::from_lookup(&get)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            "cache-refresher" => cache_refresher::RefresherConfig::from_lookup(&get)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            other => panic!("no parser known for {other}"),
        };
        assert!(
            parsed.is_ok(),
            "{binary}: the template's environment does not configure it: {}",
            parsed.unwrap_err()
        );
    }
}

fn read_json(path: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(path)).unwrap()).unwrap()
}

/// A YAML pattern as JSON, `!Sub "/${SsmRoot}/"` resolved with the parameter's default.
fn pattern(t: &Value, v: &Value) -> serde_json::Value {
    match v {
        Value::Tagged(tagged) if tagged.tag == "!Sub" => {
            let root = t["Parameters"]["SsmRoot"]["Default"].as_str().unwrap();
            json!(tagged.value.as_str().unwrap().replace("${SsmRoot}", root))
        }
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| (k.as_str().unwrap().to_owned(), pattern(t, v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        Value::Sequence(s) => s.iter().map(|v| pattern(t, v)).collect::<Vec<_>>().into(),
        other => serde_json::to_value(other).unwrap(),
    }
}

#[test]
fn the_stream_filter_and_rule_patterns_match_what_the_code_publishes_and_expects() {
    let t = template();
    let fns = functions(&t);
    let publisher = fns.iter().find(|(b, _)| b == "stream-publisher").unwrap().1;
    let filter = publisher["Properties"]["Events"]["TableStream"]["Properties"]["FilterCriteria"]["Filters"][0]
        ["Pattern"]
        .as_str()
        .unwrap();
    let filter: serde_json::Value = serde_json::from_str(filter).unwrap();
    assert_eq!(
        filter,
        json!({"eventName": ["INSERT"], "dynamodb": {"Keys": {"sk": {"S": [{"prefix": adapters::aws::CHANGE_SK_PREFIX}]}}}})
    );
    let env = environment(&t, publisher);
    let source = env
        .get("TAGCFG_EVENT_SOURCE")
        .cloned()
        .unwrap_or_else(|| "tagcfg".into());

    let refresher = fns.iter().find(|(b, _)| b == "cache-refresher").unwrap().1;
    let events = &refresher["Properties"]["Events"];
    let changed = pattern(&t, &events["ConfigChanged"]["Properties"]["Pattern"]);
    assert_eq!(changed, read_json("infra/eventbridge/config-changed-pattern.json"));
    assert_eq!(
        changed,
        json!({"source": [source], "detail-type": [stream_publisher::DETAIL_TYPE]})
    );
    assert_eq!(changed["detail-type"][0], cache_refresher::CONFIG_CHANGED);
    let ssm = pattern(&t, &events["ParameterStoreChange"]["Properties"]["Pattern"]);
    assert_eq!(ssm, read_json("infra/eventbridge/parameter-store-change-pattern.json"));
    assert_eq!(ssm["detail-type"][0], cache_refresher::PARAMETER_STORE_CHANGE);
}

/// The statements of a function's permissions: its SAM `Policies`, or the policies of the
/// role it names (`Role: !GetAtt SomeRole.Arn`).
fn statements<'t>(t: &'t Value, function: &'t Value) -> Vec<&'t Value> {
    match &function["Properties"]["Role"] {
        Value::Tagged(role) if role.tag == "!GetAtt" => {
            role_statements(t, role.value.as_str().unwrap().trim_end_matches(".Arn"))
        }
        Value::Null => function["Properties"]["Policies"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|policy| policy["Statement"].as_sequence().into_iter().flatten())
            .collect(),
        other => panic!("a role the test cannot read: {other:?}"),
    }
}

/// The statements of an `AWS::IAM::Role`'s inline policies.
fn role_statements<'t>(t: &'t Value, role: &str) -> Vec<&'t Value> {
    let policies = t["Resources"][role]["Properties"]["Policies"].as_sequence();
    policies
        .into_iter()
        .flatten()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_sequence().into_iter().flatten())
        .collect()
}

fn actions(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(a) => vec![a.clone()],
        Value::Sequence(list) => list.iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
        _ => Vec::new(),
    }
}

/// The AWS actions a function may call.
fn granted(t: &Value, function: &Value) -> BTreeSet<String> {
    statements(t, function).into_iter().flat_map(actions).collect()
}

/// Every `.rs` file at `path` (a file, or a directory read recursively), concatenated.
fn sources(path: &std::path::Path) -> String {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        entries.iter().map(|p| sources(p)).collect()
    } else if path.extension().is_some_and(|e| e == "rs") {
        std::fs::read_to_string(path).unwrap()
    } else {
        String::new()
    }
}

/// SDK calls found in a source file or directory (`.get_item()` → `dynamodb:GetItem`, …),
/// as the IAM actions that authorise them.
fn calls(path: &str, service: &str, methods: &[(&str, &[&str])]) -> BTreeSet<String> {
    let source = sources(&root().join(path));
    assert!(!source.is_empty(), "no Rust source at {path}");
    methods
        .iter()
        .filter(|(method, _)| source.contains(&format!(".{method}()")))
        .flat_map(|(_, actions)| actions.iter().map(move |action| format!("{service}:{action}")))
        .collect()
}

/// A transaction is authorised item by item: IAM has no `TransactWriteItems` action.
const TRANSACT_WRITE: &[&str] = &["PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"];

const DYNAMODB: &[(&str, &[&str])] = &[
    ("get_item", &["GetItem"]),
    ("batch_get_item", &["BatchGetItem"]),
    ("query", &["Query"]),
    ("transact_write_items", TRANSACT_WRITE),
];
const SSM: &[(&str, &[&str])] = &[
    ("get_parameter", &["GetParameter"]),
    ("get_parameters", &["GetParameters"]),
    ("get_parameters_by_path", &["GetParametersByPath"]),
    ("get_parameter_history", &["GetParameterHistory"]),
    ("put_parameter", &["PutParameter"]),
    ("delete_parameter", &["DeleteParameter"]),
];

#[test]
fn each_policy_grants_the_actions_its_code_calls() {
    let t = template();
    let fns: HashMap<String, &Value> = functions(&t).into_iter().collect();
    // config-api runs the whole store.
    let mut needed = calls("crates/adapters/src/aws/dynamodb", "dynamodb", DYNAMODB);
    needed.extend(calls("crates/adapters/src/aws/ssm.rs", "ssm", SSM));
    assert!(needed.len() >= 9, "the scan found the store's calls: {needed:?}");
    let missing: Vec<_> = needed.difference(&granted(&t, fns["config-api"])).cloned().collect();
    assert!(missing.is_empty(), "config-api's policy lacks {missing:?}");
    // stream-publisher sends events.
    let needed = calls(
        "crates/stream-publisher/src/lib.rs",
        "events",
        &[("put_events", &["PutEvents"])],
    );
    assert_eq!(needed, BTreeSet::from(["events:PutEvents".to_owned()]));
    // ...and its event source mapping reads the table's stream with the function's role.
    let mut needed = needed;
    needed.extend(["DescribeStream", "GetRecords", "GetShardIterator", "ListStreams"].map(|a| format!("dynamodb:{a}")));
    let missing: Vec<_> = needed
        .difference(&granted(&t, fns["stream-publisher"]))
        .cloned()
        .collect();
    assert!(missing.is_empty(), "stream-publisher's role lacks {missing:?}");
    // cache-refresher: discovery, plus the ingestion path (read the parameter and the
    // pointer, append with a transaction).
    let mut needed = calls(
        "crates/cache-refresher/src/lib.rs",
        "servicediscovery",
        &[("discover_instances", &["DiscoverInstances"])],
    );
    needed.extend(["dynamodb:GetItem", "ssm:GetParameter"].map(String::from));
    needed.extend(TRANSACT_WRITE.iter().map(|a| format!("dynamodb:{a}")));
    let missing: Vec<_> = needed
        .difference(&granted(&t, fns["cache-refresher"]))
        .cloned()
        .collect();
    assert!(missing.is_empty(), "cache-refresher's policy lacks {missing:?}");
}

#[test]
fn the_watch_server_task_is_configured_by_its_environment() {
    let t = yaml("infra/watch-server.yaml");
    let container = &t["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0];
    // The image's entrypoint is the binary (crates/watch-server/Dockerfile); the task adds
    // no command, and listens where the image says.
    assert!(
        container["Command"].is_null(),
        "the task overrides the image's entrypoint"
    );
    let dockerfile = std::fs::read_to_string(root().join("crates/watch-server/Dockerfile")).unwrap();
    let instruction = |word: &str| -> Vec<String> {
        dockerfile
            .lines()
            .filter_map(|l| l.strip_prefix(word).map(|rest| rest.trim().to_owned()))
            .collect()
    };
    assert_eq!(instruction("ENTRYPOINT "), vec![r#"["/watch-server"]"#.to_owned()]);
    assert_eq!(
        instruction("EXPOSE "),
        vec![format!(
            "{}/tcp",
            container["PortMappings"][0]["ContainerPort"].as_u64().unwrap()
        )]
    );
    let mut env: HashMap<String, String> = HashMap::new();
    for variable in container["Environment"].as_sequence().unwrap() {
        let name = variable["Name"].as_str().unwrap();
        if let Some(value) = resolve(&t, &variable["Value"], name) {
            env.insert(name.to_owned(), value);
        }
    }
    // Secrets arrive as variables too, their values from Parameter Store.
    for secret in container["Secrets"].as_sequence().unwrap() {
        let name = secret["Name"].as_str().unwrap();
        env.insert(name.to_owned(), placeholder(name));
    }
    let config = watch_server::Config::from_lookup(&|k: &str| env.get(k).cloned())
        .unwrap_or_else(|e| panic!("the task's environment does not configure the watch server: {e}"));
    // Tenant-scoped reads: off by default (an empty role), and the task may assume exactly
    // the role the stack is given, only when it is given one.
    assert!(
        config.tenant_role.is_none(),
        "no tenant role unless the stack names one"
    );
    let role_variable = container["Environment"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["Name"] == "TAGCFG_TENANT_ROLE_ARN")
        .expect("the task passes TAGCFG_TENANT_ROLE_ARN");
    assert_eq!(
        role_variable["Value"],
        Value::Tagged(Box::new(serde_yaml::value::TaggedValue {
            tag: serde_yaml::value::Tag::new("Ref"),
            value: Value::String("TenantAccessRoleArn".into()),
        }))
    );
    let task_statements = role_statements(&t, "TaskRole");
    let assume: Vec<&&Value> = task_statements
        .iter()
        .filter(|s| matches!(s, Value::Tagged(tagged) if tagged.tag == "If"))
        .collect();
    assert_eq!(assume.len(), 1, "one conditional AssumeRole grant");
    let Value::Tagged(tagged) = assume[0] else {
        unreachable!()
    };
    let branches = tagged.value.as_sequence().unwrap();
    assert_eq!(branches[0], "ScopeTenantReads");
    assert_eq!(actions(&branches[1]), vec!["sts:AssumeRole", "sts:TagSession"]);
    assert!(
        config.addr.ip().is_unspecified(),
        "a task must listen on every interface"
    );
    assert_eq!(
        Some(u64::from(config.addr.port())),
        container["PortMappings"][0]["ContainerPort"].as_u64()
    );

    // The cache-refresher of a default API stack looks for these tasks where this stack
    // registers them, on the port they listen on (A records carry no port).
    let api = template();
    let refresher = functions(&api)
        .into_iter()
        .find(|(b, _)| b == "cache-refresher")
        .unwrap()
        .1;
    let refresher_env = environment(&api, refresher);
    let refresher_config = cache_refresher::RefresherConfig::from_lookup(&|k: &str| refresher_env.get(k).cloned())
        .unwrap_or_else(|e| panic!("{e}"));
    // The task reads what the Hub reads (heads and change log, batch gets), SecureStrings included.
    let task_role: BTreeSet<String> = role_statements(&t, "TaskRole").into_iter().flat_map(actions).collect();
    let mut needed = calls("crates/adapters/src/aws/dynamodb", "dynamodb", DYNAMODB);
    for write in TRANSACT_WRITE {
        needed.remove(&format!("dynamodb:{write}")); // the task only reads
    }
    needed.extend(["ssm:GetParameter", "ssm:GetParameters", "kms:Decrypt"].map(String::from));
    let missing: Vec<_> = needed.difference(&task_role).cloned().collect();
    assert!(missing.is_empty(), "the watch-server task role lacks {missing:?}");

    let registered = &t["Resources"]["DiscoveryService"]["Properties"];
    assert_eq!(registered["DnsConfig"]["DnsRecords"][0]["Type"], "A");
    assert_eq!(
        refresher_config.discovery,
        cache_refresher::Discovery::CloudMap {
            namespace: t["Parameters"]["NamespaceName"]["Default"].as_str().unwrap().to_owned(),
            service: t["Parameters"]["ServiceName"]["Default"].as_str().unwrap().to_owned(),
            default_port: config.addr.port(),
        }
    );
}

#[test]
fn permissions_are_scoped_to_the_stacks_resources() {
    let t = template();
    // IAM has no resource to name for these.
    let resourceless = BTreeSet::from(["servicediscovery:DiscoverInstances".to_owned()]);
    for (binary, function) in functions(&t) {
        for statement in statements(&t, function) {
            if statement["Resource"] == "*" {
                let wide: BTreeSet<String> = actions(statement).into_iter().collect();
                assert!(
                    wide.is_subset(&resourceless),
                    "{binary} may call {wide:?} on every resource"
                );
            }
        }
        // With `Policies`, SAM attaches AWSLambdaDynamoDBExecutionRole for a stream source: it
        // reads every stream in the account. Such a function needs a role of its own.
        let mut events = function["Properties"]["Events"].as_mapping().into_iter().flatten();
        if events.any(|(_, e)| e["Type"] == "DynamoDB") {
            assert!(
                matches!(function["Properties"]["Role"], Value::Tagged(_)),
                "{binary} reads a stream with SAM's account-wide policy"
            );
        }
    }
}

/// Every operation of the OpenAPI document (the router's contract) is a route of the HTTP
/// API, and the other way round: a route the code serves but API Gateway lacks would be a
/// 404 only on AWS.
#[test]
fn the_http_api_routes_every_operation_of_the_openapi_document() {
    let openapi: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("crates/http-api/openapi.json")).unwrap()).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in openapi["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete"] {
            if item.get(method).is_some() {
                // API Gateway's greedy path variable for keys with slashes, which also
                // carries `/history`.
                let path = path
                    .replace("{key}/history", "{key}")
                    .replace("{key}:revert", "{key}")
                    .replace("{key}", "{key+}")
                    .replace("{path}", "{path+}");
                // API Gateway allows no `:` in a route's path parts: a custom method
                // (`/v1/config:batchGet`) is routed by a path variable whose value has it.
                let path: Vec<&str> = path
                    .split('/')
                    .map(|part| if part.contains(':') { "{operation}" } else { part })
                    .collect();
                documented.insert(format!("{} {}", method.to_uppercase(), path.join("/")));
            }
        }
    }
    let t = template();
    let mut routed = BTreeSet::new();
    for (_, function) in functions(&t) {
        for (_, event) in function["Properties"]["Events"].as_mapping().into_iter().flatten() {
            if event["Type"] == "HttpApi" {
                let p = &event["Properties"];
                routed.insert(format!(
                    "{} {}",
                    p["Method"].as_str().unwrap(),
                    p["Path"].as_str().unwrap()
                ));
            }
        }
    }
    assert_eq!(documented, routed, "OpenAPI operations vs template.yaml HttpApi routes");
}

/// What API Gateway (HTTP APIs) accepts as a path part: a literal of `[a-zA-Z0-9._-]`, or
/// one (greedy) path variable. It refuses anything else when the stack is created, so a
/// route like `/v1/config:batchGet` passed every linter and would have failed on AWS.
#[test]
fn every_route_path_part_is_one_api_gateway_accepts() {
    let valid_part = |part: &str| {
        let literal = !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        let variable = part
            .strip_prefix('{')
            .and_then(|p| p.strip_suffix('}'))
            .map(|name| name.strip_suffix('+').unwrap_or(name))
            .is_some_and(|name| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            });
        literal || variable
    };
    let t = template();
    for (binary, function) in functions(&t) {
        for (name, event) in function["Properties"]["Events"].as_mapping().into_iter().flatten() {
            if event["Type"] == "HttpApi" {
                let path = event["Properties"]["Path"].as_str().unwrap();
                for part in path.trim_start_matches('/').split('/') {
                    assert!(
                        valid_part(part),
                        "{binary} {name:?}: API Gateway refuses the path part '{part}' of {path}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_template_table_is_the_tests_table() {
    let t = template();
    let table = &t["Resources"]["ConfigTable"]["Properties"];
    let definition: serde_json::Value =
        serde_json::from_str(adapters::aws::table::TABLE_DEFINITION).expect("config-table.json is JSON");
    let as_json = |v: &Value| serde_json::to_value(v).unwrap();
    for field in [
        "AttributeDefinitions",
        "KeySchema",
        "LocalSecondaryIndexes",
        "BillingMode",
    ] {
        assert_eq!(
            as_json(&table[field]),
            definition[field],
            "ConfigTable.{field} differs from config-table.json"
        );
    }
    assert_eq!(
        as_json(&table["StreamSpecification"]["StreamViewType"]),
        definition["StreamSpecification"]["StreamViewType"]
    );
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some(adapters::aws::table::TTL_ATTRIBUTE)
    );
    // The history index is the one the store queries, and config-api may query it.
    let index = &definition["LocalSecondaryIndexes"][0];
    assert_eq!(index["IndexName"], adapters::aws::HISTORY_INDEX);
    let config_api = functions(&t).into_iter().find(|(b, _)| b == "config-api").unwrap().1;
    let index_arn = format!("${{ConfigTable.Arn}}/index/{}", adapters::aws::HISTORY_INDEX);
    let may_query_index = statements(&t, config_api).into_iter().any(|statement| {
        actions(statement).iter().any(|a| a == "dynamodb:Query")
            && serde_yaml::to_string(&statement["Resource"])
                .unwrap()
                .contains(&index_arn)
    });
    assert!(
        may_query_index,
        "config-api's policy does not allow Query on {index_arn}"
    );
}

/// The cache-refresher's worst case fits its function timeout: two AWS calls one after the
/// other, each bounded by `TAGCFG_AWS_TIMEOUT_MS` (retries included), then the refreshes,
/// bounded by `TAGCFG_REFRESH_TIMEOUT_MS`.
#[test]
fn the_refreshers_deadlines_fit_its_function_timeout() {
    let t = template();
    let refresher = functions(&t)
        .into_iter()
        .find(|(b, _)| b == "cache-refresher")
        .unwrap()
        .1;
    let timeout_secs = refresher["Properties"]["Timeout"]
        .as_u64()
        .or_else(|| t["Globals"]["Function"]["Timeout"].as_u64())
        .expect("a function timeout");
    let env = environment(&t, refresher);
    let config = cache_refresher::RefresherConfig::from_lookup(&|k: &str| env.get(k).cloned()).unwrap();
    let worst = config.aws_timeout * 2 + config.timeout;
    assert!(
        worst < std::time::Duration::from_secs(timeout_secs),
        "2 × {:?} + {:?} does not fit the {timeout_secs} s function timeout",
        config.aws_timeout,
        config.timeout
    );
}

/// The watch stack reads the store with the API stack's SSM root and routing table: same
/// defaults, passed to the task, and exported by the API stack for the deploy command.
#[test]
fn the_watch_stack_routes_keys_as_the_api_stack_does() {
    let api = template();
    let watch = yaml("infra/watch-server.yaml");
    let container = &watch["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0];
    for (parameter, variable) in [("SsmRoot", "TAGCFG_SSM_ROOT"), ("Routes", "TAGCFG_ROUTES")] {
        assert_eq!(
            api["Parameters"][parameter]["Default"], watch["Parameters"][parameter]["Default"],
            "{parameter}: the stacks' defaults differ"
        );
        let passed = container["Environment"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|v| v["Name"] == variable && serde_yaml::to_string(&v["Value"]).unwrap().contains(parameter));
        assert!(passed, "the watch task does not set {variable} from {parameter}");
        assert!(
            !api["Outputs"][parameter].is_null(),
            "the API stack does not output {parameter}"
        );
    }
}
