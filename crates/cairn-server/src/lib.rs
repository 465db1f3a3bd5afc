//! The restic REST protocol server. Not yet implemented.
