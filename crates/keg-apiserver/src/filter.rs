//! Label and field selectors of list and watch requests.

use keg_apimachinery::fields::FieldSelector;
use keg_apimachinery::labels::Selector;
use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::objects::labels;
use crate::request::Query;
use crate::resources::Resource;

/// The selectors of one request.
pub struct Filter {
    kind: String,
    labels: Option<Selector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    /// Parses `labelSelector` and `fieldSelector`; malformed ones are a 400.
    pub fn from_query(res: &Resource, query: &Query) -> Result<Filter> {
        let labels = match query.get("labelSelector") {
            Some(s) => Some(Selector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?),
            None => None,
        };
        let fields = match query.get("fieldSelector") {
            Some(s) => {
                let selector =
                    FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
                selector
                    .check_supported(&res.kind, res.custom.is_some())
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                Some(selector)
            }
            None => None,
        };
        Ok(Filter {
            kind: res.kind.clone(),
            labels,
            fields,
        })
    }

    /// Whether there is any selector at all.
    pub fn is_everything(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    /// Whether an object passes both selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(selector) = &self.labels
            && !selector.matches(&labels(obj))
        {
            return false;
        }
        if let Some(selector) = &self.fields
            && !selector
                .matches(|path| keg_apimachinery::fields::field_value(&self.kind, obj, path))
        {
            return false;
        }
        true
    }
}
