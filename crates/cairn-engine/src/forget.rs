//! Snapshot retention policies (restic's forget semantics): grouping, keep rules, reasons.
