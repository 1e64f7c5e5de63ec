//! Types whose JSON form is not their message's fields: each marshals itself in Go.

use base64::Engine;
use serde_json::{Value, json};

use super::wire::{Fields, Wire};
use super::{Error, Result};

/// The fields of a small message as (number, value) pairs.
fn fields(data: &[u8]) -> Result<Vec<(u32, Wire<'_>)>> {
    Fields::new(data).collect()
}

fn string(wire: Wire<'_>) -> Result<String> {
    match wire {
        Wire::Bytes(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        other => Err(Error::malformed(format!(
            "{} value where a string was expected",
            other.name()
        ))),
    }
}

fn varint(wire: Wire<'_>) -> Result<i64> {
    match wire {
        // Negative int32s and int64s are both sign-extended to 64 bits on the wire.
        Wire::Varint(v) => Ok(v as i64),
        other => Err(Error::malformed(format!(
            "{} value where a varint was expected",
            other.name()
        ))),
    }
}

/// `resource.Quantity` {string = 1}: its canonical string.
pub fn quantity(data: &[u8]) -> Result<Value> {
    let mut text = String::new();
    for (number, wire) in fields(data)? {
        if number == 1 {
            text = string(wire)?;
        }
    }
    // An empty Quantity decodes in Go as zero, which it writes as "0".
    Ok(json!(if text.is_empty() { "0".into() } else { text }))
}

/// `intstr.IntOrString` {type = 1, intVal = 2, strVal = 3}: a number or a string.
pub fn int_or_string(data: &[u8]) -> Result<Value> {
    let (mut kind, mut int, mut text) = (0, 0, String::new());
    for (number, wire) in fields(data)? {
        match number {
            1 => kind = varint(wire)?,
            2 => int = varint(wire)? as i32,
            3 => text = string(wire)?,
            _ => {}
        }
    }
    Ok(if kind == 1 { json!(text) } else { json!(int) })
}

/// `meta/v1.Time` and `MicroTime` {seconds = 1, nanos = 2}: RFC 3339 in UTC as Kubernetes
/// writes them, to the second or to the microsecond; an empty message is Go's zero time, null.
pub fn time(data: &[u8], micro: bool) -> Result<Value> {
    if data.is_empty() {
        return Ok(Value::Null);
    }
    let (mut seconds, mut nanos) = (0i64, 0i32);
    for (number, wire) in fields(data)? {
        match number {
            1 => seconds = varint(wire)?,
            2 => nanos = varint(wire)? as i32,
            _ => {}
        }
    }
    let at = jiff::Timestamp::new(seconds, nanos)
        .map_err(|e| Error::malformed(format!("time out of range: {e}")))?;
    let whole = at.strftime("%Y-%m-%dT%H:%M:%S");
    Ok(json!(if micro {
        format!("{whole}.{:06}Z", at.subsec_microsecond())
    } else {
        format!("{whole}Z")
    }))
}

/// `meta/v1.Duration` {duration = 1, in nanoseconds}: Go's duration string.
pub fn duration(data: &[u8]) -> Result<Value> {
    let mut nanos = 0i64;
    for (number, wire) in fields(data)? {
        if number == 1 {
            nanos = varint(wire)?;
        }
    }
    Ok(json!(go_duration(nanos)))
}

/// Formats nanoseconds as Go's `time.Duration.String` does: `1h2m3.5s`, `1.5ms`, `0s`.
pub fn go_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u == 0 {
        return "0s".into();
    }
    if u < 1_000_000_000 {
        let (unit, precision) = match u {
            ..1_000 => ("ns", 0),
            1_000..1_000_000 => ("µs", 3),
            _ => ("ms", 6),
        };
        return format!("{sign}{}{unit}", decimal(u, precision));
    }
    let seconds = u / 1_000_000_000;
    let (hours, minutes) = (seconds / 3600, seconds / 60 % 60);
    let mut out = sign.to_string();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&decimal(u % 60_000_000_000, 9));
    out.push('s');
    out
}

/// `v / 10^precision` in decimal without trailing zeros (nor a point when whole).
fn decimal(v: u64, precision: u32) -> String {
    let scale = 10u64.pow(precision);
    let (whole, fraction) = (v / scale, v % scale);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0width$}", width = precision as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// The `raw` bytes (field 1) of `RawExtension` and `FieldsV1`.
pub fn raw(data: &[u8]) -> Result<&[u8]> {
    let mut raw: &[u8] = &[];
    for (number, wire) in fields(data)? {
        if let (1, Wire::Bytes(b)) = (number, wire) {
            raw = b;
        }
    }
    Ok(raw)
}

/// Embedded JSON (FieldsV1, or a RawExtension that a client filled with JSON); none is null.
pub fn embedded_json(raw: &[u8]) -> Result<Value> {
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(raw)
        .map_err(|e| Error::malformed(format!("embedded JSON does not parse: {e}")))
}

/// A named string slice (`ExtraValue`) {repeated items = 1}: a JSON array.
pub fn string_array(data: &[u8]) -> Result<Value> {
    let mut items = Vec::new();
    for (number, wire) in fields(data)? {
        if number == 1 {
            items.push(json!(string(wire)?));
        }
    }
    Ok(Value::Array(items))
}

/// Bytes as JSON writes them: standard base64.
pub fn base64(bytes: &[u8]) -> Value {
    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_writes_them() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (2_000_000, "2ms"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (-5_000_000_000, "-5s"),
            (9_900_000_500_000, "2h45m0.0005s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(go_duration(nanos), want, "{nanos}");
        }
    }

    #[test]
    fn times_read_as_kubernetes_writes_them() {
        fn varint(mut n: u64, out: &mut Vec<u8>) {
            while n >= 0x80 {
                out.push((n as u8) | 0x80);
                n >>= 7;
            }
            out.push(n as u8);
        }
        // seconds = 1704067200 (2024-01-01T00:00:00Z), nanos = 123456789.
        let mut data = vec![0x08];
        varint(1_704_067_200, &mut data);
        assert_eq!(time(&data, false).unwrap(), json!("2024-01-01T00:00:00Z"));
        data.push(0x10);
        varint(123_456_789, &mut data);
        assert_eq!(time(&data, false).unwrap(), json!("2024-01-01T00:00:00Z"));
        assert_eq!(
            time(&data, true).unwrap(),
            json!("2024-01-01T00:00:00.123456Z")
        );
        assert_eq!(time(&[], false).unwrap(), Value::Null);
    }
}
