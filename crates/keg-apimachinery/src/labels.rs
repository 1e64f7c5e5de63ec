//! TODO(helper): labels
