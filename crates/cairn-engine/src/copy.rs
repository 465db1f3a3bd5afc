//! Copy snapshots between repositories (re-chunking when chunker parameters differ).
