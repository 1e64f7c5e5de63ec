//! The protobuf wire format: a message as a sequence of (field number, value) pairs.

use super::{Error, Result};

/// One encoded value, as its wire type carries it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wire<'a> {
    /// Wire type 0: integers and booleans.
    Varint(u64),
    /// Wire type 1: doubles.
    Fixed64(u64),
    /// Wire type 2: strings, bytes, messages and packed repeated scalars.
    Bytes(&'a [u8]),
    /// Wire type 5: floats (no Kubernetes field uses them; read to be skipped).
    Fixed32(u32),
}

impl Wire<'_> {
    /// The wire type's name, for error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Wire::Varint(_) => "varint",
            Wire::Fixed64(_) => "fixed64",
            Wire::Bytes(_) => "length-delimited",
            Wire::Fixed32(_) => "fixed32",
        }
    }
}

/// Reads the fields of one message in order.
pub struct Fields<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    /// Fields of the encoded message `data`.
    pub fn new(data: &'a [u8]) -> Fields<'a> {
        Fields { data, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&byte) = self.data.get(self.pos) else {
                return Err(Error::malformed("truncated varint"));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(Error::malformed("varint longer than 10 bytes"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.data.len())
            .ok_or_else(|| Error::malformed("length-delimited field runs past the end"))?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn next_field(&mut self) -> Result<(u32, Wire<'a>)> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| Error::malformed(format!("invalid field number {}", key >> 3)))?;
        let value = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| Error::malformed("length out of range"))?;
                Wire::Bytes(self.take(len)?)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            )),
            // Groups (3, 4) are proto2's deprecated nesting; Kubernetes never writes them.
            other => {
                return Err(Error::malformed(format!(
                    "field {number} has unsupported wire type {other}"
                )));
            }
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Wire<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.data.len() {
            return None;
        }
        let field = self.next_field();
        if field.is_err() {
            // Nothing after a broken field can be framed; stop after reporting it.
            self.pos = self.data.len();
        }
        Some(field)
    }
}

/// The varints of a packed repeated field.
pub fn packed_varints(data: &[u8]) -> Result<Vec<u64>> {
    let mut reader = Fields { data, pos: 0 };
    let mut values = Vec::new();
    while reader.pos < data.len() {
        values.push(reader.varint()?);
    }
    Ok(values)
}

/// The 8-byte values of a packed repeated field.
pub fn packed_fixed64(data: &[u8]) -> Result<Vec<u64>> {
    if !data.len().is_multiple_of(8) {
        return Err(Error::malformed(
            "packed fixed64 field of a length not a multiple of 8",
        ));
    }
    Ok(data
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_wire_type() {
        // 1: varint 150; 2: "hi"; 3: fixed64 1; 4: fixed32 2.
        let data = [
            0x08, 0x96, 0x01, 0x12, 2, b'h', b'i', 0x19, 1, 0, 0, 0, 0, 0, 0, 0, 0x25, 2, 0, 0, 0,
        ];
        let fields: Vec<_> = Fields::new(&data).collect::<Result<_>>().unwrap();
        assert_eq!(
            fields,
            vec![
                (1, Wire::Varint(150)),
                (2, Wire::Bytes(b"hi")),
                (3, Wire::Fixed64(1)),
                (4, Wire::Fixed32(2)),
            ]
        );
    }

    #[test]
    fn rejects_truncation() {
        let err = Fields::new(&[0x12, 5, b'a']).next().unwrap().unwrap_err();
        assert!(err.to_string().contains("runs past the end"), "{err}");
        let err = Fields::new(&[0x08, 0x96]).next().unwrap().unwrap_err();
        assert!(err.to_string().contains("truncated varint"), "{err}");
        let err = Fields::new(&[0x0b]).next().unwrap().unwrap_err();
        assert!(err.to_string().contains("wire type 3"), "{err}");
    }

    #[test]
    fn reads_packed_values() {
        assert_eq!(packed_varints(&[1, 0x96, 0x01]).unwrap(), vec![1, 150]);
        assert!(packed_fixed64(&[0; 7]).is_err());
    }
}
