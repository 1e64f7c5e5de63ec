//! TODO(helper): table
