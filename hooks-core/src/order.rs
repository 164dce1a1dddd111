//! The call order of a hook's implementations. The rule is written once,
//! in `docs/call-order.md` (the crate docs' "Call order"); this module
//! implements it: rules 1 to 4 are the [`Rank`], rule 5 (`before` /
//! `after`) is the placing of each tier's implementations one at a time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::hookimpl::{ImplDecl, ImplInfo, Placement, Tier};

/// A call order: indices into the ranked implementations, each with why
/// it is there.
pub(crate) type Arrangement = Vec<(usize, Placement)>;

/// The plugins of a cycle of constraints, each running before the next,
/// the first repeated last.
pub(crate) type Cycle = Vec<&'static str>;

/// Rules 1 to 4 as a key: ascending order is rank order.
pub(crate) type Rank = (Reverse<bool>, Tier, Reverse<i32>, i64);

pub(crate) fn rank(decl: &ImplDecl, registration: u64) -> Rank {
    let registration = registration as i64;
    let ties = match decl.tier {
        Tier::TryLast => registration,
        Tier::TryFirst | Tier::Normal => -registration,
    };
    (
        Reverse(decl.wrapper),
        decl.tier,
        Reverse(decl.priority),
        ties,
    )
}

/// The call order of `ranked` (implementations in rank order) as indices
/// into it, each with why it is there; or the plugins of a cycle of
/// constraints, each running before the next, the first repeated last.
pub(crate) fn arrange(ranked: &[ImplInfo]) -> Result<Arrangement, Cycle> {
    let mut order = Vec::with_capacity(ranked.len());
    let mut start = 0;
    while start < ranked.len() {
        let group = (ranked[start].wrapper, ranked[start].tier);
        let len = ranked[start..]
            .iter()
            .take_while(|i| (i.wrapper, i.tier) == group)
            .count();
        let placed = arrange_tier(&ranked[start..start + len])?;
        order.extend(placed.into_iter().map(|(i, p)| (start + i, p)));
        start += len;
    }
    Ok(order)
}

/// [`arrange`] for one tier of one group.
fn arrange_tier(tier: &[ImplInfo]) -> Result<Arrangement, Cycle> {
    let index = |name: &str| tier.iter().position(|i| i.plugin == name);
    // (earlier, later): `earlier` must run before `later`; and the plugin
    // that declared it (for `Placement::Constraint::by`).
    let mut edges = Vec::new();
    let mut declared_by = Vec::new();
    for (i, imp) in tier.iter().enumerate() {
        for (edge, by) in (imp.before.iter().filter_map(|n| index(n)).map(|j| (i, j)))
            .chain(imp.after.iter().filter_map(|n| index(n)).map(|j| (j, i)))
            .filter(|(a, b)| a != b)
            .map(|edge| (edge, imp.plugin))
        {
            edges.push(edge);
            declared_by.push(by);
        }
    }
    let mut placement = vec![Placement::Rank; tier.len()];
    for (&(earlier, later), &by) in edges.iter().zip(&declared_by) {
        if earlier > later {
            for moved in [earlier, later] {
                if placement[moved] == Placement::Rank {
                    placement[moved] = Placement::Constraint { by };
                }
            }
        }
    }
    let mut waiting_on = vec![0usize; tier.len()];
    for &(_, later) in &edges {
        waiting_on[later] += 1;
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..tier.len())
        .filter(|&i| waiting_on[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(tier.len());
    while let Some(Reverse(next)) = ready.pop() {
        order.push((next, placement[next]));
        for &(_, later) in edges.iter().filter(|(earlier, _)| *earlier == next) {
            waiting_on[later] -= 1;
            if waiting_on[later] == 0 {
                ready.push(Reverse(later));
            }
        }
    }
    if order.len() == tier.len() {
        return Ok(order);
    }
    Err(cycle(tier, &edges, &waiting_on))
}

/// A cycle among the implementations still waiting once no more could be
/// placed: each of them waits on another one still waiting, so walking
/// backwards from any of them must come round.
fn cycle(tier: &[ImplInfo], edges: &[(usize, usize)], waiting_on: &[usize]) -> Cycle {
    let waiting = |i: usize| waiting_on[i] > 0;
    let mut path = vec![(0..tier.len()).find(|&i| waiting(i)).expect("stuck")];
    loop {
        let at = *path.last().expect("non-empty");
        let (earlier, _) = *edges
            .iter()
            .find(|&&(earlier, later)| later == at && waiting(earlier))
            .expect("a waiting implementation waits on a waiting one");
        if let Some(seen) = path.iter().position(|&i| i == earlier) {
            // path runs backwards (each waits on the next): turn it round.
            let mut names: Vec<_> = path[seen..].iter().rev().map(|&i| tier[i].plugin).collect();
            names.push(names[0]);
            return names;
        }
        path.push(earlier);
    }
}
