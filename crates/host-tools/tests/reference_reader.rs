//! Differential test of our tree index (`ferrite_machine::tree`) against the `fdt` crate: for
//! every real tree in `$FERRITE_DTB_DIR` and every tree made with the writer, both readers see
//! the same nodes (by path, in order), the same properties (name and value, in order) and the
//! same `/memreserve/` entries.

mod common;

use common::*;
use ferrite_machine::tree::DeviceTree;

/// Every node as (path, properties), depth first in blob order.
type Flat = Vec<(String, Vec<(String, Vec<u8>)>)>;

fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

fn ours(blob: &[u8]) -> (Flat, Vec<(u64, u64)>) {
    let tree = DeviceTree::parse(blob).unwrap_or_else(|e| panic!("our reader refuses it: {e}"));
    fn walk(tree: &DeviceTree, node: usize, path: String, out: &mut Flat) {
        let n = tree.node(node);
        let props = n
            .props
            .iter()
            .map(|p| (p.name.to_string(), p.value.to_vec()))
            .collect();
        out.push((path.clone(), props));
        for &c in &n.children {
            walk(tree, c, child_path(&path, tree.node(c).name), out);
        }
    }
    let mut flat = Vec::new();
    walk(&tree, tree.root(), "/".into(), &mut flat);
    assert_eq!(
        flat.len(),
        tree.nodes.len(),
        "every node is reachable from the root"
    );
    for i in tree.all() {
        assert_eq!(
            tree.find(&tree.path(i)).map(|n| tree.path(n)),
            Some(tree.path(i)),
            "find(path) of node {i}"
        );
    }
    (flat, tree.memreserve.clone())
}

fn theirs(blob: &[u8]) -> (Flat, Vec<(u64, u64)>) {
    let fdt = fdt::Fdt::new(blob).unwrap_or_else(|e| panic!("fdt refuses it: {e:?}"));
    fn walk(node: fdt::node::FdtNode<'_, '_>, path: String, out: &mut Flat) {
        let props = node
            .properties()
            .map(|p| (p.name.to_string(), p.value.to_vec()))
            .collect();
        out.push((path.clone(), props));
        for child in node.children() {
            walk(child, child_path(&path, child.name), out);
        }
    }
    let mut flat = Vec::new();
    walk(fdt.find_node("/").expect("a root"), "/".into(), &mut flat);
    let memreserve = fdt
        .memory_reservations()
        .map(|r| (r.address() as usize as u64, r.size() as u64))
        .collect();
    (flat, memreserve)
}

fn compare(name: &str, blob: &[u8]) {
    let (our_nodes, our_rsv) = ours(blob);
    let (their_nodes, their_rsv) = theirs(blob);
    assert_eq!(our_rsv, their_rsv, "{name}: memreserve entries");
    for (i, (a, b)) in our_nodes.iter().zip(&their_nodes).enumerate() {
        assert_eq!(a.0, b.0, "{name}: node {i} path");
        let names = |p: &[(String, Vec<u8>)]| p.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&a.1),
            names(&b.1),
            "{name}: property names of {}",
            a.0
        );
        for ((pn, ours), (_, theirs)) in a.1.iter().zip(&b.1) {
            assert_eq!(ours, theirs, "{name}: value of {pn} in {}", a.0);
        }
    }
    assert_eq!(
        our_nodes.len(),
        their_nodes.len(),
        "{name}: number of nodes"
    );
    assert!(our_nodes.len() > 1, "{name}: a tree of more than a root");
}

#[test]
fn real_trees_read_the_same_as_with_the_fdt_crate() {
    let trees = real_trees();
    for (name, blob) in &trees {
        compare(name, blob);
    }
    eprintln!("{} real tree(s) compared", trees.len());
}

#[test]
fn built_trees_read_the_same_as_with_the_fdt_crate() {
    for (name, fdt) in sample_trees() {
        compare(&name, &fdt.build());
    }
}

#[test]
fn built_trees_read_back_as_written() {
    // The writer and our reader agree on a tree spelled out by hand (so neither can be wrong in
    // the same way as the other without this noticing).
    let fdt = Fdt::new(
        Node::root(2, 1)
            .string("model", "m")
            .child(Node::new("a@1").u32("x", 7).flag("y"))
            .child(Node::new("b").child(Node::new("c").strings("s", &["p", "q"]))),
    )
    .memreserve(0x1000, 0x2000)
    .memreserve(0x8000_0000_0000, 0x10);
    let (flat, rsv) = ours(&fdt.build());
    let p = |n: &str, v: &[u8]| (n.to_string(), v.to_vec());
    assert_eq!(
        flat,
        vec![
            (
                "/".to_string(),
                vec![
                    p("#address-cells", &[0, 0, 0, 2]),
                    p("#size-cells", &[0, 0, 0, 1]),
                    p("model", b"m\0"),
                ]
            ),
            ("/a@1".to_string(), vec![p("x", &[0, 0, 0, 7]), p("y", &[])]),
            ("/b".to_string(), vec![]),
            ("/b/c".to_string(), vec![p("s", b"p\0q\0")]),
        ]
    );
    assert_eq!(rsv, vec![(0x1000, 0x2000), (0x8000_0000_0000, 0x10)]);
}

#[test]
fn nop_tokens_are_invisible_to_our_reader() {
    // The fdt crate cannot read these (it stops at a NOP between properties), so compare our
    // reading of each tree with and without NOPs instead.
    for (name, fdt) in sample_trees() {
        let plain = ours(&fdt.build());
        let nopped = ours(&fdt.clone().with_nops().build());
        assert_eq!(plain, nopped, "{name}");
    }
}
