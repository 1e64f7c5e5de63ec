//! The one walker: a message's wire fields, read against the schema table, become the JSON
//! object a client would have sent, whatever the kind.

use serde_json::{Map, Value, json};

use super::schema::{Field, Schema, Type};
use super::wire::{Fields, Wire, packed_fixed64, packed_varints};
use super::{Error, Result, special};

/// How deep messages may nest (a RawExtension may hold another object): far beyond any
/// Kubernetes type, and short of the stack's limit.
const MAX_DEPTH: usize = 64;

/// Reads messages against a schema.
pub struct Walker<'s> {
    schema: &'s Schema,
    depth: usize,
}

impl<'s> Walker<'s> {
    /// A walker at the top level.
    pub fn new(schema: &'s Schema) -> Walker<'s> {
        Walker { schema, depth: 0 }
    }

    /// The message `key` encoded in `data`, as a JSON object.
    pub fn object(&mut self, key: &str, data: &[u8]) -> Result<Map<String, Value>> {
        let message = self
            .schema
            .message(key)
            .ok_or_else(|| Error::malformed(format!("no schema for message {key}")))?;
        if self.depth >= MAX_DEPTH {
            return Err(Error::malformed(format!(
                "messages nest deeper than {MAX_DEPTH}"
            )));
        }
        self.depth += 1;
        let mut out = Map::new();
        for item in Fields::new(data) {
            let (number, wire) = item?;
            // Go's decoder skips fields it does not know (a newer client's), and so does keg.
            let Some(field) = message.field(number) else {
                continue;
            };
            self.field(field, wire, &mut out)
                .map_err(|e| e.within(&field_name(field)))?;
        }
        self.depth -= 1;
        Ok(out)
    }

    fn field(&mut self, field: &Field, wire: Wire<'_>, out: &mut Map<String, Value>) -> Result<()> {
        if field.inline {
            let Value::Object(inner) = self.value(&field.ty, wire)? else {
                return Err(Error::malformed("an inlined field must be a message"));
            };
            merge(out, inner);
            return Ok(());
        }
        let json = field.json.to_string();
        if field.repeated {
            let values = self.repeated(&field.ty, wire)?;
            match out.entry(json).or_insert_with(|| json!([])) {
                Value::Array(items) => items.extend(values),
                _ => unreachable!("repeated fields hold arrays"),
            }
            return Ok(());
        }
        if let Type::Map(value_type) = &field.ty {
            let (key, value) = self.map_entry(value_type, wire)?;
            match out.entry(json).or_insert_with(|| json!({})) {
                Value::Object(entries) => entries.insert(key, value),
                _ => unreachable!("map fields hold objects"),
            };
            return Ok(());
        }
        let value = self.value(&field.ty, wire)?;
        if !field.keep_zero && is_zero(&value) {
            // Go writes every non-pointer scalar, zero or not, but omits zero values from JSON:
            // the JSON a client sends has no such field, and defaulting must see none.
            out.remove(&json);
            return Ok(());
        }
        match (out.get_mut(&json), value) {
            // A message field seen twice is merged, as protobuf decoders do.
            (Some(Value::Object(old)), Value::Object(new)) => merge(old, new),
            (_, value) => {
                out.insert(json, value);
            }
        }
        Ok(())
    }

    /// The elements one occurrence of a repeated field adds: one, or many when packed.
    fn repeated(&mut self, ty: &Type, wire: Wire<'_>) -> Result<Vec<Value>> {
        match (ty, wire) {
            (Type::Int | Type::Bool, Wire::Bytes(b)) => packed_varints(b)?
                .into_iter()
                .map(|v| self.value(ty, Wire::Varint(v)))
                .collect(),
            (Type::Double, Wire::Bytes(b)) => packed_fixed64(b)?
                .into_iter()
                .map(|v| self.value(ty, Wire::Fixed64(v)))
                .collect(),
            _ => Ok(vec![self.value(ty, wire)?]),
        }
    }

    /// One entry of a map field: a message of key (1) and value (2).
    fn map_entry(&mut self, value_type: &Type, wire: Wire<'_>) -> Result<(String, Value)> {
        let Wire::Bytes(data) = wire else {
            return Err(mismatch("map entry", wire));
        };
        let (mut key, mut value) = (String::new(), None);
        for item in Fields::new(data) {
            match item? {
                (1, Wire::Bytes(b)) => key = String::from_utf8_lossy(b).into_owned(),
                (1, other) => return Err(mismatch("string map key", other)),
                (2, wire) => value = Some(self.value(value_type, wire)?),
                _ => {}
            }
        }
        // An absent value is the type's zero value, as proto2 map entries decode.
        let value = match value {
            Some(value) => value,
            None => self.value(value_type, Wire::Bytes(&[]))?,
        };
        Ok((key, value))
    }

    /// A single (not repeated) value of a type.
    fn value(&mut self, ty: &Type, wire: Wire<'_>) -> Result<Value> {
        Ok(match (ty, wire) {
            (Type::String, Wire::Bytes(b)) => json!(String::from_utf8_lossy(b)),
            (Type::Bytes, Wire::Bytes(b)) => special::base64(b),
            (Type::Bool, Wire::Varint(v)) => json!(v != 0),
            // int32 and int64 alike: negative values are sign-extended to 64 bits.
            (Type::Int, Wire::Varint(v)) => json!(v as i64),
            (Type::Double, Wire::Fixed64(bits)) => {
                let number = serde_json::Number::from_f64(f64::from_bits(bits))
                    .ok_or_else(|| Error::malformed("a double that JSON cannot hold"))?;
                Value::Number(number)
            }
            (Type::Message(key), Wire::Bytes(b)) => Value::Object(self.object(key, b)?),
            (Type::Quantity, Wire::Bytes(b)) => special::quantity(b)?,
            (Type::IntOrString, Wire::Bytes(b)) => special::int_or_string(b)?,
            (Type::Time, Wire::Bytes(b)) => special::time(b, false)?,
            (Type::MicroTime, Wire::Bytes(b)) => special::time(b, true)?,
            (Type::Duration, Wire::Bytes(b)) => special::duration(b)?,
            (Type::FieldsV1, Wire::Bytes(b)) => special::embedded_json(special::raw(b)?)?,
            (Type::RawExtension, Wire::Bytes(b)) => self.raw_extension(special::raw(b)?)?,
            (Type::StringArray, Wire::Bytes(b)) => special::string_array(b)?,
            (ty, wire) => return Err(mismatch(expected(ty), wire)),
        })
    }

    /// A RawExtension holds JSON, or (from a Go client that set `Object`) another protobuf
    /// object with its own envelope.
    fn raw_extension(&mut self, raw: &[u8]) -> Result<Value> {
        if !super::is_protobuf(raw) {
            return special::embedded_json(raw);
        }
        self.depth += 1;
        let value = super::decode_envelope(self, raw);
        self.depth -= 1;
        value
    }
}

fn field_name(field: &Field) -> String {
    match field.json {
        "" => format!("<inline {}>", field.number),
        json => json.to_string(),
    }
}

fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (key, value) in from {
        into.insert(key, value);
    }
}

/// Zero values that Go leaves out of JSON under `omitempty` (bytes are base64, so "" too).
fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn expected(ty: &Type) -> &'static str {
    match ty {
        Type::Bool | Type::Int => "varint",
        Type::Double => "fixed64",
        _ => "length-delimited",
    }
}

fn mismatch(expected: &str, wire: Wire<'_>) -> Error {
    Error::malformed(format!(
        "{} value where a {expected} value was expected",
        wire.name()
    ))
}
