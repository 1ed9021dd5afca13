//! Distributed deadlock detection: the wait-for graph of the coordinator's transactions, built
//! from every node's lock waits, and the transactions to cancel so that no cycle is left.
//!
//! A coordinator backend's connections to the workers carry its pid in their
//! `application_name` ([`application_name`]), so a worker backend waiting for a lock is known
//! as the coordinator transaction it works for. Each node's waits become edges between
//! coordinator backends ([`coordinator_edges`]); the union over the nodes is the graph. Two
//! sessions that lock rows on two workers in opposite order make a cycle no single node sees.

use std::collections::{BTreeMap, BTreeSet};

const PREFIX: &str = "tessera pid=";

/// The `application_name` of a worker connection opened by coordinator backend `pid`.
pub fn application_name(pid: i32) -> String {
    format!("{PREFIX}{pid}")
}

/// The coordinator backend a connection's `application_name` names, if it is Tessera's.
pub fn coordinator_pid(application_name: &str) -> Option<i32> {
    application_name
        .strip_prefix(PREFIX)?
        .parse()
        .ok()
        .filter(|&p| p > 0)
}

/// One lock wait on a node: a backend and one of the backends it waits for, with their
/// `application_name`s and roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockWait {
    pub waiter: i32,
    pub waiter_app: String,
    pub waiter_role: String,
    pub blocker: i32,
    pub blocker_app: String,
    pub blocker_role: String,
}

/// Whose lock waits [`coordinator_edges`] reads.
pub enum Node<'a> {
    /// The coordinator's own: every backend stands for itself (its `application_name`, which
    /// any session may set, is not read).
    Coordinator,
    /// A worker's: a backend whose `application_name` names coordinator backend N stands for
    /// N only when it runs as N's role (`roles`: pid → role of the coordinator's backends), so
    /// a session that names another one gets no more than it could do to it itself
    /// (`pg_cancel_backend` of its own role's backends).
    Worker { roles: &'a BTreeMap<i32, String> },
}

/// The edges (waiting coordinator backend, coordinator backend it waits for) one node's lock
/// waits give. On a worker a backend that stands for no coordinator backend (a session of the
/// node's own) is looked through: a coordinator backend that waits for one that waits for
/// another coordinator backend waits for that one.
pub fn coordinator_edges(waits: &[LockWait], node: Node<'_>) -> BTreeSet<(i32, i32)> {
    let who = |pid: i32, app: &str, role: &str| match &node {
        Node::Coordinator => Some(pid),
        Node::Worker { roles } => {
            coordinator_pid(app).filter(|n| roles.get(n).is_some_and(|r| r == role))
        }
    };
    let mut blockers: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    let mut identity: BTreeMap<i32, Option<i32>> = BTreeMap::new();
    for w in waits {
        blockers.entry(w.waiter).or_default().push(w.blocker);
        identity.insert(w.waiter, who(w.waiter, &w.waiter_app, &w.waiter_role));
        identity.insert(w.blocker, who(w.blocker, &w.blocker_app, &w.blocker_role));
    }
    let mut edges = BTreeSet::new();
    for (&waiter, direct) in &blockers {
        let Some(Some(from)) = identity.get(&waiter).copied() else {
            continue;
        };
        let mut seen = BTreeSet::from([waiter]);
        let mut stack = direct.clone();
        while let Some(b) = stack.pop() {
            if !seen.insert(b) {
                continue;
            }
            match identity.get(&b).copied().flatten() {
                Some(to) if to != from => {
                    edges.insert((from, to));
                }
                Some(_) => {}
                None => stack.extend(blockers.get(&b).into_iter().flatten()),
            }
        }
    }
    edges
}

/// A cycle of `edges`, if there is one (its vertices, each once).
fn find_cycle(edges: &BTreeSet<(i32, i32)>) -> Option<Vec<i32>> {
    let mut next: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for &(a, b) in edges {
        next.entry(a).or_default().push(b);
    }
    // Depth-first from each vertex not yet finished; a vertex on the current path reached
    // again closes a cycle.
    let mut finished = BTreeSet::new();
    for &start in next.keys() {
        if finished.contains(&start) {
            continue;
        }
        let mut path = vec![start];
        let mut cursor = vec![0usize];
        while let Some(&v) = path.last() {
            let i = *cursor.last().expect("one cursor per vertex on the path");
            let succ = next.get(&v).map(Vec::as_slice).unwrap_or(&[]);
            if i == succ.len() {
                finished.insert(v);
                path.pop();
                cursor.pop();
                continue;
            }
            *cursor
                .last_mut()
                .expect("one cursor per vertex on the path") += 1;
            let w = succ[i];
            if let Some(at) = path.iter().position(|&p| p == w) {
                return Some(path[at..].to_vec());
            }
            if !finished.contains(&w) {
                path.push(w);
                cursor.push(0);
            }
        }
    }
    None
}

/// The coordinator backends to cancel so that `edges` has no cycle: in each cycle, the one
/// whose transaction started last (`started`: pid → start time; the largest is the youngest,
/// the pid breaking ties), as Citus chooses. A cancelled backend's edges go with it.
pub fn victims(edges: &BTreeSet<(i32, i32)>, started: &BTreeMap<i32, i64>) -> Vec<i32> {
    let mut edges = edges.clone();
    let mut out = Vec::new();
    while let Some(cycle) = find_cycle(&edges) {
        let victim = cycle
            .iter()
            .copied()
            .max_by_key(|p| (started.get(p).copied().unwrap_or(i64::MIN), *p))
            .expect("a cycle has vertices");
        out.push(victim);
        edges.retain(|&(a, b)| a != victim && b != victim);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(waiter: i32, waiter_app: &str, blocker: i32, blocker_app: &str) -> LockWait {
        LockWait {
            waiter,
            waiter_app: waiter_app.into(),
            waiter_role: "app".into(),
            blocker,
            blocker_app: blocker_app.into(),
            blocker_role: "app".into(),
        }
    }

    /// Every coordinator backend these tests name runs as "app".
    fn roles() -> BTreeMap<i32, String> {
        [9, 10, 20]
            .into_iter()
            .map(|p| (p, "app".to_string()))
            .collect()
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(coordinator_pid(&application_name(4242)), Some(4242));
        assert_eq!(coordinator_pid("psql"), None);
        assert_eq!(coordinator_pid("tessera pid=x"), None);
        assert_eq!(coordinator_pid("tessera pid=0"), None);
        assert_eq!(coordinator_pid("tessera"), None);
    }

    #[test]
    fn two_workers_in_opposite_order_make_a_cycle() {
        // Worker 1: A's backend (701) waits for B's (702); worker 2: B's (801) for A's (802).
        let roles = roles();
        let w1 = coordinator_edges(
            &[wait(701, "tessera pid=10", 702, "tessera pid=20")],
            Node::Worker { roles: &roles },
        );
        let w2 = coordinator_edges(
            &[wait(801, "tessera pid=20", 802, "tessera pid=10")],
            Node::Worker { roles: &roles },
        );
        assert_eq!(w1, BTreeSet::from([(10, 20)]));
        assert_eq!(w2, BTreeSet::from([(20, 10)]));
        let all: BTreeSet<_> = w1.union(&w2).copied().collect();
        let started = BTreeMap::from([(10, 100), (20, 200)]);
        assert_eq!(victims(&all, &started), vec![20]);
        // Either node alone has no cycle.
        assert!(victims(&w1, &started).is_empty());
    }

    #[test]
    fn waits_through_a_node_s_own_sessions_count() {
        // A's backend waits for a psql session (5), which waits for B's backend.
        let roles = roles();
        let worker = || Node::Worker { roles: &roles };
        let e = coordinator_edges(
            &[
                wait(701, "tessera pid=10", 5, "psql"),
                wait(5, "psql", 702, "tessera pid=20"),
            ],
            worker(),
        );
        assert_eq!(e, BTreeSet::from([(10, 20)]));
        // The psql session itself is nobody: it gives no edge of its own.
        let e = coordinator_edges(&[wait(5, "psql", 702, "tessera pid=20")], worker());
        assert!(e.is_empty());
        // A loop among a node's own sessions ends.
        let e = coordinator_edges(
            &[
                wait(701, "tessera pid=10", 5, ""),
                wait(5, "", 6, ""),
                wait(6, "", 5, ""),
            ],
            worker(),
        );
        assert!(e.is_empty());
    }

    #[test]
    fn on_the_coordinator_every_backend_is_itself() {
        // The application_name a session sets there is not read.
        let e = coordinator_edges(
            &[
                wait(10, "psql", 20, ""),
                wait(30, "tessera pid=20", 10, "app"),
            ],
            Node::Coordinator,
        );
        assert_eq!(e, BTreeSet::from([(10, 20), (30, 10)]));
        // Two connections of one coordinator backend waiting on each other: no edge.
        let roles = roles();
        let e = coordinator_edges(
            &[wait(1, "tessera pid=9", 2, "tessera pid=9")],
            Node::Worker { roles: &roles },
        );
        assert!(e.is_empty());
    }

    #[test]
    fn a_worker_session_naming_another_role_s_backend_is_nobody() {
        let roles = roles();
        let mut spoof = wait(701, "tessera pid=10", 702, "tessera pid=20");
        spoof.waiter_role = "intruder".into();
        let e = coordinator_edges(&[spoof], Node::Worker { roles: &roles });
        assert!(e.is_empty());
        // A pid the coordinator does not have: nobody either.
        let e = coordinator_edges(
            &[wait(701, "tessera pid=77", 702, "tessera pid=20")],
            Node::Worker { roles: &roles },
        );
        assert!(e.is_empty());
    }

    #[test]
    fn every_cycle_loses_its_youngest() {
        // Two separate cycles (1 <-> 2, 3 -> 4 -> 5 -> 3) and a waiter outside both (6 -> 1).
        let edges = BTreeSet::from([(1, 2), (2, 1), (3, 4), (4, 5), (5, 3), (6, 1)]);
        let started = BTreeMap::from([(1, 50), (2, 10), (3, 7), (4, 9), (5, 8), (6, 99)]);
        let mut v = victims(&edges, &started);
        v.sort();
        assert_eq!(v, vec![1, 4]);
        // Cycles that share a vertex: cancelling it ends both.
        let edges = BTreeSet::from([(1, 2), (2, 1), (2, 3), (3, 2)]);
        let started = BTreeMap::from([(1, 1), (2, 5), (3, 2)]);
        assert_eq!(victims(&edges, &started), vec![2]);
        // Without start times the larger pid goes.
        let edges = BTreeSet::from([(7, 8), (8, 7)]);
        assert_eq!(victims(&edges, &BTreeMap::new()), vec![8]);
        assert!(victims(&BTreeSet::from([(1, 2), (2, 3)]), &BTreeMap::new()).is_empty());
    }
}
