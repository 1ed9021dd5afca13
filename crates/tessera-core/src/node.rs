//! The rules of node management, free of any catalog access.
//!
//! The coordinator's catalog `pg_dist_node` holds one row per node. Each node belongs to a
//! *group* (a primary and its streaming replicas); the coordinator is always group 0 and
//! workers get groups 1, 2, ... Shards are placed on groups, not on nodes.

/// The group id of the coordinator.
pub const COORDINATOR_GROUP_ID: i32 = 0;

/// A node's role in its group, as in Citus's `noderole` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    Primary,
    Secondary,
    Unavailable,
}

impl NodeRole {
    pub fn parse(s: &str) -> Option<NodeRole> {
        match s {
            "primary" => Some(NodeRole::Primary),
            "secondary" => Some(NodeRole::Secondary),
            "unavailable" => Some(NodeRole::Unavailable),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Primary => "primary",
            NodeRole::Secondary => "secondary",
            NodeRole::Unavailable => "unavailable",
        }
    }
}

/// The properties `citus_set_node_property` may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeProperty {
    ShouldHaveShards,
}

impl NodeProperty {
    pub fn parse(s: &str) -> Option<NodeProperty> {
        match s {
            "shouldhaveshards" => Some(NodeProperty::ShouldHaveShards),
            _ => None,
        }
    }
}

/// The group a new node joins: the one asked for, or the next free id after the existing ones.
/// `requested` is -1 for "pick one" as in Citus's `citus_add_node(..., groupid => -1)`.
pub fn group_for_new_node(requested: i32, existing_groups: &[i32]) -> Result<i32, String> {
    if requested == -1 {
        let max = existing_groups
            .iter()
            .copied()
            .filter(|g| *g != COORDINATOR_GROUP_ID)
            .max()
            .unwrap_or(0);
        return Ok(max + 1);
    }
    if requested == COORDINATOR_GROUP_ID {
        return Err(
            "group 0 is the coordinator's: use citus_set_coordinator_host to register the coordinator"
                .into(),
        );
    }
    if requested < -1 {
        return Err(format!(
            "group id {requested} is out of range: use -1 to let Tessera pick one"
        ));
    }
    Ok(requested)
}

/// Checks a port number given by a user.
pub fn check_port(port: i32) -> Result<(), String> {
    if (1..=65535).contains(&port) {
        Ok(())
    } else {
        Err(format!(
            "port {port} is out of range: a port is between 1 and 65535"
        ))
    }
}

/// Checks a node name given by a user: not empty, no whitespace or control characters.
pub fn check_node_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("node name is empty: give the host name or IP address of the node".into());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "node name \"{}\" holds white space or control characters: give a host name or IP address",
            name.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        for r in [
            NodeRole::Primary,
            NodeRole::Secondary,
            NodeRole::Unavailable,
        ] {
            assert_eq!(NodeRole::parse(r.as_str()), Some(r));
        }
        assert_eq!(NodeRole::parse("master"), None);
    }

    #[test]
    fn new_groups_follow_the_largest() {
        assert_eq!(group_for_new_node(-1, &[]), Ok(1));
        assert_eq!(group_for_new_node(-1, &[0]), Ok(1));
        assert_eq!(group_for_new_node(-1, &[0, 1, 5, 2]), Ok(6));
        assert_eq!(group_for_new_node(7, &[0, 1]), Ok(7));
        assert!(group_for_new_node(0, &[]).is_err());
        assert!(group_for_new_node(-5, &[]).is_err());
    }

    #[test]
    fn ports_and_names_are_checked() {
        assert!(check_port(5432).is_ok());
        assert!(check_port(0).is_err());
        assert!(check_port(70000).is_err());
        assert!(check_node_name("localhost").is_ok());
        assert!(check_node_name("").is_err());
        assert!(check_node_name("a b").is_err());
        assert!(check_node_name("a\nb").is_err());
    }

    #[test]
    fn only_known_properties() {
        assert_eq!(
            NodeProperty::parse("shouldhaveshards"),
            Some(NodeProperty::ShouldHaveShards)
        );
        assert_eq!(NodeProperty::parse("isactive"), None);
    }
}
