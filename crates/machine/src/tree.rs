//! An index of a validated device tree blob: nodes with their parents, properties as byte slices,
//! lookups by path, alias and phandle, and cell-sized number reading. Owns no interpretation of
//! what the nodes mean (that is `describe`); must only be built from a blob `fdt_check` accepted.
//!
//! Why not navigate with the `fdt` crate: it panics on blobs with NOP tokens between properties
//! or nodes (legal, and what `fdtput -d` leaves) and asserts on malformed input, so the kernel
//! reads through this index and the host tests use `fdt` as an independent reference reader.

use alloc::vec::Vec;

use super::fdt_check::{self, FdtDefect, FdtHeader};

/// One node of the tree.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    /// Name with unit address, e.g. `serial@7e201000`; empty for the root.
    pub name: &'a str,
    pub parent: Option<usize>,
    pub props: Vec<Prop<'a>>,
    pub children: Vec<usize>,
}

#[derive(Debug, Clone, Copy)]
pub struct Prop<'a> {
    pub name: &'a str,
    pub value: &'a [u8],
}

/// A parsed view of a device tree blob. Node 0 is the root.
#[derive(Debug, Clone)]
/// A validated blob with its node and property counts (`DeviceTree::census`).
pub struct Census<'a> {
    blob: &'a [u8],
    header: FdtHeader,
    pub nodes: usize,
    pub props: usize,
}

impl<'a> Census<'a> {
    /// The whole tree, parsed without validating the blob again.
    pub fn parse(&self) -> DeviceTree<'a> {
        DeviceTree::parse_valid(self.blob, self.header, &mut |_| true)
    }
}

pub struct DeviceTree<'a> {
    pub header: FdtHeader,
    pub nodes: Vec<Node<'a>>,
    /// `/memreserve/` entries as (address, size), zero-sized ones included as written.
    pub memreserve: Vec<(u64, u64)>,
    /// (phandle, node), sorted, for interrupt-parent and clock lookups.
    phandles: Vec<(u32, usize)>,
}

fn be32(data: &[u8], at: usize) -> u32 {
    match data.get(at..at + 4) {
        Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

fn be64(data: &[u8], at: usize) -> u64 {
    (be32(data, at) as u64) << 32 | be32(data, at + 4) as u64
}

fn cstr(bytes: &[u8]) -> &str {
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    core::str::from_utf8(&bytes[..len]).unwrap_or("")
}

impl<'a> DeviceTree<'a> {
    /// Validates `blob` and indexes it.
    pub fn parse(blob: &'a [u8]) -> Result<Self, FdtDefect> {
        Self::parse_filtered(blob, &mut |_| true)
    }

    /// Validates a blob and counts its nodes and properties without allocating (what parsing it
    /// takes from the heap: see [`heap_estimate`](Self::heap_estimate)); the census then parses
    /// it without validating it again.
    pub fn census(blob: &'a [u8]) -> Result<Census<'a>, FdtDefect> {
        let header = fdt_check::validate(blob)?;
        let blob = &blob[..header.total_size as usize];
        let structure = &blob[header.off_struct as usize..][..header.size_struct as usize];
        let (mut nodes, mut props, mut at) = (0usize, 0usize, 0usize);
        loop {
            let token = be32(structure, at);
            at += 4;
            match token {
                1 => {
                    nodes += 1;
                    let name = cstr(&structure[at..]);
                    at = (at + name.len() + 1 + 3) & !3;
                }
                3 => {
                    props += 1;
                    let len = be32(structure, at) as usize;
                    at = (at + 8 + len + 3) & !3;
                }
                2 | 4 => {}
                _ => break,
            }
        }
        Ok(Census {
            blob,
            header,
            nodes,
            props,
        })
    }

    /// A generous estimate of the heap a parse of `nodes` and `props` takes at its peak: the
    /// vectors grow by doubling and are copied when they do (both copies alive for a moment).
    pub fn heap_estimate(nodes: usize, props: usize) -> usize {
        let node = core::mem::size_of::<Node<'a>>() + 2 * core::mem::size_of::<usize>();
        let prop = core::mem::size_of::<Prop<'a>>();
        2 * nodes.next_power_of_two() * node + 2 * props * prop + nodes * 2 * 8
    }

    /// Parses only the nodes `keep` accepts, given the names from the root down (the root itself
    /// is always kept, and a node is kept only with its parent): the console's part of a tree
    /// too large to parse whole.
    pub fn parse_filtered(
        blob: &'a [u8],
        keep: &mut dyn FnMut(&[&'a str]) -> bool,
    ) -> Result<Self, FdtDefect> {
        let header = fdt_check::validate(blob)?;
        Ok(Self::parse_valid(blob, header, keep))
    }

    /// The parse of a blob `header` came from validating.
    fn parse_valid(
        blob: &'a [u8],
        header: FdtHeader,
        keep: &mut dyn FnMut(&[&'a str]) -> bool,
    ) -> Self {
        let blob = &blob[..header.total_size as usize];
        let structure = &blob[header.off_struct as usize..][..header.size_struct as usize];
        let strings = &blob[header.off_strings as usize..][..header.size_strings as usize];

        let mut memreserve = Vec::new();
        let mut at = header.off_rsvmap as usize;
        loop {
            let (addr, size) = (be64(blob, at), be64(blob, at + 8));
            if addr == 0 && size == 0 {
                break;
            }
            memreserve.push((addr, size));
            at += 16;
        }

        // The validator guarantees every token, name and property below is in bounds.
        let mut nodes: Vec<Node<'a>> = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        // The path of names from the root's children down, and how deep a skipped subtree is.
        let mut names: Vec<&'a str> = Vec::new();
        let mut skipping = 0usize;
        let mut at = 0usize;
        loop {
            let token = be32(structure, at);
            at += 4;
            match token {
                1 => {
                    let name = cstr(&structure[at..]);
                    at = (at + name.len() + 1 + 3) & !3;
                    if skipping > 0 {
                        skipping += 1;
                        continue;
                    }
                    if !nodes.is_empty() {
                        names.push(name);
                        if !keep(&names) {
                            names.pop();
                            skipping = 1;
                            continue;
                        }
                    }
                    let index = nodes.len();
                    let parent = open.last().copied();
                    if let Some(p) = parent {
                        nodes[p].children.push(index);
                    }
                    nodes.push(Node {
                        name,
                        parent,
                        props: Vec::new(),
                        children: Vec::new(),
                    });
                    open.push(index);
                }
                2 => {
                    if skipping > 0 {
                        skipping -= 1;
                        continue;
                    }
                    open.pop();
                    names.pop();
                }
                3 => {
                    let len = be32(structure, at) as usize;
                    let nameoff = be32(structure, at + 4) as usize;
                    let value = &structure[at + 8..at + 8 + len];
                    let name = cstr(&strings[nameoff..]);
                    if skipping == 0 {
                        if let Some(&node) = open.last() {
                            nodes[node].props.push(Prop { name, value });
                        }
                    }
                    at = (at + 8 + len + 3) & !3;
                }
                4 => {}
                _ => break,
            }
        }
        let mut tree = DeviceTree {
            header,
            nodes,
            memreserve,
            phandles: Vec::new(),
        };
        let mut phandles: Vec<(u32, usize)> = tree
            .all()
            .filter_map(|n| {
                tree.prop_u32(n, "phandle")
                    .or_else(|| tree.prop_u32(n, "linux,phandle"))
                    .map(|p| (p, n))
            })
            .collect();
        // The first node with a phandle wins if a broken tree repeats one.
        phandles.sort_by_key(|&(p, n)| (p, n));
        phandles.dedup_by_key(|&mut (p, _)| p);
        tree.phandles = phandles;
        tree
    }

    pub fn root(&self) -> usize {
        0
    }

    pub fn node(&self, index: usize) -> &Node<'a> {
        &self.nodes[index]
    }

    pub fn prop(&self, node: usize, name: &str) -> Option<&'a [u8]> {
        self.nodes[node]
            .props
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.value)
    }

    pub fn has_prop(&self, node: usize, name: &str) -> bool {
        self.prop(node, name).is_some()
    }

    /// A string property, without its terminating NUL; `None` when absent or not UTF-8.
    pub fn prop_str(&self, node: usize, name: &str) -> Option<&'a str> {
        let value = self.prop(node, name)?;
        let value = value.strip_suffix(&[0]).unwrap_or(value);
        let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
        core::str::from_utf8(&value[..end]).ok()
    }

    /// The strings of a string-list property (e.g. `compatible`).
    pub fn prop_strs(&self, node: usize, name: &str) -> impl Iterator<Item = &'a str> {
        let value = self.prop(node, name).unwrap_or(&[]);
        value
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .filter_map(|s| core::str::from_utf8(s).ok())
    }

    /// A single-cell property.
    pub fn prop_u32(&self, node: usize, name: &str) -> Option<u32> {
        let value = self.prop(node, name)?;
        (value.len() == 4).then(|| be32(value, 0))
    }

    /// A one- or two-cell property (as `linux,initrd-start` may be either).
    pub fn prop_u64(&self, node: usize, name: &str) -> Option<u64> {
        let value = self.prop(node, name)?;
        match value.len() {
            4 => Some(be32(value, 0) as u64),
            8 => Some(be64(value, 0)),
            _ => None,
        }
    }

    pub fn is_compatible(&self, node: usize, compatible: &str) -> bool {
        self.prop_strs(node, "compatible").any(|c| c == compatible)
    }

    /// `status` absent, "okay" or "ok".
    pub fn is_enabled(&self, node: usize) -> bool {
        match self.prop_str(node, "status") {
            None => true,
            Some(s) => s == "okay" || s == "ok",
        }
    }

    /// Enabled, and so is every ancestor.
    pub fn is_available(&self, node: usize) -> bool {
        let mut n = Some(node);
        while let Some(i) = n {
            if !self.is_enabled(i) {
                return false;
            }
            n = self.nodes[i].parent;
        }
        true
    }

    /// `#address-cells` a node gives its children (2 when absent, as the specification says).
    pub fn address_cells(&self, node: usize) -> u32 {
        self.prop_u32(node, "#address-cells").unwrap_or(2)
    }

    /// `#size-cells` a node gives its children (1 when absent).
    pub fn size_cells(&self, node: usize) -> u32 {
        self.prop_u32(node, "#size-cells").unwrap_or(1)
    }

    /// The full path of a node, e.g. `/soc/serial@7e201000`.
    pub fn path(&self, node: usize) -> alloc::string::String {
        let mut parts = Vec::new();
        let mut n = Some(node);
        while let Some(i) = n {
            if self.nodes[i].parent.is_some() {
                parts.push(self.nodes[i].name);
            }
            n = self.nodes[i].parent;
        }
        if parts.is_empty() {
            return "/".into();
        }
        let mut path = alloc::string::String::new();
        for part in parts.iter().rev() {
            path.push('/');
            path.push_str(part);
        }
        path
    }

    /// Finds a node by absolute path; a component without `@unit` matches the first node of that
    /// base name. A path not starting with `/` is looked up in `/aliases` first.
    pub fn find(&self, path: &str) -> Option<usize> {
        if !path.starts_with('/') {
            let (alias, rest) = match path.find('/') {
                Some(i) => (&path[..i], &path[i..]),
                None => (path, ""),
            };
            let aliases = self.find("/aliases")?;
            let target = self.prop_str(aliases, alias)?;
            if !target.starts_with('/') {
                return None; // aliases must be absolute; refusing avoids alias loops
            }
            let node = self.find(target)?;
            return if rest.is_empty() {
                Some(node)
            } else {
                self.find_below(node, rest)
            };
        }
        self.find_below(self.root(), path)
    }

    fn find_below(&self, mut node: usize, path: &str) -> Option<usize> {
        for component in path.split('/').filter(|c| !c.is_empty()) {
            let children = &self.nodes[node].children;
            node = *children
                .iter()
                .find(|&&c| self.nodes[c].name == component)
                .or_else(|| {
                    if component.contains('@') {
                        return None;
                    }
                    children
                        .iter()
                        .find(|&&c| self.nodes[c].name.split('@').next() == Some(component))
                })?;
        }
        Some(node)
    }

    pub fn by_phandle(&self, phandle: u32) -> Option<usize> {
        let i = self
            .phandles
            .binary_search_by_key(&phandle, |&(p, _)| p)
            .ok()?;
        Some(self.phandles[i].1)
    }

    /// Every node, in blob order.
    pub fn all(&self) -> core::ops::Range<usize> {
        0..self.nodes.len()
    }
}

/// Reads `cells` 32-bit big-endian cells as one number. More than two cells keep the low 64 bits
/// (the high cell of a 3-cell PCI address is flags, not address).
pub fn read_cells(bytes: &[u8], cells: u32) -> u64 {
    let mut value: u64 = 0;
    for i in 0..cells as usize {
        value = value.wrapping_shl(32) | be32(bytes, i * 4) as u64;
    }
    value
}
