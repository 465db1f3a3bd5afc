//! Maintenance support on an open repository: saving blobs regardless of the index (repacking),
//! writing complete index files, removing files.

use super::Repository;

impl Repository {}
