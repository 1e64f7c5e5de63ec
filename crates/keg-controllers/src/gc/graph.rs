//! The garbage collector's graph of owners and dependents, as upstream's graph_builder: one
//! node per object uid, built from watch events. Owners referenced but not (yet) observed are
//! "virtual" nodes, whose existence the collector checks with the API. Applying a change
//! returns the work it calls for.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The finalizer of a foreground deletion: the owner goes once its blocking dependents have.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an orphaning deletion: dependents lose their reference to the owner.
pub const ORPHAN: &str = "orphan";

/// What identifies an object for the API: group, version, kind, namespace, name, uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// API group ("" for core).
    pub group: String,
    /// API version as observed (or referenced).
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace; for a virtual owner the dependent's, which only counts if the kind is namespaced.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
}

impl Identity {
    /// The identity an owner reference names, seen from a dependent in `namespace`.
    pub fn of_owner(owner: &OwnerReference, namespace: Option<&str>) -> Identity {
        let (group, version) = match owner.api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), owner.api_version.clone()),
        };
        Identity {
            group,
            version,
            kind: owner.kind.clone(),
            namespace: namespace.map(String::from),
            name: owner.name.clone(),
            uid: owner.uid.clone(),
        }
    }
}

/// One object of the graph.
#[derive(Debug, Clone)]
pub struct Node {
    /// What the object is.
    pub identity: Identity,
    /// Its owner references, as last observed.
    pub owners: Vec<OwnerReference>,
    /// Uids of the objects that reference it as owner.
    pub dependents: HashSet<String>,
    /// Whether it has a deletionTimestamp.
    pub being_deleted: bool,
    /// Being deleted in the foreground: waiting for its dependents.
    pub deleting_dependents: bool,
    /// Being deleted with the orphan finalizer.
    pub orphaning: bool,
    /// Whether a watch reported it (otherwise only referenced).
    pub observed: bool,
}

/// Work the collector has to do for a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Work {
    /// Check whether the object should go (upstream's attemptToDelete).
    Delete(String),
    /// Remove the object's dependents' references to it, then its orphan finalizer.
    Orphan(String),
}

/// The graph.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

fn has_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers.iter().flatten().any(|f| f == finalizer)
}

impl Graph {
    /// A node by uid.
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// The dependents whose reference to `uid` blocks its foreground deletion.
    pub fn blocking_dependents(&self, uid: &str) -> Vec<&Node> {
        let Some(node) = self.nodes.get(uid) else {
            return vec![];
        };
        node.dependents
            .iter()
            .filter_map(|d| self.nodes.get(d))
            .filter(|d| {
                d.owners
                    .iter()
                    .any(|o| o.uid == uid && o.block_owner_deletion == Some(true))
            })
            .collect()
    }

    /// An object was added or changed.
    pub fn upsert(&mut self, identity: Identity, meta: &ObjectMeta) -> Vec<Work> {
        let uid = identity.uid.clone();
        let owners = meta.owner_references.clone().unwrap_or_default();
        let being_deleted = meta.deletion_timestamp.is_some();
        let mut work = Vec::new();
        let (old_owners, was_orphaning, was_deleting_dependents) = match self.nodes.get(&uid) {
            Some(n) => (n.owners.clone(), n.orphaning, n.deleting_dependents),
            None => (vec![], false, false),
        };
        let node = self.nodes.entry(uid.clone()).or_insert_with(|| Node {
            identity: identity.clone(),
            owners: vec![],
            dependents: HashSet::new(),
            being_deleted: false,
            deleting_dependents: false,
            orphaning: false,
            observed: true,
        });
        node.identity = identity.clone();
        node.observed = true;
        node.owners = owners.clone();
        node.being_deleted = being_deleted;
        node.orphaning = being_deleted && has_finalizer(meta, ORPHAN);
        node.deleting_dependents = being_deleted && has_finalizer(meta, FOREGROUND);
        let (orphaning, deleting_dependents) = (node.orphaning, node.deleting_dependents);
        for removed in old_owners
            .iter()
            .filter(|o| !owners.iter().any(|n| n.uid == o.uid))
        {
            if let Some(owner) = self.nodes.get_mut(&removed.uid) {
                owner.dependents.remove(&uid);
                // One fewer dependent may be what a foreground deletion waits for.
                if owner.deleting_dependents {
                    work.push(Work::Delete(removed.uid.clone()));
                }
            }
        }
        for added in owners
            .iter()
            .filter(|o| !old_owners.iter().any(|n| n.uid == o.uid))
        {
            work.extend(self.add_dependent(added, &identity));
        }
        if orphaning && !was_orphaning {
            work.push(Work::Orphan(uid.clone()));
        }
        if deleting_dependents && !was_deleting_dependents {
            let dependents = self
                .nodes
                .get(&uid)
                .map(|n| n.dependents.clone())
                .unwrap_or_default();
            work.extend(dependents.into_iter().map(Work::Delete));
            work.push(Work::Delete(uid));
        }
        work
    }

    /// Records `dependent` under its owner, creating a virtual owner (to be checked) if unseen.
    fn add_dependent(&mut self, owner: &OwnerReference, dependent: &Identity) -> Vec<Work> {
        let mut work = Vec::new();
        let node = self.nodes.entry(owner.uid.clone()).or_insert_with(|| {
            work.push(Work::Delete(owner.uid.clone()));
            Node {
                identity: Identity::of_owner(owner, dependent.namespace.as_deref()),
                owners: vec![],
                dependents: HashSet::new(),
                being_deleted: false,
                deleting_dependents: false,
                orphaning: false,
                observed: false,
            }
        });
        node.dependents.insert(dependent.uid.clone());
        // A dependent that arrives while its owner is already absent or going must be looked at.
        if node.deleting_dependents {
            work.push(Work::Delete(dependent.uid.clone()));
        }
        work
    }

    /// An object is gone (observed, or a virtual owner the API does not have): its dependents
    /// may now be garbage, and owners deleting in the foreground may be unblocked.
    pub fn remove(&mut self, uid: &str) -> Vec<Work> {
        let Some(node) = self.nodes.remove(uid) else {
            return vec![];
        };
        let mut work: Vec<Work> = node.dependents.iter().cloned().map(Work::Delete).collect();
        for owner in &node.owners {
            if let Some(owner_node) = self.nodes.get_mut(&owner.uid) {
                owner_node.dependents.remove(uid);
                if owner_node.deleting_dependents {
                    work.push(Work::Delete(owner.uid.clone()));
                }
                if !owner_node.observed && owner_node.dependents.is_empty() {
                    self.nodes.remove(&owner.uid); // a virtual owner nobody references any more
                }
            }
        }
        work
    }

    /// After a full relist of one kind: the observed objects of that kind not in `present`
    /// were deleted while the watch was down.
    pub fn resync(&mut self, group: &str, kind: &str, present: &HashSet<String>) -> Vec<Work> {
        let missing: Vec<String> = self
            .nodes
            .values()
            .filter(|n| {
                n.observed
                    && n.identity.group == group
                    && n.identity.kind == kind
                    && !present.contains(&n.identity.uid)
            })
            .map(|n| n.identity.uid.clone())
            .collect();
        missing.iter().flat_map(|uid| self.remove(uid)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(kind: &str, uid: &str) -> Identity {
        Identity {
            group: "apps".into(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: Some("ns".into()),
            name: uid.into(),
            uid: uid.into(),
        }
    }

    fn owned_by(owner: &str, block: bool) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: owner.into(),
                uid: owner.into(),
                controller: Some(true),
                block_owner_deletion: Some(block),
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn unseen_owner_is_virtual_and_checked() {
        let mut graph = Graph::default();
        let work = graph.upsert(identity("Pod", "p1"), &owned_by("rs1", true));
        assert_eq!(work, vec![Work::Delete("rs1".into())]);
        assert!(!graph.get("rs1").unwrap().observed);
        assert!(
            graph
                .upsert(identity("ReplicaSet", "rs1"), &ObjectMeta::default())
                .is_empty()
        );
        assert!(graph.get("rs1").unwrap().observed);
    }

    #[test]
    fn owner_removal_queues_its_dependents() {
        let mut graph = Graph::default();
        graph.upsert(identity("ReplicaSet", "rs1"), &ObjectMeta::default());
        graph.upsert(identity("Pod", "p1"), &owned_by("rs1", true));
        assert_eq!(graph.remove("rs1"), vec![Work::Delete("p1".into())]);
        assert_eq!(graph.remove("p1"), vec![]);
        assert!(graph.get("rs1").is_none());
    }

    #[test]
    fn foreground_deletion_waits_for_blocking_dependents() {
        let mut graph = Graph::default();
        graph.upsert(identity("ReplicaSet", "rs1"), &ObjectMeta::default());
        graph.upsert(identity("Pod", "p1"), &owned_by("rs1", true));
        graph.upsert(identity("Pod", "p2"), &owned_by("rs1", false));
        let deleting = ObjectMeta {
            deletion_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::now(),
            )),
            finalizers: Some(vec![FOREGROUND.into()]),
            ..Default::default()
        };
        let mut work = graph.upsert(identity("ReplicaSet", "rs1"), &deleting);
        work.sort_by_key(|w| format!("{w:?}"));
        assert_eq!(
            work,
            vec![
                Work::Delete("p1".into()),
                Work::Delete("p2".into()),
                Work::Delete("rs1".into())
            ]
        );
        assert_eq!(graph.blocking_dependents("rs1").len(), 1);
        assert_eq!(graph.remove("p1"), vec![Work::Delete("rs1".into())]);
        assert!(graph.blocking_dependents("rs1").is_empty());
    }
}
