//! Writes small MaxMind DB files for GeoIP tests: real GeoLite2 files cannot be fetched here
//! and may not be redistributed, so tests build their own in the published format (MaxMind DB
//! 2.0: a binary search tree over address bits, a data section, then the metadata).
//!
//! The tree is an IPv6 one, as GeoLite2's are: an IPv4 network `a.b.c.d/n` sits under 96 zero
//! bits at `::a.b.c.d/(96 + n)`, where readers look IPv4 addresses up. Networks must not
//! overlap.

use std::net::IpAddr;

/// A MaxMind DB whose records are `{"country": {"iso_code": CODE}}`, one per network, given as
/// `("81.2.69.0/24", "GB")` or `("2a02:2f0c::/32", "RO")`. Panics on a malformed network: the
/// input is a test's own constant.
pub fn country_database(networks: &[(&str, &str)]) -> Vec<u8> {
    let mut tree = Tree::default();
    let mut data = Vec::new();
    for (network, code) in networks {
        let (bits, len) = parse_network(network);
        let offset = u32::try_from(data.len()).expect("small data section");
        encode_country(&mut data, code);
        tree.insert(bits, len, offset);
    }
    let node_count = u32::try_from(tree.nodes.len()).expect("small tree");
    let mut out = Vec::new();
    for node in &tree.nodes {
        for record in node {
            let value = match *record {
                Record::Empty => node_count,
                Record::Node(i) => i,
                // Data pointers count from the start of the 16-byte separator.
                Record::Data(offset) => node_count + 16 + offset,
            };
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    encode_metadata(&mut out, node_count);
    out
}

#[derive(Clone, Copy)]
enum Record {
    Empty,
    Node(u32),
    Data(u32),
}

struct Tree {
    nodes: Vec<[Record; 2]>,
}

impl Default for Tree {
    fn default() -> Self {
        Self { nodes: vec![[Record::Empty; 2]] }
    }
}

impl Tree {
    /// Points the first `len` bits of `bits` (from the most significant) at `data`.
    fn insert(&mut self, bits: u128, len: u32, data: u32) {
        assert!((1..=128).contains(&len), "prefix length 1..=128");
        let mut node = 0usize;
        for depth in 0..len {
            let side = ((bits >> (127 - depth)) & 1) as usize;
            if depth == len - 1 {
                self.nodes[node][side] = Record::Data(data);
                return;
            }
            node = match self.nodes[node][side] {
                Record::Node(next) => next as usize,
                Record::Empty => {
                    let next = self.nodes.len();
                    self.nodes.push([Record::Empty; 2]);
                    self.nodes[node][side] = Record::Node(u32::try_from(next).expect("small tree"));
                    next
                }
                Record::Data(_) => panic!("overlapping networks"),
            };
        }
    }
}

fn parse_network(network: &str) -> (u128, u32) {
    let (address, len) = network.split_once('/').expect("network as address/length");
    let len: u32 = len.parse().expect("prefix length");
    match address.parse::<IpAddr>().expect("address") {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 96 + len),
        IpAddr::V6(v6) => (u128::from(v6), len),
    }
}

// Type numbers of the MaxMind DB data section.
const STRING: u8 = 2;
const UINT16: u8 = 5;
const UINT32: u8 = 6;
const MAP: u8 = 7;
const UINT64: u8 = 9;
const ARRAY: u8 = 11;

/// A control byte (and extended type byte) for a value of `kind` and `size`, under 285.
fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    // Sizes from 29 on are 29 in the control byte plus one byte holding `size - 29`.
    let (inline, extra) = match size {
        0..=28 => (size as u8, None),
        29..=284 => (29, Some((size - 29) as u8)),
        _ => panic!("value too long for this writer"),
    };
    if kind <= 7 {
        out.push((kind << 5) | inline);
    } else {
        out.push(inline);
        out.push(kind - 7);
    }
    out.extend(extra);
}

fn string(out: &mut Vec<u8>, s: &str) {
    control(out, STRING, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn unsigned(out: &mut Vec<u8>, kind: u8, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, kind, bytes.len() - skip);
    out.extend_from_slice(&bytes[skip..]);
}

fn encode_country(out: &mut Vec<u8>, code: &str) {
    control(out, MAP, 1);
    string(out, "country");
    control(out, MAP, 1);
    string(out, "iso_code");
    string(out, code);
}

fn encode_metadata(out: &mut Vec<u8>, node_count: u32) {
    control(out, MAP, 9);
    string(out, "binary_format_major_version");
    unsigned(out, UINT16, 2);
    string(out, "binary_format_minor_version");
    unsigned(out, UINT16, 0);
    string(out, "build_epoch");
    unsigned(out, UINT64, 1_767_225_600);
    string(out, "database_type");
    string(out, "Hourglass-Test-Country");
    string(out, "description");
    control(out, MAP, 1);
    string(out, "en");
    string(out, "Countries for Hourglass tests");
    string(out, "ip_version");
    unsigned(out, UINT16, 6);
    string(out, "languages");
    control(out, ARRAY, 1);
    string(out, "en");
    string(out, "node_count");
    unsigned(out, UINT32, u64::from(node_count));
    string(out, "record_size");
    unsigned(out, UINT16, 32);
}
