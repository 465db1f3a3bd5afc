//! Tree blobs: `{"nodes":[…]}\n` with nodes sorted by raw name (spec §10.1).
//!
//! [`Tree::encode`] reproduces restic's bytes exactly (so the same directory gets the same
//! tree ID as with restic 0.14) and refuses unsorted or duplicate names instead of silently
//! sorting: call [`Tree::sort`] or build with [`Tree::insert`].

use crate::error::{RepoError, Result};
use crate::gojson::reader::JsonReader;
use crate::id::Id;
use crate::node::{Node, decode_node};

/// A directory listing: the nodes of one tree blob.
#[derive(Default, Clone, Debug, PartialEq)]
pub struct Tree {
    /// Nodes, strictly ascending by raw name bytes.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Tree {
        Tree::default()
    }

    /// Sorts the nodes by raw name bytes (stable; duplicates stay and make `encode` fail).
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Inserts `node` at its sorted position; error if a node with that name exists.
    pub fn insert(&mut self, node: Node) -> Result<()> {
        match self
            .nodes
            .binary_search_by(|n| n.name.as_slice().cmp(&node.name))
        {
            Ok(_) => Err(RepoError::Invalid(format!(
                "duplicate name {:?} in tree",
                node.name_lossy()
            ))),
            Err(pos) => {
                self.nodes.insert(pos, node);
                Ok(())
            }
        }
    }

    /// The node named `name` (binary search; the tree must be sorted, as restic's are).
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .and_then(|i| self.nodes.get(i))
    }

    /// Checks that names are non-empty, strictly ascending and therefore unique.
    pub fn check_sorted(&self) -> Result<()> {
        if let Some(n) = self.nodes.iter().find(|n| n.name.is_empty()) {
            return Err(RepoError::Invalid(format!(
                "tree node with empty name (type {})",
                n.node_type
            )));
        }
        for w in self.nodes.windows(2) {
            if let [a, b] = w
                && a.name >= b.name
            {
                let what = if a.name == b.name {
                    "duplicate"
                } else {
                    "unsorted"
                };
                return Err(RepoError::Invalid(format!(
                    "{what} tree node names {:?} and {:?}",
                    a.name_lossy(),
                    b.name_lossy()
                )));
            }
        }
        Ok(())
    }

    /// The exact tree blob bytes restic writes: `{"nodes":[` + nodes joined by `,` + `]}\n`.
    /// Fails ([`RepoError::Invalid`]) for empty, unsorted or duplicate names.
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.check_sorted()?;
        let mut out = Vec::with_capacity(16 + self.nodes.len() * 420);
        out.extend_from_slice(b"{\"nodes\":[");
        for (i, node) in self.nodes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            node.encode_to(&mut out);
        }
        out.extend_from_slice(b"]}\n");
        Ok(out)
    }

    /// [`Tree::encode`] plus the blob ID (SHA-256 of the bytes).
    pub fn encode_with_id(&self) -> Result<(Vec<u8>, Id)> {
        let bytes = self.encode()?;
        let id = Id::hash(&bytes);
        Ok((bytes, id))
    }

    /// Parses a tree blob with Go/restic semantics: unknown keys are skipped, `"nodes": null`
    /// or a missing `nodes` is an empty tree, node names are unquoted. Order is not checked.
    /// Any syntax error, wrong type, bad ID/time/base64 or unquotable name is
    /// [`RepoError::Corrupt`].
    ///
    /// Memory: every node object becomes one [`Node`] (352 bytes on 64-bit targets, plus its
    /// strings and IDs). Real nodes take well over 100 bytes of JSON, but a blob of minimal
    /// `{}` nodes (3 bytes each) can need up to about `size_of::<Node>()` bytes per input
    /// byte while the node vector grows — the same per-node cost as restic's Go structs.
    /// Input size itself is bounded by the caller (decompression stops at
    /// [`crate::compress::MAX_DECOMPRESSED_SIZE`]).
    pub fn decode(data: &[u8]) -> Result<Tree> {
        decode_tree(data).map_err(|e| RepoError::corrupt("tree blob", e))
    }
}

fn decode_tree(data: &[u8]) -> std::result::Result<Tree, String> {
    let mut r = JsonReader::new(data);
    let mut tree = Tree::default();
    r.begin_object()?;
    let mut first = true;
    while let Some(key) = r.next_key(&mut first)? {
        if !key.eq_ignore_ascii_case("nodes") {
            r.skip_value()?;
            continue;
        }
        tree.nodes.clear();
        if r.try_null()? {
            continue;
        }
        r.begin_array()?;
        let mut first = true;
        while r.next_element(&mut first)? {
            if r.try_null()? {
                return Err(r.error("null node in tree"));
            }
            tree.nodes.push(decode_node(&mut r)?);
        }
    }
    r.finish()?;
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gotime::GoTime;
    use crate::node::NodeType;
    use proptest::prelude::*;

    const EMPTY_TREE_ID: &str = "ac08ce34ba4f8123618661bef2425f7028ffb9ac740578a3ee88684d2523fee8";

    #[test]
    fn empty_tree_bytes_and_id() {
        let (bytes, id) = Tree::new().encode_with_id().unwrap();
        assert_eq!(bytes, b"{\"nodes\":[]}\n");
        assert_eq!(id.to_hex(), EMPTY_TREE_ID);
        assert_eq!(Tree::decode(&bytes).unwrap(), Tree::new());
        for alt in [
            &b"{\"nodes\":null}"[..],
            b"{}",
            b" { \"other\" : [1, {\"a\":null}], \"NODES\" : [ ] } \n",
        ] {
            assert_eq!(Tree::decode(alt).unwrap(), Tree::new(), "{alt:?}");
        }
    }

    #[test]
    fn decode_rejects_garbage() {
        for bad in [
            &b""[..],
            b"null",
            b"[]",
            b"{\"nodes\":[null]}",
            b"{\"nodes\":{}}",
            b"{\"nodes\":[]} x",
            b"{\"nodes\":[],}",
            b"{\"nodes\":[{\"name\":\"a\"},]}",
            b"{\"nodes\":[{\"name\":\"a\\\\q\"}]}",
            b"{\"nodes\":[{\"name\":\"a\",\"mode\":-1}]}",
            b"{\"nodes\":[{\"name\":\"a\",\"mode\":4294967296}]}",
            b"{\"nodes\":[{\"name\":\"a\",\"size\":1.5}]}",
            b"{\"nodes\":[{\"name\":\"a\",\"mtime\":\"yesterday\"}]}",
            b"{\"nodes\":[{\"name\":\"a\",\"content\":[\"abc\"]}]}",
            b"{\"nodes\":[{\"name\":\"a\",\"subtree\":12}]}",
            b"{\"nodes\":[{\"name\":\"a\",\"linktarget_raw\":\"@@\"}]}",
            b"{\"nodes\":[{\"name\":\"a\",\"x\":[1,2}]}",
            b"{\"nodes\":[{\"name\":\"a\x01\"}]}",
        ] {
            assert!(
                Tree::decode(bad).is_err(),
                "{:?} should fail",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn encode_requires_sorted_unique_names() {
        let mut t = Tree::new();
        t.nodes.push(Node::new("b", NodeType::File));
        t.nodes.push(Node::new("a", NodeType::File));
        assert!(t.encode().is_err());
        t.sort();
        assert!(t.encode().is_ok());
        t.nodes.push(Node::new("b", NodeType::Dir));
        assert!(t.encode().is_err());
        let mut t = Tree::new();
        t.nodes.push(Node::new("", NodeType::File));
        assert!(t.encode().is_err());

        // Sorting is bytewise on raw names: 'Z' < 'a' < 0xe9 < 0xff.
        let mut t = Tree::new();
        for name in [&b"a"[..], b"\xff", b"Z", b"caf\xe9", b"caf\xc3\xa9"] {
            t.insert(Node::new(name, NodeType::File)).unwrap();
        }
        assert!(t.insert(Node::new("a", NodeType::Dir)).is_err());
        let names: Vec<&[u8]> = t.nodes.iter().map(|n| n.name.as_slice()).collect();
        assert_eq!(
            names,
            [&b"Z"[..], b"a", b"caf\xc3\xa9", b"caf\xe9", b"\xff"]
        );
        assert!(t.find(b"caf\xe9").is_some());
        assert!(t.find(b"cafe").is_none());
        let bytes = t.encode().unwrap();
        assert_eq!(Tree::decode(&bytes).unwrap(), t);
    }

    fn arb_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 1..max),
            proptest::collection::vec(
                prop_oneof![
                    Just(b'"'),
                    Just(b'\\'),
                    Just(b'\t'),
                    Just(b'\n'),
                    Just(0u8),
                    Just(0x7f),
                    Just(b'<'),
                    Just(0xe9),
                    0x20u8..0x7f
                ],
                1..max
            ),
            "[\\PC\\p{Cf}\\p{Zs}\\u{2028}\\u{0}-\\u{1f}]{1,12}".prop_map(String::into_bytes),
        ]
    }

    fn arb_time() -> impl Strategy<Value = GoTime> {
        (
            -62_135_596_800i64..253_402_300_799,
            0u32..1_000_000_000,
            -50_400i32..=50_400,
        )
            .prop_map(|(s, n, o)| GoTime::from_unix_with_offset(s, n, o / 60 * 60))
    }

    fn arb_node() -> impl Strategy<Value = Node> {
        let ids = proptest::option::of(proptest::collection::vec(
            any::<[u8; 32]>().prop_map(Id),
            0..3,
        ));
        (
            (
                arb_bytes(24),
                0usize..10,
                any::<u32>(),
                arb_time(),
                arb_time(),
            ),
            (
                any::<u32>(),
                any::<u32>(),
                "\\PC{0,6}",
                any::<u64>(),
                any::<u64>(),
            ),
            (
                proptest::option::of(arb_bytes(20)),
                ids,
                any::<Option<[u8; 32]>>(),
            ),
            (
                proptest::collection::vec(("[a-z.<&]{1,8}", arb_bytes(6)), 0..2),
                any::<u64>(),
            ),
        )
            .prop_map(|(a, b, c, d)| {
                let types = [
                    "file",
                    "dir",
                    "symlink",
                    "dev",
                    "chardev",
                    "fifo",
                    "socket",
                    "irregular",
                    "",
                    "weird<&>",
                ];
                let (name, ty, mode, mtime, ctime) = a;
                let (uid, gid, user, inode, size) = b;
                let (link, content, subtree) = c;
                let (xattrs, device) = d;
                Node {
                    name,
                    node_type: NodeType::parse(types.get(ty).copied().unwrap_or("file")),
                    mode,
                    mtime,
                    atime: mtime,
                    ctime,
                    uid,
                    gid,
                    group: user.clone(),
                    user,
                    inode,
                    device_id: inode / 3,
                    size,
                    links: size % 5,
                    linktarget: link.unwrap_or_default(),
                    extended_attributes: xattrs
                        .into_iter()
                        .map(|(name, value)| crate::node::ExtendedAttribute { name, value })
                        .collect(),
                    generic_attributes: Vec::new(),
                    device,
                    content,
                    subtree: subtree.map(Id),
                    error: String::new(),
                }
            })
    }

    proptest! {
        #[test]
        fn prop_tree_round_trip(nodes in proptest::collection::vec(arb_node(), 0..6)) {
            let mut t = Tree::new();
            for n in nodes {
                let _ = t.insert(n);
            }
            let bytes = t.encode().unwrap();
            let back = Tree::decode(&bytes).unwrap();
            prop_assert_eq!(back.nodes.len(), t.nodes.len());
            for (a, b) in back.nodes.iter().zip(&t.nodes) {
                prop_assert_eq!(a, b);
                prop_assert_eq!(a.mtime.format(), b.mtime.format());
                prop_assert_eq!(a.ctime.format(), b.ctime.format());
            }
            // Re-encoding is byte-identical (canonical form).
            prop_assert_eq!(back.encode().unwrap(), bytes);
        }
    }
}
