//! Property tests of the key grammar.

use proptest::prelude::*;
use tagged_routing::{RoutingTable, MAX_NAME_LEN};

fn table() -> RoutingTable {
    RoutingTable::parse("tenant_config_=dynamodb,param_config_=ssm,tenant_=ssm-secure").unwrap()
}

proptest! {
    /// Any string at all: whatever is accepted round-trips and is safe as a path.
    #[test]
    fn accepted_keys_round_trip_and_have_no_dot_segments(raw in "(tenant_config_|param_config_|tenant_|x_)?[A-Za-z0-9._/\\-]{0,40}") {
        if let Ok(key) = table().parse_key(&raw) {
            prop_assert_eq!(key.as_str(), raw.as_str());
            prop_assert_eq!(format!("{}{}", key.tag(), key.name()), raw.clone());
            prop_assert!(!key.name().is_empty() && key.name().len() <= MAX_NAME_LEN);
            for segment in key.name().split('/') {
                prop_assert!(segment != ".." && segment != "." && !segment.is_empty());
            }
            prop_assert!(key.as_str().starts_with(key.tag().as_str()));
            // Re-parsing the key's text gives the same key (same tag, same backend).
            prop_assert_eq!(table().parse_key(key.as_str()).unwrap(), key);
        }
    }

    /// Well-formed names are always accepted, and the longest tag is chosen.
    #[test]
    fn well_formed_names_are_accepted(segments in prop::collection::vec("[A-Za-z0-9_-][A-Za-z0-9._-]{0,10}", 1..6)) {
        let name = segments.join("/");
        prop_assume!(name.len() <= MAX_NAME_LEN);
        let key = table().parse_key(&format!("tenant_config_{name}")).unwrap();
        prop_assert_eq!(key.tag().as_str(), "tenant_config_");
        prop_assert_eq!(key.name(), name.as_str());
    }

    /// A `..` segment anywhere is refused.
    #[test]
    fn dot_dot_segments_are_refused(before in "[a-z]{1,5}(/[a-z]{1,5}){0,2}", after in "[a-z]{1,5}(/[a-z]{1,5}){0,2}") {
        let t = table();
        let dotdot_first = format!("tenant_config_../{after}");
        let dotdot_middle = format!("tenant_config_{before}/../{after}");
        let dotdot_last = format!("tenant_config_{before}/..");
        prop_assert!(t.parse_key(&dotdot_first).is_err());
        prop_assert!(t.parse_key(&dotdot_middle).is_err());
        prop_assert!(t.parse_key(&dotdot_last).is_err());
    }
}
