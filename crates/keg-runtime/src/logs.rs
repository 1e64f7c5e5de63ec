//! Container logs in the CRI format the kubelet reads:
//! `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>` per line, where `P` marks a piece
//! of a line longer than [`MAX_LINE`] and `F` the piece that ends it.

use std::io::{self, BufRead};
use std::path::Path;

use jiff::Timestamp;

/// Longest piece written as one log entry; longer lines are split (as containerd does).
pub const MAX_LINE: usize = 16 * 1024;

/// Which output a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The word the log format uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One whole line of a container's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// When the runtime read (the first piece of) the line.
    pub timestamp: Timestamp,
    /// Where it was written.
    pub stream: Stream,
    /// The line, without its newline.
    pub content: Vec<u8>,
}

/// One log file entry, with its newline.
pub(crate) fn format_entry(
    timestamp: Timestamp,
    stream: Stream,
    partial: bool,
    content: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 48);
    out.extend_from_slice(timestamp.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(content);
    out.push(b'\n');
    out
}

/// Parses one entry (without its newline): timestamp, stream, partial flag, content.
pub fn parse_entry(line: &[u8]) -> Option<(Timestamp, Stream, bool, &[u8])> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let timestamp: Timestamp = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some((timestamp, stream, partial, parts.next().unwrap_or(b"")))
}

/// Which lines [`read_log`] returns.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// Only the last this many lines (`kubectl logs --tail`).
    pub tail: Option<usize>,
    /// Only lines from this instant on (`kubectl logs --since`/`--since-time`).
    pub since: Option<Timestamp>,
}

/// Reads a CRI log file into whole lines, joining split pieces; a missing file has no lines.
pub fn read_log(path: &Path, options: &ReadOptions) -> io::Result<Vec<LogLine>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let mut lines = Vec::new();
    let mut pending: [Option<LogLine>; 2] = [None, None];
    for raw in io::BufReader::new(file).split(b'\n') {
        let raw = raw?;
        let Some((timestamp, stream, partial, content)) = parse_entry(&raw) else {
            continue;
        };
        let slot = &mut pending[stream as usize];
        let line = slot.get_or_insert_with(|| LogLine {
            timestamp,
            stream,
            content: Vec::new(),
        });
        line.content.extend_from_slice(content);
        if !partial {
            lines.extend(slot.take());
        }
    }
    // A trailing partial line is still being written; show what there is.
    lines.extend(pending.into_iter().flatten());
    if let Some(since) = options.since {
        lines.retain(|l| l.timestamp >= since);
    }
    if let Some(tail) = options.tail {
        let skip = lines.len().saturating_sub(tail);
        lines.drain(..skip);
    }
    Ok(lines)
}

/// Splits a stream's output into log entries as it arrives.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    stream: Stream,
    buf: Vec<u8>,
}

impl LineSplitter {
    /// A splitter for one stream.
    pub(crate) fn new(stream: Stream) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Feeds output; returns the entries that became complete.
    pub(crate) fn feed(&mut self, data: &[u8], now: Timestamp) -> Vec<u8> {
        let mut out = Vec::new();
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + nl;
            self.emit(&mut out, start, end, now);
            start = end + 1;
        }
        while self.buf.len() - start >= MAX_LINE {
            out.extend(format_entry(
                now,
                self.stream,
                true,
                &self.buf[start..start + MAX_LINE],
            ));
            start += MAX_LINE;
        }
        self.buf.drain(..start);
        out
    }

    /// Flushes an unterminated last line at end of output.
    pub(crate) fn finish(&mut self, now: Timestamp) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.buf.is_empty() {
            let end = self.buf.len();
            self.emit(&mut out, 0, end, now);
            self.buf.clear();
        }
        out
    }

    fn emit(&self, out: &mut Vec<u8>, start: usize, end: usize, now: Timestamp) {
        let mut pos = start;
        while end - pos > MAX_LINE {
            out.extend(format_entry(
                now,
                self.stream,
                true,
                &self.buf[pos..pos + MAX_LINE],
            ));
            pos += MAX_LINE;
        }
        out.extend(format_entry(now, self.stream, false, &self.buf[pos..end]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_long_lines() {
        let now: Timestamp = "2024-05-01T10:00:00.5Z".parse().unwrap();
        let mut s = LineSplitter::new(Stream::Stdout);
        assert!(s.feed(b"hel", now).is_empty());
        let out = s.feed(b"lo\nwor", now);
        assert_eq!(out, b"2024-05-01T10:00:00.5Z stdout F hello\n");
        assert_eq!(s.finish(now), b"2024-05-01T10:00:00.5Z stdout F wor\n");
        let long = vec![b'x'; MAX_LINE + 3];
        let out = s.feed(&long, now);
        assert!(
            out.ends_with(
                b" P "
                    .iter()
                    .chain(&vec![b'x'; MAX_LINE])
                    .chain(b"\n")
                    .copied()
                    .collect::<Vec<_>>()
                    .as_slice()
            )
        );
        assert_eq!(s.finish(now), b"2024-05-01T10:00:00.5Z stdout F xxx\n");
    }

    #[test]
    fn reads_back_with_tail_and_since() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let mut data = format_entry(t("2024-05-01T10:00:00Z"), Stream::Stdout, false, b"one");
        data.extend(format_entry(
            t("2024-05-01T10:00:01Z"),
            Stream::Stderr,
            true,
            b"tw",
        ));
        data.extend(format_entry(
            t("2024-05-01T10:00:01Z"),
            Stream::Stdout,
            false,
            b"three",
        ));
        data.extend(format_entry(
            t("2024-05-01T10:00:02Z"),
            Stream::Stderr,
            false,
            b"o",
        ));
        std::fs::write(&path, data).unwrap();
        let all = read_log(&path, &ReadOptions::default()).unwrap();
        let texts: Vec<_> = all
            .iter()
            .map(|l| String::from_utf8_lossy(&l.content).into_owned())
            .collect();
        assert_eq!(texts, ["one", "three", "two"]);
        let tail = read_log(
            &path,
            &ReadOptions {
                tail: Some(1),
                since: None,
            },
        )
        .unwrap();
        assert_eq!(tail[0].content, b"two");
        let since = read_log(
            &path,
            &ReadOptions {
                tail: None,
                since: Some(t("2024-05-01T10:00:01Z")),
            },
        )
        .unwrap();
        assert_eq!(since.len(), 2);
        assert!(
            read_log(&dir.path().join("missing"), &ReadOptions::default())
                .unwrap()
                .is_empty()
        );
    }
}
