//! Consistent hashing of tenants onto ingesters: each ingester owns many points on a ring, a
//! tenant goes to the owner of the first point at or after its hash, and the next distinct
//! owners along the ring are its fallbacks. Adding or removing an ingester moves only the
//! tenants near its points, so each tenant's events keep landing in one ingester's buffer.

/// Points per ingester: enough to spread tenants evenly over a handful of nodes.
const POINTS_PER_NODE: u32 = 128;

fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV's low bits mix poorly for short keys; a final avalanche spreads them over the ring.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
}

/// The ring over one set of ingesters; built once per membership change, not per request.
#[derive(Debug)]
pub(crate) struct Ring {
    nodes: Vec<String>,
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// The ring of `nodes` (ingester ids).
    pub(crate) fn new(nodes: Vec<String>) -> Self {
        let mut points: Vec<(u64, usize)> = nodes
            .iter()
            .enumerate()
            .flat_map(|(i, id)| (0..POINTS_PER_NODE).map(move |p| (fnv1a(id.bytes().chain(p.to_le_bytes())), i)))
            .collect();
        points.sort_unstable();
        Self { nodes, points }
    }

    /// The ids the ring was built from.
    pub(crate) fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The ingesters to try for `tenant`, in order: its owner first, then the fallbacks.
    pub(crate) fn route(&self, tenant: &str) -> Vec<&str> {
        let key = fnv1a(tenant.bytes());
        let start = self.points.partition_point(|(h, _)| *h < key);
        let mut order: Vec<&str> = Vec::with_capacity(self.nodes.len());
        for (_, i) in self.points[start..].iter().chain(&self.points[..start]) {
            let id = self.nodes[*i].as_str();
            if !order.contains(&id) {
                order.push(id);
                if order.len() == self.nodes.len() {
                    break;
                }
            }
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("ingester-{i}")).collect()
    }

    fn route<'a>(tenant: &str, ring: &'a Ring) -> Vec<&'a str> {
        ring.route(tenant)
    }

    #[test]
    fn every_node_appears_once_owner_first() {
        let ring = Ring::new(ids(3));
        for t in ["a", "shop-1", "zz"] {
            let order = route(t, &ring);
            assert_eq!(order.len(), 3);
            let mut sorted = order.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 3);
            assert_eq!(route(t, &Ring::new(ids(3))), order, "routing is deterministic");
        }
        assert!(route("a", &Ring::new(Vec::new())).is_empty());
    }

    #[test]
    fn tenants_spread_and_few_move_when_a_node_joins() {
        let tenants: Vec<String> = (0..3000).map(|i| format!("tenant-{i}")).collect();
        let three = Ring::new(ids(3));
        let four = Ring::new(ids(4));
        let mut per_node = std::collections::HashMap::new();
        let mut moved = 0;
        for t in &tenants {
            let before = route(t, &three)[0];
            let after = route(t, &four)[0];
            *per_node.entry(before).or_insert(0) += 1;
            if before != after {
                assert_eq!(after, "ingester-3", "a tenant moved between old nodes");
                moved += 1;
            }
        }
        for (node, n) in per_node {
            assert!((700..1300).contains(&n), "{node} owns {n} of 3000 tenants");
        }
        assert!((400..1100).contains(&moved), "{moved} of 3000 tenants moved to the new node");
    }

    #[test]
    fn a_missing_owner_falls_back_to_the_next_node() {
        let ring = Ring::new(ids(3));
        let order = route("shop-1", &ring);
        let survivors: Vec<String> = ring.nodes().iter().filter(|n| n.as_str() != order[0]).cloned().collect();
        assert_eq!(route("shop-1", &Ring::new(survivors))[0], order[1]);
    }
}
