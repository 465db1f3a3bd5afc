//! Repository statistics in restic's modes (restore-size, files-by-contents, raw-data, blobs-per-file).
