//! Linearizability of the HTTP API, checked per key against a versioned register.
//!
//! [`record`] drives concurrent clients over a few keys (GET; PUT with and without
//! `If-Match`; DELETE with and without `If-Match`) and keeps each operation's call and
//! return times and what it answered. [`check`] then searches each key's history for a
//! linearization — one order of the operations, consistent with real time, in which every
//! answer is what the register would have answered — with the Wing & Gong / Lowe search
//! and a cache of (operations linearized, state) pairs, as Porcupine does. Keys are
//! independent (P-compositionality), so each is searched alone.
//!
//! An operation whose outcome is unknown (a transport error, an unexpected status) may
//! have taken effect or not: its return is placed at the end of time and both outcomes are
//! tried. A `429` is retried and left out of the history: the runs here inject no backend
//! faults, so every `429` is a tenant rate limit, refused before any store is touched.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a client asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Get,
    /// PUT of a value no other operation writes; `if_match` is a tenant-layer version.
    Put {
        value: u64,
        if_match: Option<u64>,
    },
    Delete {
        if_match: Option<u64>,
    },
}

/// What the server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// GET 200.
    Value { value: u64, version: u64 },
    /// GET 404.
    Missing,
    /// PUT 200/201 with the version written.
    Written { version: u64 },
    /// DELETE 204.
    Deleted,
    /// DELETE 404.
    NotFound,
    /// 412: the `If-Match` version was not the current one (or a create-only key existed).
    Mismatch,
    /// 409 `conflict` to a write: other writers of the tenant kept winning and the server
    /// says it wrote nothing (a claim the check holds it to).
    NotApplied,
    /// Anything else: the operation may or may not have taken effect.
    Unknown,
}

/// One operation of a history: times in nanoseconds since the history began.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub client: usize,
    pub key: usize,
    pub call: Call,
    pub answer: Answer,
    pub called: u64,
    pub returned: u64,
}

/// The register: the value and its version, or nothing.
type State = Option<(u64, u64)>;

/// The states `op` may leave when applied to `state`, if its answer is possible there.
fn step(state: State, op: &Operation) -> Vec<State> {
    let version = state.map(|(_, v)| v);
    match (op.call, op.answer) {
        (Call::Get, Answer::Value { value, version: v }) if state == Some((value, v)) => vec![state],
        (Call::Get, Answer::Missing) if state.is_none() => vec![state],
        (Call::Get, Answer::Unknown) => vec![state],
        (Call::Put { value, if_match }, answer) => {
            let passes = if_match.is_none_or(|expected| version == Some(expected));
            let next = version.map_or(1, |v| v + 1);
            match answer {
                Answer::Written { version: v } if passes && v == next => vec![Some((value, next))],
                Answer::Mismatch if !passes => vec![state],
                Answer::NotApplied => vec![state],
                Answer::Unknown if passes => vec![state, Some((value, next))],
                Answer::Unknown => vec![state],
                _ => Vec::new(),
            }
        }
        (Call::Delete { if_match }, answer) => {
            let passes = state.is_some() && if_match.is_none_or(|expected| version == Some(expected));
            match answer {
                Answer::Deleted if passes => vec![None],
                Answer::NotFound if state.is_none() => vec![state],
                Answer::Mismatch if state.is_some() && !passes => vec![state],
                Answer::NotApplied => vec![state],
                Answer::Unknown if passes => vec![state, None],
                Answer::Unknown => vec![state],
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

/// A key whose history has no linearization.
#[derive(Debug, Clone)]
pub struct Anomaly {
    pub key: usize,
    pub operations: usize,
    /// The most operations any attempted order explained before it got stuck.
    pub explained: usize,
    /// The first operation no order could place next, at that point.
    pub stuck_at: Option<Operation>,
}

/// Checks every key's history; the anomalies found (none when linearizable).
pub fn check(history: &[Operation]) -> Vec<Anomaly> {
    let mut keys: Vec<usize> = history.iter().map(|o| o.key).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let ops: Vec<Operation> = history.iter().filter(|o| o.key == key).copied().collect();
            check_key(&ops).err().map(|(explained, stuck_at)| Anomaly {
                key,
                operations: ops.len(),
                explained,
                stuck_at,
            })
        })
        .collect()
}

const NIL: usize = usize::MAX;

/// Lowe's search over one key's operations: a doubly linked list of call and return
/// entries in time order; linearizing an operation lifts both its entries out, a dead end
/// puts the last one back and tries its next possible outcome or the next operation.
fn check_key(ops: &[Operation]) -> Result<(), (usize, Option<Operation>)> {
    // Entries: 2*i is operation i's call, 2*i+1 its return. At equal times calls come
    // first: two operations that touch in time may be concurrent.
    let mut order: Vec<usize> = (0..ops.len() * 2).collect();
    let time = |e: usize| {
        if e & 1 == 0 {
            ops[e / 2].called
        } else {
            ops[e / 2].returned
        }
    };
    order.sort_by_key(|&e| (time(e), e & 1));
    // Node 0 is the head; entry e is node e + 1.
    let nodes = order.len() + 1;
    let (mut next, mut prev) = (vec![NIL; nodes], vec![NIL; nodes]);
    let mut last = 0;
    for &e in &order {
        next[last] = e + 1;
        prev[e + 1] = last;
        last = e + 1;
    }
    let lift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, node: usize| {
        next[prev[node]] = next[node];
        if next[node] != NIL {
            prev[next[node]] = prev[node];
        }
    };
    let unlift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, node: usize| {
        next[prev[node]] = node;
        if next[node] != NIL {
            prev[next[node]] = node;
        }
    };

    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut stack: Vec<(usize, State, usize)> = Vec::new();
    let mut state: State = None;
    let mut node = next[0];
    let mut first_outcome = 0;
    let (mut best, mut stuck) = (0usize, None);
    while next[0] != NIL {
        if node == NIL {
            return Err((best, stuck));
        }
        let entry = node - 1;
        let op = entry / 2;
        if entry & 1 == 0 {
            let mut placed = false;
            for (outcome, after) in step(state, &ops[op]).into_iter().enumerate().skip(first_outcome) {
                linearized[op / 64] |= 1 << (op % 64);
                if seen.insert((linearized.clone(), after)) {
                    stack.push((node, state, outcome));
                    state = after;
                    lift(&mut next, &mut prev, node);
                    lift(&mut next, &mut prev, node + 1);
                    node = next[0];
                    placed = true;
                    break;
                }
                linearized[op / 64] &= !(1 << (op % 64));
            }
            first_outcome = 0;
            if !placed {
                node = next[node];
            }
        } else {
            // A return reached before its call was placed: something earlier must move.
            if stack.len() >= best {
                best = stack.len();
                stuck = Some(ops[op]);
            }
            let Some((call_node, before, outcome)) = stack.pop() else {
                return Err((best, stuck));
            };
            let call_op = (call_node - 1) / 2;
            linearized[call_op / 64] &= !(1 << (call_op % 64));
            unlift(&mut next, &mut prev, call_node + 1);
            unlift(&mut next, &mut prev, call_node);
            state = before;
            node = call_node;
            first_outcome = outcome + 1;
        }
    }
    Ok(())
}

/// How [`record`] drives the server.
#[derive(Debug, Clone)]
pub struct Workload {
    pub clients: usize,
    pub keys: Vec<String>,
    /// Operations in all (429s excluded).
    pub operations: usize,
    /// Seeds each client's choices, so a run can be repeated.
    pub seed: u64,
}

/// What a recorded and checked history held.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub operations: usize,
    pub keys: usize,
    pub clients: usize,
    pub refused_429: usize,
    pub unknown: usize,
    /// Writes answered 409 `conflict` (contention: nothing written).
    pub not_applied: usize,
    /// Writes answered 412.
    pub mismatched: usize,
    pub anomalies: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "{} operations on {} keys from {} clients ({} answered 412, {} answered 409 under contention, {} answered 429 and retried, {} unknown outcomes): {} anomalies",
            self.operations,
            self.keys,
            self.clients,
            self.mismatched,
            self.not_applied,
            self.refused_429,
            self.unknown,
            self.anomalies
        )
    }
}

/// A small deterministic generator for the clients' choices.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Runs `workload` against the HTTP API at `http_url` as `token`'s tenant and returns the
/// history (429s retried after a pause and left out).
pub async fn record(http_url: &str, token: &str, workload: &Workload) -> (Vec<Operation>, usize) {
    let http = tenant_auth::http_client(Duration::from_secs(10)).expect("an HTTP client");
    let began = Instant::now();
    let per_client = workload.operations.div_ceil(workload.clients);
    let shared = Arc::new((http, http_url.to_owned(), token.to_owned(), workload.keys.clone()));
    let mut tasks = Vec::new();
    for client in 0..workload.clients {
        let shared = shared.clone();
        let seed = workload
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(client as u64 + 1)
            | 1;
        tasks.push(tokio::spawn(async move {
            let (http, url, token, keys) = &*shared;
            let mut rng = XorShift(seed);
            let mut history = Vec::with_capacity(per_client);
            let mut refused = 0;
            let mut last_seen: Vec<Option<u64>> = vec![None; keys.len()];
            let mut seq = 0u64;
            while history.len() < per_client {
                let key = rng.below(keys.len() as u64) as usize;
                let guess = || last_seen[key].or(Some(1));
                let call = match rng.below(10) {
                    0..=3 => Call::Get,
                    4..=5 => Call::Put {
                        value: 0,
                        if_match: None,
                    },
                    6..=7 => Call::Put {
                        value: 0,
                        if_match: guess(),
                    },
                    8 => Call::Delete { if_match: None },
                    _ => Call::Delete { if_match: guess() },
                };
                let call = match call {
                    Call::Put { if_match, .. } => {
                        seq += 1;
                        Call::Put {
                            value: (client as u64 + 1) * 1_000_000_000 + seq,
                            if_match,
                        }
                    }
                    other => other,
                };
                let called = began.elapsed().as_nanos() as u64;
                let answer = send(http, url, token, &keys[key], call).await;
                let returned = began.elapsed().as_nanos() as u64;
                let answer = match answer {
                    Sent::Refused => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    Sent::Answered(a) => a,
                };
                match answer {
                    Answer::Value { version, .. } | Answer::Written { version } => last_seen[key] = Some(version),
                    Answer::Missing | Answer::Deleted | Answer::NotFound => last_seen[key] = None,
                    _ => {}
                }
                let returned = if answer == Answer::Unknown { u64::MAX } else { returned };
                history.push(Operation {
                    client,
                    key,
                    call,
                    answer,
                    called,
                    returned,
                });
            }
            (history, refused)
        }));
    }
    let mut history = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (ops, r) = task.await.expect("a client task");
        history.extend(ops);
        refused += r;
    }
    (history, refused)
}

enum Sent {
    Answered(Answer),
    Refused,
}

async fn send(http: &reqwest::Client, url: &str, token: &str, key: &str, call: Call) -> Sent {
    let address = format!("{url}/v1/config/{key}");
    let request = match call {
        Call::Get => http.get(&address),
        Call::Put { value, if_match } => {
            let put = http
                .put(&address)
                .header("content-type", "application/json")
                .body(value.to_string());
            match if_match {
                Some(v) => put.header("if-match", format!("\"{v}\"")),
                None => put,
            }
        }
        Call::Delete { if_match } => {
            let delete = http.delete(&address);
            match if_match {
                Some(v) => delete.header("if-match", format!("\"{v}\"")),
                None => delete,
            }
        }
    };
    let Ok(response) = request.bearer_auth(token).send().await else {
        return Sent::Answered(Answer::Unknown);
    };
    let status = response.status().as_u16();
    if status == 429 {
        return Sent::Refused;
    }
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let number = |field: &str| body.get(field).and_then(serde_json::Value::as_u64);
    Sent::Answered(match (call, status) {
        (Call::Get, 200) => match (number("value"), number("version")) {
            (Some(value), Some(version)) => Answer::Value { value, version },
            _ => Answer::Unknown,
        },
        (Call::Get, 404) => Answer::Missing,
        (Call::Put { .. }, 200 | 201) => {
            number("version").map_or(Answer::Unknown, |version| Answer::Written { version })
        }
        (Call::Delete { .. }, 204) => Answer::Deleted,
        (Call::Delete { .. }, 404) => Answer::NotFound,
        (Call::Put { .. } | Call::Delete { .. }, 412) => Answer::Mismatch,
        (Call::Put { .. } | Call::Delete { .. }, 409) if body["code"] == "conflict" => Answer::NotApplied,
        _ => {
            eprintln!("an unknown outcome: {status} {body}");
            Answer::Unknown
        }
    })
}

/// [`record`] then [`check`]: the report, with every anomaly printed.
pub async fn record_and_check(http_url: &str, token: &str, workload: &Workload) -> Report {
    let (history, refused_429) = record(http_url, token, workload).await;
    let anomalies = check(&history);
    for anomaly in &anomalies {
        eprintln!(
            "not linearizable: key {} ({}): {anomaly:?}",
            anomaly.key, workload.keys[anomaly.key]
        );
        // The operations on that key around the one no order could place, for the reader.
        if let Some(stuck) = anomaly.stuck_at {
            let window = 200_000_000;
            let mut near: Vec<&Operation> = history
                .iter()
                .filter(|o| {
                    o.key == anomaly.key
                        && o.returned.saturating_add(window) >= stuck.called
                        && o.called <= stuck.returned.saturating_add(window)
                })
                .collect();
            near.sort_by_key(|o| o.called);
            for o in near {
                eprintln!("  {o:?}");
            }
        }
    }
    Report {
        operations: history.len(),
        keys: workload.keys.len(),
        clients: workload.clients,
        refused_429,
        unknown: history.iter().filter(|o| o.answer == Answer::Unknown).count(),
        not_applied: history.iter().filter(|o| o.answer == Answer::NotApplied).count(),
        mismatched: history.iter().filter(|o| o.answer == Answer::Mismatch).count(),
        anomalies: anomalies.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, call: Call, answer: Answer, called: u64, returned: u64) -> Operation {
        Operation {
            client,
            key: 0,
            call,
            answer,
            called,
            returned,
        }
    }

    fn put(value: u64) -> Call {
        Call::Put { value, if_match: None }
    }

    #[test]
    fn a_sequential_history_that_follows_the_register_is_linearizable() {
        let h = [
            op(0, Call::Get, Answer::Missing, 0, 1),
            op(0, put(7), Answer::Written { version: 1 }, 2, 3),
            op(1, Call::Get, Answer::Value { value: 7, version: 1 }, 4, 5),
            op(
                1,
                Call::Put {
                    value: 8,
                    if_match: Some(1),
                },
                Answer::Written { version: 2 },
                6,
                7,
            ),
            op(0, Call::Delete { if_match: Some(1) }, Answer::Mismatch, 8, 9),
            op(0, Call::Delete { if_match: Some(2) }, Answer::Deleted, 10, 11),
            op(1, Call::Delete { if_match: None }, Answer::NotFound, 12, 13),
        ];
        assert!(check(&h).is_empty());
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_an_anomaly() {
        let h = [
            op(0, put(7), Answer::Written { version: 1 }, 0, 1),
            op(0, put(8), Answer::Written { version: 2 }, 2, 3),
            op(1, Call::Get, Answer::Value { value: 7, version: 1 }, 4, 5),
        ];
        let found = check(&h);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].operations, 3);
        assert_eq!(found[0].explained, 2, "{found:?}");
    }

    #[test]
    fn a_read_concurrent_with_a_write_may_see_either_side() {
        for seen in [Answer::Missing, Answer::Value { value: 7, version: 1 }] {
            let h = [
                op(0, put(7), Answer::Written { version: 1 }, 0, 10),
                op(1, Call::Get, seen, 2, 5),
            ];
            assert!(check(&h).is_empty(), "{seen:?}");
        }
        // Two reads by one client inside the write cannot go back in time.
        let h = [
            op(0, put(7), Answer::Written { version: 1 }, 0, 10),
            op(1, Call::Get, Answer::Value { value: 7, version: 1 }, 2, 3),
            op(1, Call::Get, Answer::Missing, 4, 5),
        ];
        assert_eq!(check(&h).len(), 1);
    }

    #[test]
    fn two_conditional_writes_of_one_version_cannot_both_win() {
        let both = [
            op(0, put(1), Answer::Written { version: 1 }, 0, 1),
            op(
                1,
                Call::Put {
                    value: 2,
                    if_match: Some(1),
                },
                Answer::Written { version: 2 },
                2,
                6,
            ),
            op(
                2,
                Call::Put {
                    value: 3,
                    if_match: Some(1),
                },
                Answer::Written { version: 2 },
                3,
                7,
            ),
        ];
        assert_eq!(check(&both).len(), 1);
        let one = [
            both[0],
            both[1],
            op(
                2,
                Call::Put {
                    value: 3,
                    if_match: Some(1),
                },
                Answer::Mismatch,
                3,
                7,
            ),
        ];
        assert!(check(&one).is_empty());
    }

    #[test]
    fn an_unknown_outcome_may_have_taken_effect_or_not() {
        for later in [Answer::Missing, Answer::Value { value: 5, version: 1 }] {
            let h = [
                op(0, put(5), Answer::Unknown, 0, u64::MAX),
                op(1, Call::Get, later, 10, 11),
            ];
            assert!(check(&h).is_empty(), "{later:?}");
        }
        let h = [
            op(0, put(5), Answer::Unknown, 0, u64::MAX),
            op(1, Call::Get, Answer::Value { value: 6, version: 1 }, 10, 11),
        ];
        assert_eq!(check(&h).len(), 1, "a value nobody wrote");
    }

    #[test]
    fn a_write_refused_under_contention_must_not_show_up() {
        let refused = op(0, put(5), Answer::NotApplied, 0, 1);
        assert!(check(&[refused, op(1, Call::Get, Answer::Missing, 2, 3)]).is_empty());
        assert_eq!(
            check(&[refused, op(1, Call::Get, Answer::Value { value: 5, version: 1 }, 2, 3)]).len(),
            1
        );
    }

    #[test]
    fn keys_are_checked_apart() {
        let mut h = vec![
            op(0, put(1), Answer::Written { version: 1 }, 0, 1),
            op(0, put(2), Answer::Written { version: 1 }, 2, 3),
        ];
        h[1].key = 1;
        assert!(check(&h).is_empty());
        h[1].key = 0;
        assert_eq!(check(&h).len(), 1);
    }

    #[test]
    fn rounds_of_eight_overlapping_writes_are_linearized() {
        // Rounds of 8 overlapping puts, then a read of the last: the search must not
        // explode over the interleavings.
        let mut h = Vec::new();
        let mut version = 0;
        for round in 0..500u64 {
            let t = round * 100;
            for client in 0..8u64 {
                version += 1;
                h.push(op(
                    client as usize,
                    put(round * 8 + client),
                    Answer::Written { version },
                    t + client,
                    t + 50 + client,
                ));
            }
            h.push(op(
                9,
                Call::Get,
                Answer::Value {
                    value: round * 8 + 7,
                    version,
                },
                t + 90,
                t + 99,
            ));
        }
        assert!(check(&h).is_empty());
    }
}
