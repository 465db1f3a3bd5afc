//! Rewrite snapshots: exclude files, repair damaged trees (repair snapshots).
