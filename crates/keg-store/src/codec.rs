//! Byte layouts of the embedded store's table values.
//!
//! Hand-rolled rather than serde so the on-disk format is explicit and stable:
//! little-endian integers, length-prefixed byte strings.

use bytes::Bytes;

use crate::{Error, EventKind, KeyValue, Result, Revision, WatchEvent};

/// A current value as kept in the `kv` table: create revision, mod revision, value.
pub(crate) fn encode_current(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + kv.value.len());
    out.extend_from_slice(&kv.create_revision.to_le_bytes());
    out.extend_from_slice(&kv.mod_revision.to_le_bytes());
    out.extend_from_slice(&kv.value);
    out
}

/// Decodes a `kv` table value for `key`.
pub(crate) fn decode_current(key: &str, bytes: &[u8]) -> Result<KeyValue> {
    let mut reader = Reader { bytes, key };
    let create_revision = reader.u64()?;
    let mod_revision = reader.u64()?;
    Ok(KeyValue {
        key: key.to_owned(),
        value: Bytes::copy_from_slice(reader.bytes),
        create_revision,
        mod_revision,
    })
}

/// A change as kept in the `log` table: the event with its previous value inline, so that
/// history can be undone (past-revision lists) without the previous entry surviving compaction.
pub(crate) fn encode_event(event: &WatchEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + event.kv.key.len() + event.kv.value.len());
    out.push(match event.kind {
        EventKind::Put => 0,
        EventKind::Delete => 1,
    });
    put_bytes(&mut out, event.kv.key.as_bytes());
    out.extend_from_slice(&event.kv.create_revision.to_le_bytes());
    put_bytes(&mut out, &event.kv.value);
    match &event.prev {
        None => out.push(0),
        Some(prev) => {
            out.push(1);
            out.extend_from_slice(&prev.create_revision.to_le_bytes());
            out.extend_from_slice(&prev.mod_revision.to_le_bytes());
            put_bytes(&mut out, &prev.value);
        }
    }
    out
}

/// Decodes a `log` table value written at `revision`.
pub(crate) fn decode_event(revision: Revision, bytes: &[u8]) -> Result<WatchEvent> {
    let mut reader = Reader {
        bytes,
        key: "<log>",
    };
    let kind = match reader.u8()? {
        0 => EventKind::Put,
        1 => EventKind::Delete,
        other => return Err(corrupt("<log>", &format!("unknown event kind {other}"))),
    };
    let key = String::from_utf8(reader.sized()?.to_vec())
        .map_err(|_| corrupt("<log>", "key is not UTF-8"))?;
    let create_revision = reader.u64()?;
    let value = Bytes::copy_from_slice(reader.sized()?);
    let prev = match reader.u8()? {
        0 => None,
        _ => {
            let create_revision = reader.u64()?;
            let mod_revision = reader.u64()?;
            let value = Bytes::copy_from_slice(reader.sized()?);
            Some(KeyValue {
                key: key.clone(),
                value,
                create_revision,
                mod_revision,
            })
        }
    };
    Ok(WatchEvent {
        kind,
        kv: KeyValue {
            key,
            value,
            create_revision,
            mod_revision: revision,
        },
        prev,
    })
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn corrupt(key: &str, what: &str) -> Error {
    Error::Backend(format!("corrupt record for {key}: {what}"))
}

struct Reader<'a> {
    bytes: &'a [u8],
    key: &'a str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(corrupt(self.key, "truncated"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    fn sized(&mut self) -> Result<&'a [u8]> {
        let len =
            usize::try_from(self.u64()?).map_err(|_| corrupt(self.key, "length overflows"))?;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, create: u64, modified: u64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Bytes::from(value.to_owned()),
            create_revision: create,
            mod_revision: modified,
        }
    }

    #[test]
    fn current_round_trips() {
        let original = kv("/pods/a", "{}", 3, 7);
        assert_eq!(
            decode_current("/pods/a", &encode_current(&original)).unwrap(),
            original
        );
    }

    #[test]
    fn events_round_trip_with_and_without_prev() {
        let put = WatchEvent {
            kind: EventKind::Put,
            kv: kv("k", "new", 2, 9),
            prev: Some(kv("k", "old", 2, 4)),
        };
        assert_eq!(decode_event(9, &encode_event(&put)).unwrap(), put);
        let created = WatchEvent {
            kind: EventKind::Put,
            kv: kv("k", "v", 5, 5),
            prev: None,
        };
        assert_eq!(decode_event(5, &encode_event(&created)).unwrap(), created);
    }

    #[test]
    fn truncated_records_are_errors_not_panics() {
        let bytes = encode_event(&WatchEvent {
            kind: EventKind::Delete,
            kv: kv("k", "v", 1, 2),
            prev: None,
        });
        for len in 0..bytes.len() {
            assert!(
                decode_event(2, &bytes[..len]).is_err(),
                "prefix of {len} bytes decoded"
            );
        }
    }
}
