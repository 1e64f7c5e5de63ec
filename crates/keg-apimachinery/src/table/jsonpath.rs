//! The JSONPath subset CRD printer columns use, with client-go's semantics where missing keys
//! yield no result rather than an error: fields (`.a.b`, `['a.b']`, `\.`-escaped dots), `*`,
//! recursive descent (`..a`), indexes (`[0]`, `[-1]`), slices (`[1:3]`) and filters
//! (`[?(@.type=="Ready")]`, with `== != < > <= >=` or a bare path for existence).

use serde_json::Value;

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Path(Vec<Step>);

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Wildcard,
    /// The current values and all their descendants.
    Descend,
    Index(i64),
    Slice(Option<i64>, Option<i64>),
    Filter(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    left: Vec<Step>,
    test: Option<(Op, Operand)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Literal(Value),
    Path(Vec<Step>),
}

/// Parses a column's `jsonPath`; the error says what is wrong with it.
pub(super) fn parse(path: &str) -> Result<Path, String> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let path = path.strip_prefix('$').unwrap_or(path);
    parse_steps(path).map(Path)
}

fn parse_steps(mut rest: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("..") {
            steps.push(Step::Descend);
            // `..name` reads as descend-then-field: leave one dot for the field.
            rest = if after.starts_with('[') {
                after
            } else {
                &rest[1..]
            };
        } else if let Some(after) = rest.strip_prefix('.') {
            let (field, tail) = split_field(after);
            match field.as_str() {
                "" if tail.is_empty() => {}
                "" => return Err(format!("empty field name before {tail:?}")),
                "*" => steps.push(Step::Wildcard),
                _ => steps.push(Step::Field(field)),
            }
            rest = tail;
        } else if rest.starts_with('[') {
            let end =
                closing_bracket(rest).ok_or_else(|| format!("unclosed bracket in {rest:?}"))?;
            steps.push(parse_bracket(&rest[1..end])?);
            rest = &rest[end + 1..];
        } else {
            return Err(format!("unexpected {rest:?}, expected '.' or '['"));
        }
    }
    Ok(steps)
}

/// A field name up to the next unescaped `.` or `[`, and what follows it.
fn split_field(s: &str) -> (String, &str) {
    let mut name = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    name.push(escaped);
                }
            }
            '.' | '[' => return (name, &s[i..]),
            c => name.push(c),
        }
    }
    (name, "")
}

/// The index of the `]` closing the `[` at the start of `s`, skipping quoted text and nesting.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut depth = 0;
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[' | '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn parse_bracket(inner: &str) -> Result<Step, String> {
    let inner = inner.trim();
    if let Some(filter) = inner.strip_prefix('?') {
        let body = filter
            .trim()
            .strip_prefix('(')
            .and_then(|f| f.strip_suffix(')'))
            .ok_or_else(|| format!("filter {inner:?} must look like ?(...)"))?;
        return parse_filter(body).map(|f| Step::Filter(Box::new(f)));
    }
    if inner == "*" {
        return Ok(Step::Wildcard);
    }
    if let Some(name) = unquote(inner) {
        return Ok(Step::Field(name.to_owned()));
    }
    let int = |s: &str| {
        s.trim()
            .parse::<i64>()
            .map_err(|_| format!("bad array index {s:?}"))
    };
    if let Some((from, to)) = inner.split_once(':') {
        // A step (`[a:b:c]`) is accepted but ignored.
        let to = to.split_once(':').map_or(to, |(to, _)| to);
        let bound = |s: &str| {
            if s.trim().is_empty() {
                Ok(None)
            } else {
                int(s).map(Some)
            }
        };
        return Ok(Step::Slice(bound(from)?, bound(to)?));
    }
    int(inner).map(Step::Index)
}

fn unquote(s: &str) -> Option<&str> {
    let s = s.trim();
    ["'", "\""]
        .iter()
        .find_map(|q| s.strip_prefix(q).and_then(|rest| rest.strip_suffix(q)))
}

fn parse_filter(body: &str) -> Result<Filter, String> {
    let Some((left, op, right)) = split_comparison(body) else {
        return Ok(Filter {
            left: relative_path(body)?,
            test: None,
        });
    };
    let right = right.trim();
    let operand = if let Some(s) = unquote(right) {
        Operand::Literal(Value::String(s.to_owned()))
    } else if right.starts_with('@') {
        Operand::Path(relative_path(right)?)
    } else if let Ok(literal @ (Value::Number(_) | Value::Bool(_))) = serde_json::from_str(right) {
        Operand::Literal(literal)
    } else {
        return Err(format!("unsupported filter operand {right:?}"));
    };
    Ok(Filter {
        left: relative_path(left)?,
        test: Some((op, operand)),
    })
}

/// Splits `a OP b` at the first comparison operator outside quotes.
fn split_comparison(body: &str) -> Option<(&str, Op, &str)> {
    let mut quote = None;
    for (i, c) in body.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '=' | '!' | '<' | '>') => {
                let two = body.get(i..i + 2);
                let (op, len) = match (c, two) {
                    (_, Some("==")) => (Op::Eq, 2),
                    (_, Some("!=")) => (Op::Ne, 2),
                    (_, Some("<=")) => (Op::Le, 2),
                    (_, Some(">=")) => (Op::Ge, 2),
                    ('<', _) => (Op::Lt, 1),
                    ('>', _) => (Op::Gt, 1),
                    _ => continue,
                };
                return Some((&body[..i], op, &body[i + len..]));
            }
            _ => {}
        }
    }
    None
}

/// A path relative to the filtered element (`@.a.b`, or `@` itself).
fn relative_path(s: &str) -> Result<Vec<Step>, String> {
    let s = s.trim();
    let rest = s
        .strip_prefix('@')
        .ok_or_else(|| format!("filter path {s:?} must start with @"))?;
    parse_steps(rest)
}

impl Path {
    /// Every value the path selects in `root`, in document order.
    pub(super) fn eval<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        eval_steps(&self.0, vec![root])
    }
}

fn eval_steps<'a>(steps: &[Step], mut current: Vec<&'a Value>) -> Vec<&'a Value> {
    for step in steps {
        current = current.into_iter().flat_map(|v| apply(step, v)).collect();
    }
    current
}

fn apply<'a>(step: &Step, v: &'a Value) -> Vec<&'a Value> {
    match (step, v) {
        (Step::Field(name), Value::Object(map)) => map.get(name).into_iter().collect(),
        (Step::Wildcard, Value::Object(map)) => map.values().collect(),
        (Step::Wildcard, Value::Array(list)) => list.iter().collect(),
        (Step::Descend, v) => {
            let mut all = vec![v];
            descendants(v, &mut all);
            all
        }
        (Step::Index(i), Value::Array(list)) => {
            let i = if *i < 0 { list.len() as i64 + i } else { *i };
            usize::try_from(i)
                .ok()
                .and_then(|i| list.get(i))
                .into_iter()
                .collect()
        }
        (Step::Slice(from, to), Value::Array(list)) => {
            let len = list.len() as i64;
            let clamp = |b: i64| (if b < 0 { len + b } else { b }).clamp(0, len) as usize;
            let (from, to) = (clamp(from.unwrap_or(0)), clamp(to.unwrap_or(len)));
            list.get(from..to.max(from)).unwrap_or(&[]).iter().collect()
        }
        (Step::Filter(filter), Value::Array(list)) => {
            list.iter().filter(|item| matches(filter, item)).collect()
        }
        _ => Vec::new(),
    }
}

fn descendants<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    let children: Box<dyn Iterator<Item = &'a Value>> = match v {
        Value::Object(map) => Box::new(map.values()),
        Value::Array(list) => Box::new(list.iter()),
        _ => return,
    };
    for child in children {
        out.push(child);
        descendants(child, out);
    }
}

fn matches(filter: &Filter, item: &Value) -> bool {
    let left = eval_steps(&filter.left, vec![item]);
    let Some((op, operand)) = &filter.test else {
        return !left.is_empty();
    };
    let Some(left) = left.first() else {
        return false;
    };
    let right = match operand {
        Operand::Literal(v) => v,
        Operand::Path(path) => match eval_steps(path, vec![item]).first() {
            Some(v) => *v,
            None => return false,
        },
    };
    let ordering = match (left, right) {
        (Value::String(a), Value::String(b)) => a.partial_cmp(b),
        (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
        (Value::Bool(a), Value::Bool(b)) if matches!(op, Op::Eq | Op::Ne) => a.partial_cmp(b),
        // Values of different types never compare equal (client-go refuses to compare them).
        _ => return false,
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        Op::Eq => ordering.is_eq(),
        Op::Ne => ordering.is_ne(),
        Op::Lt => ordering.is_lt(),
        Op::Gt => ordering.is_gt(),
        Op::Le => ordering.is_le(),
        Op::Ge => ordering.is_ge(),
    }
}
