//! The schema table (`schema.txt`, written by `scripts/protobuf-schema.py`): for each message
//! of the built-in kinds, its fields' numbers, JSON names and types.

use std::collections::HashMap;
use std::sync::OnceLock;

/// What a field holds, and so how its wire value becomes JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    /// A UTF-8 string.
    String,
    /// A boolean (varint).
    Bool,
    /// An int32 or int64 (varint).
    Int,
    /// A float64 (fixed64).
    Double,
    /// Bytes, written in JSON as base64.
    Bytes,
    /// A message of the table, by its key (`core/v1.Container`).
    Message(String),
    /// `resource.Quantity`: a string.
    Quantity,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `meta/v1.Time`: RFC 3339 to the second.
    Time,
    /// `meta/v1.MicroTime`: RFC 3339 to the microsecond.
    MicroTime,
    /// `meta/v1.Duration`: a Go duration string.
    Duration,
    /// `runtime.RawExtension`: an embedded object.
    RawExtension,
    /// `meta/v1.FieldsV1`: embedded JSON.
    FieldsV1,
    /// A named string slice (`ExtraValue`): a message of repeated `items`, a JSON array.
    StringArray,
    /// A map from string keys (repeated entry messages of key 1 and value 2).
    Map(Box<Type>),
}

/// One field of a message.
#[derive(Debug, Clone)]
pub struct Field {
    /// The field number.
    pub number: u32,
    /// The JSON name; empty for an inlined field.
    pub json: &'static str,
    /// What it holds.
    pub ty: Type,
    /// Whether it repeats (a JSON array).
    pub repeated: bool,
    /// Whether a zero scalar is written to JSON: Go writes zero values only of pointers and of
    /// fields without `omitempty`, and the JSON must be what the client would have sent.
    pub keep_zero: bool,
    /// Whether its fields belong to the parent object (Go's `json:",inline"`).
    pub inline: bool,
}

/// One message: its fields by number.
#[derive(Debug, Default)]
pub struct Message {
    fields: HashMap<u32, Field>,
}

impl Message {
    /// The field of a number, if the schema knows it.
    pub fn field(&self, number: u32) -> Option<&Field> {
        self.fields.get(&number)
    }
}

/// Every message of the table, by key.
#[derive(Debug)]
pub struct Schema {
    messages: HashMap<String, Message>,
}

static TABLE: &str = include_str!("schema.txt");

/// The schema of the built-in kinds, parsed on first use.
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse(TABLE))
}

impl Schema {
    /// Parses the table; a malformed table is a build defect, so it panics with the line.
    fn parse(table: &'static str) -> Schema {
        let mut messages = HashMap::new();
        for line in table
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let mut words = line.split(' ');
            let key = words.next().expect("a key");
            let package = key.split_once('.').expect("package.Name").0;
            let fields = words
                .map(|word| {
                    let field = parse_field(word, package);
                    field.unwrap_or_else(|| panic!("schema.txt: bad field {word:?} of {key}"))
                })
                .map(|f| (f.number, f))
                .collect();
            messages.insert(key.to_string(), Message { fields });
        }
        Schema { messages }
    }

    /// A message by key.
    pub fn message(&self, key: &str) -> Option<&Message> {
        self.messages.get(key)
    }

    /// The key of the message of an object kind, e.g. `apps/v1` `Deployment` ->
    /// `apps/v1.Deployment`; kinds of every group version (DeleteOptions) are in `meta/v1`.
    pub fn object_key(&self, api_version: &str, kind: &str) -> Option<String> {
        let package = package_of(api_version)?;
        [format!("{package}.{kind}"), format!("meta/v1.{kind}")]
            .into_iter()
            .find(|key| self.messages.contains_key(key))
    }
}

/// The table's package of an API version: `v1` -> `core/v1`, `storage.k8s.io/v1` ->
/// `storage/v1`. Only Kubernetes' own groups map; a custom resource's group maps to none.
fn package_of(api_version: &str) -> Option<String> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let package = match group {
        "" => "core",
        "apps" | "autoscaling" | "batch" | "policy" => group,
        "rbac.authorization.k8s.io" => "rbac",
        "flowcontrol.apiserver.k8s.io" => "flowcontrol",
        _ => group.strip_suffix(".k8s.io").filter(|g| !g.contains('.'))?,
    };
    Some(format!("{package}/{version}"))
}

fn parse_field(word: &'static str, package: &str) -> Option<Field> {
    let mut parts = word.splitn(3, ':');
    let number = parts.next()?.parse().ok()?;
    let json = parts.next()?;
    let spec = parts.next()?;
    let flags_at = spec.find(['*', '!', '^']).unwrap_or(spec.len());
    let (ty, flags) = spec.split_at(flags_at);
    Some(Field {
        number,
        json,
        ty: parse_type(ty, package)?,
        repeated: flags.contains('*'),
        keep_zero: flags.contains('!'),
        inline: flags.contains('^'),
    })
}

fn parse_type(ty: &str, package: &str) -> Option<Type> {
    Some(match ty {
        "s" => Type::String,
        "b" => Type::Bool,
        "i" => Type::Int,
        "d" => Type::Double,
        "y" => Type::Bytes,
        "Q" => Type::Quantity,
        "IS" => Type::IntOrString,
        "T" => Type::Time,
        "MT" => Type::MicroTime,
        "D" => Type::Duration,
        "RE" => Type::RawExtension,
        "F" => Type::FieldsV1,
        "[s" => Type::StringArray,
        _ => {
            if let Some(value) = ty.strip_prefix('{') {
                Type::Map(Box::new(parse_type(value, package)?))
            } else {
                let name = ty.strip_prefix('@')?;
                // A reference without a package is to the message's own package.
                match name.contains('/') {
                    true => Type::Message(name.to_string()),
                    false => Type::Message(format!("{package}.{name}")),
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves() {
        let schema = schema();
        for message in schema.messages.values() {
            for field in message.fields.values() {
                let mut ty = &field.ty;
                while let Type::Map(value) = ty {
                    ty = value;
                }
                if let Type::Message(key) = ty {
                    assert!(schema.message(key).is_some(), "{key} is not in the table");
                }
            }
        }
        assert!(schema.messages.len() > 400);
    }

    #[test]
    fn maps_api_versions_to_packages() {
        let schema = schema();
        let key = |v, k| schema.object_key(v, k);
        assert_eq!(key("v1", "Namespace").as_deref(), Some("core/v1.Namespace"));
        assert_eq!(
            key("apps/v1", "Deployment").as_deref(),
            Some("apps/v1.Deployment")
        );
        assert_eq!(
            key("rbac.authorization.k8s.io/v1", "Role").as_deref(),
            Some("rbac/v1.Role")
        );
        assert_eq!(
            key("storage.k8s.io/v1", "StorageClass").as_deref(),
            Some("storage/v1.StorageClass")
        );
        assert_eq!(
            key("policy/v1", "DeleteOptions").as_deref(),
            Some("meta/v1.DeleteOptions")
        );
        assert_eq!(key("keg.dev/v1", "FargateProfile"), None);
        // A custom group that happens to share a first label with a built-in one.
        assert_eq!(key("apps.example.com/v1", "Deployment"), None);
        assert_eq!(
            key("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
            None
        );
    }

    #[test]
    fn reads_flags() {
        let spec = schema().message("apps/v1.DeploymentSpec").unwrap();
        let replicas = spec.field(1).unwrap();
        assert_eq!((replicas.json, &replicas.ty), ("replicas", &Type::Int));
        assert!(replicas.keep_zero && !replicas.repeated);
        let volume = schema()
            .message("core/v1.Volume")
            .unwrap()
            .field(2)
            .unwrap();
        assert!(volume.inline);
        assert_eq!(volume.ty, Type::Message("core/v1.VolumeSource".into()));
    }
}
