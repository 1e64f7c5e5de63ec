//! TODO(helper): validation
