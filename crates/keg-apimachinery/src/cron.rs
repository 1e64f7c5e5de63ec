//! CronJob schedules: the five-field cron format and the `@hourly`-style macros, parsed with
//! the rules (and error texts) of the parser upstream's CronJob controller uses, and the next
//! time a schedule fires in a time zone.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// A parsed schedule: for each field the set of values it fires on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// Whether the day-of-month or day-of-week field was `*` or `?`: then a day must match
    /// both fields, otherwise either (cron's rule for restricting both).
    any_day_field_is_star: bool,
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DAYS_OF_MONTH: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DAYS_OF_WEEK: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// Parses a schedule; the error is the text upstream's validation reports.
pub fn parse(spec: &str) -> Result<Schedule, String> {
    let spec = spec.trim();
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
    }
    if spec.starts_with('@') {
        return parse_macro(spec);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    let star = |f: &str| f.starts_with('*') || f.starts_with('?');
    Ok(Schedule {
        minutes: parse_field(fields[0], &MINUTES)?,
        hours: parse_field(fields[1], &HOURS)?,
        days_of_month: parse_field(fields[2], &DAYS_OF_MONTH)?,
        months: parse_field(fields[3], &MONTHS)?,
        days_of_week: parse_field(fields[4], &DAYS_OF_WEEK)?,
        any_day_field_is_star: star(fields[2]) || star(fields[4]),
    })
}

fn parse_macro(spec: &str) -> Result<Schedule, String> {
    let five = match spec {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => return Err(format!("unrecognized descriptor: {other}")),
    };
    parse(five)
}

/// One field: comma-separated ranges, each `*`, `N`, `N-M` or a name, optionally `/step`.
fn parse_field(field: &str, bounds: &Bounds) -> Result<u64, String> {
    let mut bits = 0u64;
    for range in field.split(',') {
        bits |= parse_range(range, bounds)?;
    }
    Ok(bits)
}

fn parse_range(range: &str, bounds: &Bounds) -> Result<u64, String> {
    let (span, step) = match range.split_once('/') {
        Some((span, step)) => (span, Some(step)),
        None => (range, None),
    };
    let (start, end) = if span == "*" || span == "?" {
        (bounds.min, bounds.max)
    } else {
        match span.split_once('-') {
            Some((a, b)) => (parse_value(a, bounds)?, parse_value(b, bounds)?),
            None => {
                let v = parse_value(span, bounds)?;
                // `N/step` runs from N to the field's end.
                (v, if step.is_some() { bounds.max } else { v })
            }
        }
    };
    let step = match step {
        Some(s) => parse_int(s)?,
        None => 1,
    };
    if start < bounds.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {range}",
            bounds.min
        ));
    }
    if end > bounds.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {range}",
            bounds.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {range}"
        ));
    }
    if step == 0 {
        return Err(format!(
            "step of range should be a positive number: {range}"
        ));
    }
    Ok((start..=end)
        .step_by(step as usize)
        .fold(0, |bits, v| bits | 1 << v))
}

fn parse_value(text: &str, bounds: &Bounds) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    match bounds.names.iter().position(|n| *n == lower) {
        Some(i) => Ok(u32::try_from(i).unwrap_or(0) + bounds.min),
        None => parse_int(text),
    }
}

fn parse_int(text: &str) -> Result<u32, String> {
    text.parse::<u32>().map_err(|_| {
        format!("failed to parse int from {text}: strconv.Atoi: parsing \"{text}\": invalid syntax")
    })
}

fn has(bits: u64, value: i8) -> bool {
    u8::try_from(value).is_ok_and(|v| bits & (1 << v) != 0)
}

impl Schedule {
    fn day_matches(&self, date: Date) -> bool {
        let dom = has(self.days_of_month, date.day());
        let dow = has(self.days_of_week, date.weekday().to_sunday_zero_offset());
        if self.any_day_field_is_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first time after `after` (strictly) that the schedule fires, reading its fields
    /// as wall-clock time in `tz`. `None` if it never fires in the next five years
    /// (`0 0 30 2 *`).
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = after.to_zoned(tz.clone()).datetime();
        let mut t = local
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        let limit = local.checked_add(5.years()).ok()?;
        while t < limit {
            if !has(self.months, t.month()) {
                t = first_of_next_month(t)?;
                continue;
            }
            if !self.day_matches(t.date()) {
                t = t
                    .date()
                    .tomorrow()
                    .ok()?
                    .to_datetime(jiff::civil::Time::midnight());
                continue;
            }
            if !has(self.hours, t.hour()) {
                t = t
                    .with()
                    .minute(0)
                    .build()
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
                continue;
            }
            if !has(self.minutes, t.minute()) {
                t = t.checked_add(1.minute()).ok()?;
                continue;
            }
            // A wall-clock time skipped by a DST change fires at the first instant after it.
            let fires = tz.to_ambiguous_zoned(t).compatible().ok()?.timestamp();
            if fires > after {
                return Some(fires);
            }
            t = t.checked_add(1.minute()).ok()?;
        }
        None
    }
}

fn first_of_next_month(t: DateTime) -> Option<DateTime> {
    let first = t.date().first_of_month().checked_add(1.month()).ok()?;
    Some(first.to_datetime(jiff::civil::Time::midnight()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn fields_steps_ranges_names_and_macros() {
        let utc = TimeZone::UTC;
        let every_minute = parse("*/1 * * * *").unwrap();
        assert_eq!(
            every_minute.next_after(at("2026-01-01T10:00:30Z"), &utc),
            Some(at("2026-01-01T10:01:00Z"))
        );
        let weekdays = parse("30 9 * * mon-fri").unwrap();
        // 2026-01-03 is a Saturday: the next is Monday the 5th.
        assert_eq!(
            weekdays.next_after(at("2026-01-03T00:00:00Z"), &utc),
            Some(at("2026-01-05T09:30:00Z"))
        );
        assert_eq!(parse("@hourly").unwrap(), parse("0 * * * *").unwrap());
        let quarter = parse("0,15,30,45 */6 1 jan,jul *").unwrap();
        assert_eq!(
            quarter.next_after(at("2026-01-01T06:50:00Z"), &utc),
            Some(at("2026-01-01T12:00:00Z"))
        );
        assert_eq!(
            quarter.next_after(at("2026-01-01T18:45:00Z"), &utc),
            Some(at("2026-07-01T00:00:00Z"))
        );
        assert_eq!(
            parse("0 0 30 2 *")
                .unwrap()
                .next_after(at("2026-01-01T00:00:00Z"), &utc),
            None
        );
    }

    #[test]
    fn both_day_fields_restricted_fire_on_either() {
        // The 13th, or any Friday.
        let s = parse("0 0 13 * 5").unwrap();
        assert_eq!(
            s.next_after(at("2026-01-01T00:00:00Z"), &TimeZone::UTC),
            Some(at("2026-01-02T00:00:00Z"))
        );
    }

    #[test]
    fn time_zones_shift_the_wall_clock() {
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        let s = parse("0 9 * * *").unwrap();
        assert_eq!(
            s.next_after(at("2026-01-01T00:00:00Z"), &tokyo),
            Some(at("2026-01-01T00:00:00Z").checked_add(24.hours()).unwrap())
        );
    }

    #[test]
    fn errors_read_as_upstream() {
        assert_eq!(
            parse("bad").unwrap_err(),
            "expected exactly 5 fields, found 1: [bad]"
        );
        assert_eq!(
            parse("70 * * * *").unwrap_err(),
            "end of range (70) above maximum (59): 70"
        );
        assert_eq!(
            parse("x * * * *").unwrap_err(),
            "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            parse("@sometimes").unwrap_err(),
            "unrecognized descriptor: @sometimes"
        );
        assert!(parse("TZ=UTC 0 * * * *").is_err());
    }
}
