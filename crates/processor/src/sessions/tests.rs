use super::*;

const MIN: i64 = 60_000;
const TIMEOUT: i64 = 30 * MIN;

fn point(id: &'static str, visitor: u64, t: i64) -> Point<'static> {
    Point { timestamp_ms: t, event_id: id, visitor_id: visitor, prev_visitor_id: None, session_id: None }
}

/// Sessions as lists of event ids, to compare without caring about input positions.
fn ids(points: &[Point<'static>]) -> Vec<Vec<&'static str>> {
    group(points, TIMEOUT).into_iter().map(|s| s.into_iter().map(|i| points[i].event_id).collect()).collect()
}

#[test]
fn the_gap_rule_splits_only_past_the_timeout() {
    let points = [point("a", 1, 0), point("b", 1, TIMEOUT), point("c", 1, 2 * TIMEOUT + 1)];
    assert_eq!(ids(&points), [vec!["a", "b"], vec!["c"]]);
}

#[test]
fn input_order_and_duplicates_do_not_matter() {
    let points = [point("c", 1, 2 * MIN), point("a", 1, 0), point("b", 1, MIN), point("a", 1, 0), point("x", 2, MIN)];
    assert_eq!(ids(&points), [vec!["a", "b", "c"], vec!["x"]]);
}

#[test]
fn client_session_ids_split_and_the_gap_rule_still_cuts() {
    let mut points = [
        point("a", 1, 0),
        point("e", 1, TIMEOUT),
        point("b", 1, 5 * TIMEOUT),
        point("c", 1, 6 * TIMEOUT),
        point("d", 1, MIN),
    ];
    points[0].session_id = Some("s1");
    points[1].session_id = Some("s1");
    points[2].session_id = Some("s1");
    // a and e share a client session within the timeout; b has the same id after a longer
    // gap, so it starts a session of its own. c and d carry no id: the gap rule applies to
    // them apart from the tagged events, so d (near a) and c (near b) each start a session.
    assert_eq!(ids(&points), [vec!["a", "e"], vec!["d"], vec!["b"], vec!["c"]]);
}

#[test]
fn a_cookieless_session_continues_across_midnight() {
    let day = 86_400_000;
    let before = point("before", 10, day - 10 * MIN);
    let mut after = point("after", 11, day + 10 * MIN);
    after.prev_visitor_id = Some(10);
    let mut later = point("later", 11, day + 35 * MIN);
    later.prev_visitor_id = Some(10);
    let mut next = point("next", 11, day + 2 * TIMEOUT + 35 * MIN);
    next.prev_visitor_id = Some(10);
    let sessions = group(&[after, before, later, next], TIMEOUT);
    let points = [after, before, later, next];
    let as_ids: Vec<Vec<&str>> = sessions.iter().map(|s| s.iter().map(|&i| points[i].event_id).collect()).collect();
    assert_eq!(as_ids, [vec!["before", "after", "later"], vec!["next"]]);
    // The merged session keeps the visitor of its first event.
    assert_eq!(points[sessions[0][0]].visitor_id, 10);
}

#[test]
fn no_continuation_past_the_timeout_or_into_another_session_id() {
    let day = 86_400_000;
    let before = point("before", 10, day - 20 * MIN);
    let mut after = point("after", 11, day + 11 * MIN);
    after.prev_visitor_id = Some(10);
    assert_eq!(ids(&[before, after]), [vec!["before"], vec!["after"]]);

    let mut tagged_before = before;
    tagged_before.session_id = Some("s");
    let mut tagged_after = point("after", 11, day + 5 * MIN);
    tagged_after.prev_visitor_id = Some(10);
    tagged_after.session_id = Some("s");
    assert_eq!(ids(&[tagged_before, tagged_after]), [vec!["before", "after"]]);
    tagged_after.session_id = Some("other");
    assert_eq!(ids(&[tagged_before, tagged_after]), [vec!["before"], vec!["after"]]);
    tagged_after.session_id = Some("s");
    tagged_after.timestamp_ms = day + 11 * MIN;
    assert_eq!(ids(&[tagged_before, tagged_after]), [vec!["before"], vec!["after"]], "past the timeout");
}

#[test]
fn continuations_chain_over_several_midnights() {
    let day = 86_400_000;
    let a = point("a", 1, day - MIN);
    let mut b = point("b", 2, day + 10 * MIN);
    b.prev_visitor_id = Some(1);
    // Visitor 2 keeps going every 25 minutes until just before the next midnight.
    let mut points = vec![a, b];
    let ids_b: Vec<&'static str> = (1..58).map(|k| &*Box::leak(format!("b{k}").into_boxed_str())).collect();
    for (k, id) in ids_b.iter().enumerate() {
        let mut p = point(id, 2, day + 10 * MIN + (k as i64 + 1) * 25 * MIN);
        p.prev_visitor_id = (p.timestamp_ms < day + TIMEOUT).then_some(1);
        points.push(p);
    }
    let last = points[points.len() - 1].timestamp_ms;
    assert!(last < 2 * day && 2 * day - last <= TIMEOUT, "the run reaches the next midnight");
    let mut c = point("c", 3, 2 * day + 5 * MIN);
    c.prev_visitor_id = Some(2);
    points.push(c);
    let sessions = group(&points, TIMEOUT);
    assert_eq!(sessions.len(), 1, "one session over two midnights");
    assert_eq!(sessions[0].len(), points.len());
}

#[test]
fn primary_language_subtags() {
    assert_eq!(primary_language("en-US").as_deref(), Some("en"));
    assert_eq!(primary_language("ZH_Hant").as_deref(), Some("zh"));
    assert_eq!(primary_language(" "), None);
}
