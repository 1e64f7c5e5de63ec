//! Where each node of a YAML document sits, by key path, so that any error (serde's or a
//! rule's) can name both the key path and the line and column.
//!
//! serde-saphyr reports a location but not a path; rules know a path but not a location. One
//! pass over the parser's events records both for every node, keys included.

use std::collections::HashMap;
use std::fmt;

use serde_saphyr::granit_parser::{Event, Parser};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// The start of the document, where errors about the whole document point.
    pub const START: Pos = Pos { line: 1, column: 1 };
}

/// A path of mapping keys and sequence indexes, printed as `fargateProfiles[0].selectors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct KeyPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Segment {
    Key(String),
    Index(usize),
}

impl KeyPath {
    /// The path of the document itself.
    pub fn root() -> Self {
        KeyPath::default()
    }

    /// This path extended by a mapping key.
    pub fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_owned()));
        path
    }

    /// This path extended by a sequence index.
    pub fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    fn parent(&self) -> Option<Self> {
        let (_, rest) = self.0.split_last()?;
        Some(KeyPath(rest.to_vec()))
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(root)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                // Label keys hold dots and slashes; quoting keeps the path unambiguous.
                Segment::Key(key) if !is_plain(key) => write!(f, "[{key:?}]")?,
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
            }
        }
        Ok(())
    }
}

fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The position of every node in a document, keys and values, in document order.
#[derive(Debug, Default)]
pub(crate) struct NodeMap {
    nodes: Vec<(Pos, KeyPath)>,
    values: HashMap<KeyPath, Pos>,
    /// Whether the document is not well-formed YAML (the map then ends at the error).
    pub syntax_error: bool,
}

enum Frame {
    Mapping { path: KeyPath, key: Option<String> },
    Sequence { path: KeyPath, next: usize },
}

impl NodeMap {
    /// Records the nodes of `text` up to its end or its first syntax error.
    pub fn build(text: &str) -> Self {
        let mut map = NodeMap::default();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else {
                map.syntax_error = true;
                break;
            };
            let pos = Pos {
                line: span.start.line(),
                column: span.start.col() + 1,
            };
            match event {
                Event::Scalar(ref value, ..) => {
                    map.node(&mut stack, pos, Some(value));
                }
                Event::Alias(_) => {
                    map.node(&mut stack, pos, None);
                }
                Event::MappingStart(..) => {
                    let path = map.node(&mut stack, pos, None);
                    stack.push(Frame::Mapping { path, key: None });
                }
                Event::SequenceStart(..) => {
                    let path = map.node(&mut stack, pos, None);
                    stack.push(Frame::Sequence { path, next: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        map
    }

    /// Records one node and returns its path; a key's path is the path of its value.
    fn node(&mut self, stack: &mut [Frame], pos: Pos, scalar: Option<&str>) -> KeyPath {
        let path = match stack.last_mut() {
            None => KeyPath::root(),
            Some(Frame::Mapping { path, key }) => match key.take() {
                Some(key) => {
                    let value_path = path.key(&key);
                    self.values.insert(value_path.clone(), pos);
                    value_path
                }
                None => {
                    // A complex (non-scalar) key has no name; "?" keeps later siblings right.
                    let name = scalar.unwrap_or("?").to_owned();
                    let key_path = path.key(&name);
                    *key = Some(name);
                    self.values.entry(key_path.clone()).or_insert(pos);
                    key_path
                }
            },
            Some(Frame::Sequence { path, next }) => {
                let item = path.index(*next);
                *next += 1;
                self.values.insert(item.clone(), pos);
                item
            }
        };
        self.nodes.push((pos, path.clone()));
        path
    }

    /// Where the value at `path` starts; else where its nearest recorded ancestor does.
    pub fn position_of(&self, path: &KeyPath) -> Pos {
        let mut current = Some(path.clone());
        while let Some(path) = current {
            if let Some(pos) = self.values.get(&path) {
                return *pos;
            }
            current = path.parent();
        }
        Pos::START
    }

    /// The path of the node at `pos`, or of the last node that starts before it.
    pub fn path_at(&self, pos: Pos) -> KeyPath {
        self.nodes
            .iter()
            .rev()
            .find(|(start, _)| *start <= pos)
            .map(|(_, path)| path.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
a:
  b: 1
  list:
    - x
    - name: y
      labels:
        app.kubernetes.io/name: z
";

    #[test]
    fn records_keys_and_values() {
        let map = NodeMap::build(DOC);
        let list1 = KeyPath::root().key("a").key("list").index(1);
        assert_eq!(
            map.position_of(&list1.key("name")),
            Pos {
                line: 5,
                column: 13
            }
        );
        assert_eq!(map.position_of(&list1), Pos { line: 5, column: 7 });
        let label = list1.key("labels").key("app.kubernetes.io/name");
        assert_eq!(
            label.to_string(),
            "a.list[1].labels[\"app.kubernetes.io/name\"]"
        );
        assert_eq!(
            map.position_of(&label),
            Pos {
                line: 7,
                column: 33
            }
        );
        // A missing key falls back to its nearest ancestor.
        assert_eq!(
            map.position_of(&list1.key("missing")),
            Pos { line: 5, column: 7 }
        );
        assert_eq!(map.position_of(&KeyPath::root().key("zzz")), Pos::START);
    }

    #[test]
    fn notes_syntax_errors() {
        assert!(!NodeMap::build(DOC).syntax_error);
        let map = NodeMap::build("a:\n  b: [1\n");
        assert!(map.syntax_error);
        assert_eq!(map.path_at(Pos { line: 3, column: 1 }).to_string(), "a.b");
    }

    #[test]
    fn finds_the_path_at_a_position() {
        let map = NodeMap::build(DOC);
        assert_eq!(map.path_at(Pos { line: 2, column: 3 }).to_string(), "a.b");
        assert_eq!(
            map.path_at(Pos { line: 4, column: 7 }).to_string(),
            "a.list[0]"
        );
        assert_eq!(
            map.path_at(Pos { line: 5, column: 9 }).to_string(),
            "a.list[1].name"
        );
        assert_eq!(KeyPath::root().to_string(), "(root)");
    }
}
