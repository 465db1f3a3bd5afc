//! `dump`: write one file's contents, or a directory as a tar or zip archive, to any
//! [`Write`] (streamed; no `Seek` needed).
//!
//! Path resolution follows restic's `printFromTree`: `/` (or an empty path) dumps the whole
//! tree as an archive; otherwise the path components are followed from the root; a file at
//! the end is written raw, a directory is written as an archive of its contents with names
//! relative to the snapshot root (`dump snap /a/b` gives `a/b/x`, `a/b/y/`, …; the
//! directory itself is not an entry). Inside subdirectories only files, directories and
//! symlinks are archived; the top level of the dumped directory includes every node (other
//! types become empty regular entries, as with restic).

mod tar;
mod zip;

use crate::select::{clean_components, join_path, load_sorted, subtree_of, walk_tree_raw};
use crate::{EngineError, Result};
use cairn_repo::node::{Node, NodeType};
use cairn_repo::repository::Repository;
use cairn_repo::{BlobType, Id, RepoError};
use std::io::Write;

/// Archive format of a directory dump.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// POSIX tar (ustar, PAX records where needed).
    #[default]
    Tar,
    /// Zip (deflate for files, data descriptors, zip64 when needed).
    Zip,
}

impl std::str::FromStr for ArchiveFormat {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<ArchiveFormat> {
        match s {
            "tar" => Ok(ArchiveFormat::Tar),
            "zip" => Ok(ArchiveFormat::Zip),
            other => Err(EngineError::Invalid(format!(
                "unknown archive format {other:?}"
            ))),
        }
    }
}

/// What a dump path refers to.
#[derive(Clone, Debug, PartialEq)]
pub enum DumpTarget {
    /// A regular file: its contents are written raw.
    File {
        /// Path in the snapshot, e.g. `/a/b.txt`.
        path: String,
        /// The file node.
        node: Box<Node>,
    },
    /// A directory (or the whole tree): written as an archive.
    Archive {
        /// The directory's tree.
        tree: Id,
        /// Its path in the snapshot (`/` for the root); entry names are below it.
        root: String,
    },
}

impl DumpTarget {
    /// True if dumping this target produces an archive (restic refuses to write archives
    /// to a terminal).
    pub fn is_archive(&self) -> bool {
        matches!(self, DumpTarget::Archive { .. })
    }
}

/// Resolves a dump path inside `tree` (restic's `printFromTree` rules; see the module docs).
pub fn resolve_dump_path(repo: &Repository, tree: Id, path: &str) -> Result<DumpTarget> {
    let comps = clean_components(path);
    if comps.is_empty() {
        return Ok(DumpTarget::Archive {
            tree,
            root: "/".to_string(),
        });
    }
    let mut current = tree;
    let mut item: Vec<u8> = Vec::new();
    let last = comps.len() - 1;
    for (i, comp) in comps.iter().enumerate() {
        item = join_path(&item, comp.as_bytes());
        let shown = String::from_utf8_lossy(&item).into_owned();
        let nodes = load_sorted(repo, &current)?;
        let node = nodes
            .into_iter()
            .find(|n| n.name == comp.as_bytes())
            .ok_or_else(|| EngineError::Invalid(format!("path {shown:?} not found in snapshot")))?;
        match (i == last, &node.node_type) {
            (true, NodeType::File) => {
                return Ok(DumpTarget::File {
                    path: shown,
                    node: Box::new(node),
                });
            }
            (false, NodeType::Dir) => current = subtree_of(&node, &item)?,
            (true, NodeType::Dir) => {
                return Ok(DumpTarget::Archive {
                    tree: subtree_of(&node, &item)?,
                    root: shown,
                });
            }
            (false, t) => {
                return Err(EngineError::Invalid(format!(
                    "{shown:?} should be a dir, but is a {t:?}",
                    t = t.as_str()
                )));
            }
            (true, t) => {
                return Err(EngineError::Invalid(format!(
                    "{shown:?} should be a file, but is a {t:?}",
                    t = t.as_str()
                )));
            }
        }
    }
    // Unreachable: the loop returns on its last component.
    Err(EngineError::Invalid(format!(
        "path {path:?} not found in snapshot"
    )))
}

/// Name used in I/O errors of the output stream.
const OUTPUT: &str = "dump output";

pub(crate) fn out_err(e: std::io::Error) -> EngineError {
    EngineError::io(OUTPUT, e)
}

/// How many blobs are fetched in parallel while streaming a file.
const PREFETCH: usize = 4;

/// Loads the data blobs `content` in order (a few in parallel) and hands each plaintext to
/// `sink`. Returns the number of bytes.
pub fn stream_content(
    repo: &Repository,
    content: &[Id],
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<u64> {
    let mut total = 0u64;
    for window in content.chunks(PREFETCH) {
        let blobs: Vec<std::result::Result<Vec<u8>, RepoError>> = if window.len() == 1 {
            window
                .iter()
                .map(|id| repo.load_blob(BlobType::Data, id))
                .collect()
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = window
                    .iter()
                    .map(|id| s.spawn(move || repo.load_blob(BlobType::Data, id)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(RepoError::Invalid("blob loader thread panicked".into()))
                        })
                    })
                    .collect()
            })
        };
        for b in blobs {
            let b = b?;
            total += b.len() as u64;
            sink(&b)?;
        }
    }
    Ok(total)
}

/// Writes a file node's contents to `w`; returns the number of bytes.
pub fn write_file(repo: &Repository, node: &Node, w: &mut dyn Write) -> Result<u64> {
    let content = node.content.as_deref().unwrap_or_default();
    stream_content(repo, content, &mut |b| w.write_all(b).map_err(out_err))
}

/// Plaintext size of a file's content according to the index (checked against the node's
/// size before an archive header promises it).
pub(crate) fn indexed_size(repo: &Repository, node: &Node, path: &[u8]) -> Result<u64> {
    let mut total = 0u64;
    for id in node.content.iter().flatten() {
        let loc = repo.locate(BlobType::Data, id).ok_or_else(|| {
            EngineError::Repo(RepoError::BlobNotFound(format!(
                "data {} (file {})",
                id.to_hex(),
                String::from_utf8_lossy(path)
            )))
        })?;
        total += match loc.uncompressed_length {
            Some(u) => u64::from(u),
            None => u64::from(loc.length).saturating_sub(cairn_repo::crypto::OVERHEAD as u64),
        };
    }
    Ok(total)
}

/// Streams a file's content into an archive after checking it has the recorded size.
pub(crate) fn archive_content(
    repo: &Repository,
    node: &Node,
    path: &[u8],
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let written = stream_content(repo, node.content.as_deref().unwrap_or_default(), sink)?;
    if written != node.size {
        return Err(size_mismatch(path, written, node.size));
    }
    Ok(())
}

pub(crate) fn size_mismatch(path: &[u8], actual: u64, recorded: u64) -> EngineError {
    EngineError::Repo(RepoError::corrupt(
        format!("file {}", String::from_utf8_lossy(path)),
        format!("content has {actual} bytes but the node records size {recorded}"),
    ))
}

/// An archive being written: one entry per node, then `finish`.
trait ArchiveSink {
    /// Adds `node` under the absolute snapshot path `path` (`/a/b`).
    fn add(&mut self, repo: &Repository, path: &[u8], node: &Node) -> Result<()>;
    /// Writes the archive trailer.
    fn finish(&mut self) -> Result<()>;
}

/// Writes the contents of `tree` (located at `root` in the snapshot) as an archive to `w`.
pub fn write_archive(
    repo: &Repository,
    tree: Id,
    root: &str,
    format: ArchiveFormat,
    w: &mut dyn Write,
) -> Result<()> {
    let mut sink: Box<dyn ArchiveSink + '_> = match format {
        ArchiveFormat::Tar => Box::new(tar::TarSink::new(w)),
        ArchiveFormat::Zip => Box::new(zip::ZipSink::new(w)),
    };
    for node in load_sorted(repo, &tree)? {
        let path = join_path(root.as_bytes(), &node.name);
        sink.add(repo, &path, &node)?;
        if node.node_type == NodeType::Dir {
            let sub = subtree_of(&node, &path)?;
            walk_tree_raw(repo, sub, &path, &mut |p, n| {
                if matches!(
                    n.node_type,
                    NodeType::File | NodeType::Dir | NodeType::Symlink
                ) {
                    sink.add(repo, p, n)?;
                }
                Ok(crate::select::WalkAction::Continue)
            })?;
        }
    }
    sink.finish()
}

/// `restic dump`: resolves `path` in `tree` and writes the file or archive to `w`.
/// Returns what was dumped.
pub fn dump(
    repo: &Repository,
    tree: Id,
    path: &str,
    format: ArchiveFormat,
    w: &mut dyn Write,
) -> Result<DumpTarget> {
    let target = resolve_dump_path(repo, tree, path)?;
    match &target {
        DumpTarget::File { node, .. } => {
            write_file(repo, node, w)?;
        }
        DumpTarget::Archive { tree, root } => write_archive(repo, *tree, root, format, w)?,
    }
    w.flush().map_err(out_err)?;
    Ok(target)
}

/// Archive entry name: the snapshot path without its leading `/` (restic's
/// `filepath.Rel("/", path)`), with a trailing `/` for directories.
pub(crate) fn entry_name(path: &[u8], node: &Node) -> Vec<u8> {
    let mut name = path.strip_prefix(b"/").unwrap_or(path).to_vec();
    if node.node_type == NodeType::Dir {
        name.push(b'/');
    }
    name
}

/// Rounds a time to whole seconds like Go's `Time.Round(time.Second)` (halves round up).
pub(crate) fn round_secs(t: &cairn_repo::gotime::GoTime) -> i64 {
    let (s, n) = t.unix();
    if n >= 500_000_000 {
        s.saturating_add(1)
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_repo::gotime::GoTime;

    #[test]
    fn names_and_rounding() {
        let d = Node::new("x", NodeType::Dir);
        let f = Node::new("x", NodeType::File);
        assert_eq!(entry_name(b"/a/x", &d), b"a/x/");
        assert_eq!(entry_name(b"/a/x", &f), b"a/x");
        let t = GoTime::from_unix_with_offset(10, 500_000_000, 0);
        assert_eq!(round_secs(&t), 11);
        let t = GoTime::from_unix_with_offset(10, 499_999_999, 0);
        assert_eq!(round_secs(&t), 10);
        assert_eq!("zip".parse::<ArchiveFormat>().unwrap(), ArchiveFormat::Zip);
        assert!("rar".parse::<ArchiveFormat>().is_err());
    }
}
