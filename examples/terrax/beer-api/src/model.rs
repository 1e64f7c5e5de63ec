//! The beer resource, its input validation and pagination parameters.
//!
//! Request bodies are validated from a raw JSON value rather than deserialised straight into a
//! struct: that way a missing field, a wrong type and an out-of-range value all come back as the
//! same kind of field error, and a client sees every problem at once instead of serde's first.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::FieldError;

/// Longest accepted `name` and `brewery`, in characters (the columns are VARCHAR(100)).
pub const MAX_NAME_LEN: usize = 100;
/// Longest accepted `style`, in characters (the column is VARCHAR(50)).
pub const MAX_STYLE_LEN: usize = 50;
/// Longest accepted `description`, in characters (the column is VARCHAR(1000)).
pub const MAX_DESCRIPTION_LEN: usize = 1000;
/// Highest accepted bitterness; real beers stay well below it, so anything above is a typo.
pub const MAX_IBU: u64 = 1000;
/// Page size when the client gives none.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Largest page a client may ask for, so one request cannot read the whole table.
pub const MAX_PAGE_SIZE: u32 = 100;

/// A stored beer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Beer {
    /// Identifier assigned by the database.
    #[schema(example = 1)]
    pub id: u64,
    /// Name of the beer.
    #[schema(example = "Terrax Pilsner")]
    pub name: String,
    /// Brewery that makes it.
    #[schema(example = "Terrax Micro-Brewery Inc")]
    pub brewery: String,
    /// Style, e.g. "Pilsner" or "IPA".
    #[schema(example = "Pilsner")]
    pub style: String,
    /// Alcohol by volume, in percent (0–100).
    #[schema(example = 5.2, minimum = 0, maximum = 100)]
    pub abv: f64,
    /// International Bitterness Units, when known.
    #[schema(example = 35)]
    pub ibu: Option<u32>,
    /// Free-text description, when given.
    pub description: Option<String>,
}

/// The fields a client sends to create or replace a beer; the id comes from the URL or the
/// database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BeerInput {
    /// Name of the beer (1–100 characters).
    #[schema(example = "Terrax Pilsner", min_length = 1, max_length = 100)]
    pub name: String,
    /// Brewery that makes it (1–100 characters).
    #[schema(example = "Terrax Micro-Brewery Inc", min_length = 1, max_length = 100)]
    pub brewery: String,
    /// Style (1–50 characters).
    #[schema(example = "Pilsner", min_length = 1, max_length = 50)]
    pub style: String,
    /// Alcohol by volume, in percent (0–100).
    #[schema(example = 5.2, minimum = 0, maximum = 100)]
    pub abv: f64,
    /// International Bitterness Units (0–1000), or null.
    #[schema(example = 35, minimum = 0, maximum = 1000)]
    pub ibu: Option<u32>,
    /// Free-text description (at most 1000 characters), or null.
    #[schema(max_length = 1000)]
    pub description: Option<String>,
}

impl BeerInput {
    /// Validates a request body, collecting every field error rather than stopping at the first.
    pub fn from_json(body: &Value) -> Result<Self, Vec<FieldError>> {
        let Some(obj) = body.as_object() else {
            return Err(vec![FieldError::new("body", "must be a JSON object")]);
        };
        let mut errors = Vec::new();
        let name = required_text(obj, "name", MAX_NAME_LEN, &mut errors);
        let brewery = required_text(obj, "brewery", MAX_NAME_LEN, &mut errors);
        let style = required_text(obj, "style", MAX_STYLE_LEN, &mut errors);
        let abv = abv(obj, &mut errors);
        let ibu = ibu(obj, &mut errors);
        let description = optional_text(obj, "description", MAX_DESCRIPTION_LEN, &mut errors);
        match (name, brewery, style, abv) {
            (Some(name), Some(brewery), Some(style), Some(abv)) if errors.is_empty() => Ok(Self {
                name,
                brewery,
                style,
                abv,
                ibu,
                description,
            }),
            _ => Err(errors),
        }
    }
}

/// Reads a required string field, trimmed, non-empty and at most `max` characters.
fn required_text(
    obj: &Map<String, Value>,
    field: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match obj.get(field) {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(field, "is required"));
            None
        }
        Some(_) => {
            let text = optional_text(obj, field, max, errors)?;
            if text.is_empty() {
                errors.push(FieldError::new(field, "must not be blank"));
                return None;
            }
            Some(text)
        }
    }
}

/// Reads an optional string field; absent or null is `None`. Surrounding whitespace is dropped
/// so that "  " counts as blank and stored names compare cleanly.
fn optional_text(
    obj: &Map<String, Value>,
    field: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.chars().count() > max {
                errors.push(FieldError::new(
                    field,
                    format!("must be at most {max} characters"),
                ));
                return None;
            }
            Some(s.to_owned())
        }
        Some(_) => {
            errors.push(FieldError::new(field, "must be a string"));
            None
        }
    }
}

/// Reads the required alcohol percentage.
fn abv(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<f64> {
    match obj.get("abv") {
        None | Some(Value::Null) => {
            errors.push(FieldError::new("abv", "is required"));
            None
        }
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if (0.0..=100.0).contains(&v) => Some(v),
            _ => {
                errors.push(FieldError::new("abv", "must be between 0 and 100"));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new("abv", "must be a number"));
            None
        }
    }
}

/// Reads the optional bitterness, a whole number.
fn ibu(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<u32> {
    match obj.get("ibu") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            // The bound keeps the value well inside u32, so the conversion cannot fail.
            Some(v) if v <= MAX_IBU => u32::try_from(v).ok(),
            _ => {
                errors.push(FieldError::new(
                    "ibu",
                    format!("must be a whole number between 0 and {MAX_IBU}"),
                ));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new("ibu", "must be a number"));
            None
        }
    }
}

/// A validated page request: `page` counts from 0, like Spring Data's `Pageable`, so the
/// original SpringBoot API's clients keep working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Zero-based page number.
    pub page: u32,
    /// Items per page (1–100).
    pub size: u32,
}

impl PageRequest {
    /// Validates the raw `page` and `size` query values; absent means the default.
    pub fn parse(page: Option<&str>, size: Option<&str>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let page = match page.map(str::parse::<u32>) {
            None => Some(0),
            Some(Ok(p)) => Some(p),
            Some(Err(_)) => {
                errors.push(FieldError::new("page", "must be a whole number, 0 or more"));
                None
            }
        };
        let size = match size.map(str::parse::<u32>) {
            None => Some(DEFAULT_PAGE_SIZE),
            Some(Ok(s)) if (1..=MAX_PAGE_SIZE).contains(&s) => Some(s),
            Some(_) => {
                errors.push(FieldError::new(
                    "size",
                    format!("must be a whole number between 1 and {MAX_PAGE_SIZE}"),
                ));
                None
            }
        };
        match (page, size) {
            (Some(page), Some(size)) => Ok(Self { page, size }),
            _ => Err(errors),
        }
    }

    /// Rows to skip to reach this page.
    pub fn offset(&self) -> u64 {
        u64::from(self.page) * u64::from(self.size)
    }
}

/// One page of beers with the totals a client needs to page through the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BeerPage {
    /// The beers on this page, ordered by id.
    pub content: Vec<Beer>,
    /// Zero-based number of this page.
    pub page: u32,
    /// Requested page size.
    pub size: u32,
    /// Number of beers across all pages.
    pub total_elements: u64,
    /// Number of pages at this size.
    pub total_pages: u64,
}

impl BeerPage {
    /// Assembles a page from its rows and the table's total.
    pub fn new(content: Vec<Beer>, request: PageRequest, total_elements: u64) -> Self {
        Self {
            content,
            page: request.page,
            size: request.size,
            total_elements,
            total_pages: total_elements.div_ceil(u64::from(request.size)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn accepts_a_complete_beer_and_trims_text() {
        let input = BeerInput::from_json(&json!({
            "name": " Pils ", "brewery": "Terrax", "style": "Pilsner",
            "abv": 5, "ibu": 30, "description": null
        }))
        .unwrap();
        assert_eq!(input.name, "Pils");
        assert_eq!(input.abv, 5.0);
        assert_eq!(input.ibu, Some(30));
        assert_eq!(input.description, None);
    }

    #[test]
    fn reports_every_bad_field() {
        let errors = BeerInput::from_json(&json!({
            "name": "  ", "style": 7, "abv": 120, "ibu": -1, "description": "x".repeat(1001)
        }))
        .unwrap_err();
        assert_eq!(
            fields(&errors),
            ["name", "brewery", "style", "abv", "ibu", "description"]
        );
        assert_eq!(errors[1].message, "is required");
        assert_eq!(errors[3].message, "must be between 0 and 100");
    }

    #[test]
    fn rejects_non_objects_and_text_abv() {
        assert_eq!(
            fields(&BeerInput::from_json(&json!([1])).unwrap_err()),
            ["body"]
        );
        let errors = BeerInput::from_json(&json!({
            "name": "a", "brewery": "b", "style": "c", "abv": "strong"
        }))
        .unwrap_err();
        assert_eq!(errors, [FieldError::new("abv", "must be a number")]);
    }

    #[test]
    fn abv_bounds_are_inclusive() {
        for abv in [0.0, 100.0] {
            let body = json!({"name": "a", "brewery": "b", "style": "c", "abv": abv});
            assert!(BeerInput::from_json(&body).is_ok(), "abv {abv}");
        }
    }

    #[test]
    fn page_requests_default_and_validate() {
        assert_eq!(
            PageRequest::parse(None, None).unwrap(),
            PageRequest {
                page: 0,
                size: DEFAULT_PAGE_SIZE
            }
        );
        assert_eq!(
            PageRequest::parse(Some("2"), Some("5")).unwrap().offset(),
            10
        );
        let errors = PageRequest::parse(Some("-1"), Some("0")).unwrap_err();
        assert_eq!(fields(&errors), ["page", "size"]);
        assert!(PageRequest::parse(None, Some("101")).is_err());
    }

    #[test]
    fn page_totals_round_up() {
        let request = PageRequest { page: 0, size: 2 };
        assert_eq!(BeerPage::new(vec![], request, 5).total_pages, 3);
        assert_eq!(BeerPage::new(vec![], request, 0).total_pages, 0);
    }
}
