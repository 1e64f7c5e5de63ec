//! TODO(helper): fields
