//! Tabu search over the critical path (Nowicki–Smutnicki N5 swaps at block ends, plus the N7
//! insertions of Zhang et al. guarded by Balas–Vazacopoulos conditions), with moves ranked by
//! a heads-and-tails estimate and machine reassignment for flexible operations. When the search
//! stalls it restarts from the best solution with a random kick.

use super::graph::{Flat, NONE, State};
use crate::problem::{Objective, Problem};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Move {
    /// Move the operation at `from` to index `to` within machine `machine`'s sequence.
    Shift {
        machine: u32,
        from: usize,
        to: usize,
    },
    /// Move operation `op` to machine `machine` (alternative `alt`) at index `to`.
    Reassign {
        op: u32,
        alt: usize,
        machine: u32,
        to: usize,
    },
}

/// Moves re-ranked by their exact objective when the objective is not the makespan.
const EXACT_CANDIDATES: usize = 8;

/// Pairs "a runs before b" that recent moves undid, with the iteration they stay tabu until.
#[derive(Debug)]
struct TabuList {
    n: usize,
    until: Vec<u64>,
}

impl TabuList {
    fn new(n: usize) -> TabuList {
        TabuList {
            n,
            until: vec![0; n * n],
        }
    }
    fn forbid(&mut self, before: u32, after: u32, until: u64) {
        self.until[before as usize * self.n + after as usize] = until;
    }
    fn is_tabu(&self, before: u32, after: u32, now: u64) -> bool {
        self.until[before as usize * self.n + after as usize] > now
    }
    fn clear(&mut self) {
        self.until.iter_mut().for_each(|x| *x = 0);
    }
}

/// What one search thread found.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) state: State,
    pub(crate) value: f64,
    pub(crate) iterations: u64,
    pub(crate) time_to_best_s: f64,
}

pub(crate) struct Search<'a> {
    pub(crate) flat: &'a Flat,
    pub(crate) problem: &'a Problem,
    pub(crate) objective: Objective,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) deadline: Option<Instant>,
    pub(crate) started: Instant,
    pub(crate) max_iterations: u64,
    /// Stop as soon as this value is reached (a proven lower bound).
    pub(crate) target: f64,
    /// Reused buffers for exact move evaluation.
    pub(crate) scratch: Option<State>,
}

impl std::fmt::Debug for Search<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Search")
            .field("objective", &self.objective)
            .finish_non_exhaustive()
    }
}

fn value(state: &State, flat: &Flat, problem: &Problem, objective: Objective) -> f64 {
    match objective {
        Objective::Makespan => state.makespan as f64,
        Objective::WeightedTardiness | Objective::Mix { .. } => {
            let twt: f64 = problem
                .jobs
                .iter()
                .enumerate()
                .filter_map(|(j, job)| {
                    job.due
                        .map(|due| job.weight * (state.job_end(flat, j) - due).max(0) as f64)
                })
                .sum();
            match objective {
                Objective::Mix { makespan_weight } => makespan_weight * state.makespan as f64 + twt,
                _ => twt,
            }
        }
    }
}

/// Applies a move to the sequences, assignment and links; returns the move that undoes it.
fn apply(state: &mut State, flat: &Flat, mv: Move) -> Move {
    match mv {
        Move::Shift { machine, from, to } => {
            let list = &mut state.seq[machine as usize];
            let op = list.remove(from);
            list.insert(to, op);
            state.link_machine(machine as usize);
            Move::Shift {
                machine,
                from: to,
                to: from,
            }
        }
        Move::Reassign {
            op,
            alt,
            machine,
            to,
        } => {
            let old = state.machine[op as usize];
            let old_alt = flat.alts[op as usize]
                .iter()
                .position(|&(m, _)| m == old)
                .unwrap_or(0);
            let old_pos = state.seq[old as usize]
                .iter()
                .position(|&x| x == op)
                .unwrap_or(0);
            state.seq[old as usize].remove(old_pos);
            let (m, d) = flat.alts[op as usize][alt];
            debug_assert_eq!(m, machine);
            state.machine[op as usize] = m;
            state.dur[op as usize] = d;
            let list = &mut state.seq[m as usize];
            let to = to.min(list.len());
            list.insert(to, op);
            state.link_machine(old as usize);
            state.link_machine(m as usize);
            Move::Reassign {
                op,
                alt: old_alt,
                machine: old,
                to: old_pos,
            }
        }
    }
}

impl Search<'_> {
    fn out_of_budget(&self, iteration: u64) -> bool {
        if iteration >= self.max_iterations {
            return true;
        }
        iteration.is_multiple_of(128) && self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Runs tabu search from `start` until the budget is spent.
    pub(crate) fn run(&mut self, mut current: State) -> Found {
        let (flat, problem, objective) = (self.flat, self.problem, self.objective);
        current.evaluate(flat, problem);
        let mut current_value = value(&current, flat, problem, objective);
        let mut best = current.clone();
        let mut best_value = current_value;
        let mut time_to_best = self.started.elapsed().as_secs_f64();
        let mut tabu = TabuList::new(flat.n);
        let jobs = problem.jobs.len().max(1);
        let tenure_min = 2 + (jobs + flat.machines) / 3;
        let tenure_span = (tenure_min / 2).max(2);
        let stall_limit = 2_000 + 10 * flat.n as u64;
        let mut since_improvement = 0u64;
        let mut iteration = 0u64;
        let mut moves: Vec<(f64, Move)> = Vec::new();
        while !self.out_of_budget(iteration) && best_value > self.target {
            iteration += 1;
            moves.clear();
            self.neighbourhood(&current, &mut moves);
            if moves.is_empty() {
                // No critical block to break: the schedule is optimal for this path structure.
                if objective == Objective::Makespan {
                    break;
                }
            }
            if objective != Objective::Makespan {
                // Estimates speak of path lengths; re-rank the most promising moves exactly.
                moves.sort_by(|a, b| a.0.total_cmp(&b.0));
                moves.truncate(EXACT_CANDIDATES);
                for candidate in &mut moves {
                    candidate.0 = self.exact(&current, candidate.1).unwrap_or(f64::INFINITY);
                }
                moves.retain(|m| m.0.is_finite());
            }
            // Best admissible move by estimate; tabu moves only if they beat the best so far.
            let mut chosen: Option<(f64, Move)> = None;
            let mut fallback: Option<(f64, Move)> = None;
            for &(estimate, mv) in &moves {
                let tabu_move = self.is_tabu(&current, &tabu, mv, iteration);
                let admissible = !tabu_move || estimate < best_value;
                let slot = if admissible {
                    &mut chosen
                } else {
                    &mut fallback
                };
                let better = match slot {
                    None => true,
                    Some((e, _)) => estimate < *e || (estimate == *e && self.rng.random_bool(0.5)),
                };
                if better {
                    *slot = Some((estimate, mv));
                }
            }
            let Some((_, mv)) = chosen.or(fallback) else {
                current = self.kick(&best, &mut tabu);
                current_value = value(&current, flat, problem, objective);
                continue;
            };
            self.remember(&current, &mut tabu, mv, iteration, tenure_min, tenure_span);
            let undo = apply(&mut current, flat, mv);
            if !current.evaluate(flat, problem) {
                apply(&mut current, flat, undo);
                current.evaluate(flat, problem);
                continue;
            }
            current_value = value(&current, flat, problem, objective);
            if current_value < best_value {
                best = current.clone();
                best_value = current_value;
                time_to_best = self.started.elapsed().as_secs_f64();
                since_improvement = 0;
            } else {
                since_improvement += 1;
                if since_improvement > stall_limit {
                    since_improvement = 0;
                    current = self.kick(&best, &mut tabu);
                    current_value = value(&current, flat, problem, objective);
                }
            }
        }
        let _ = current_value;
        Found {
            state: best,
            value: best_value,
            iterations: iteration,
            time_to_best_s: time_to_best,
        }
    }

    /// Restart from the best solution after a few random critical swaps; forget the tabu list.
    fn kick(&mut self, best: &State, tabu: &mut TabuList) -> State {
        let (flat, problem) = (self.flat, self.problem);
        let mut s = best.clone();
        s.evaluate(flat, problem);
        let kicks = self.rng.random_range(2..=6);
        let mut moves = Vec::new();
        for _ in 0..kicks {
            moves.clear();
            self.neighbourhood(&s, &mut moves);
            if moves.is_empty() {
                break;
            }
            let (_, mv) = moves[self.rng.random_range(0..moves.len())];
            let undo = apply(&mut s, flat, mv);
            if !s.evaluate(flat, problem) {
                apply(&mut s, flat, undo);
                s.evaluate(flat, problem);
            }
        }
        tabu.clear();
        s
    }

    /// The path the neighbourhood works on: the makespan's critical path, or for tardiness the
    /// path into the job that costs most (with some randomness among tardy jobs).
    fn path(&mut self, s: &State) -> Vec<u32> {
        let (flat, problem) = (self.flat, self.problem);
        let last = match self.objective {
            Objective::Makespan => s.last_op(),
            Objective::WeightedTardiness | Objective::Mix { .. } => {
                let mut costs: Vec<(f64, usize)> = problem
                    .jobs
                    .iter()
                    .enumerate()
                    .filter_map(|(j, job)| {
                        let late = job.weight * (s.job_end(flat, j) - job.due?).max(0) as f64;
                        (late > 0.0).then_some((late, j))
                    })
                    .collect();
                if let Objective::Mix { makespan_weight } = self.objective
                    && makespan_weight > 0.0
                    && (costs.is_empty() || self.rng.random_bool(0.3))
                {
                    return s.critical_path(flat, problem, s.last_op());
                }
                if costs.is_empty() {
                    return Vec::new();
                }
                costs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                let pick = if costs.len() > 1 && self.rng.random_bool(0.3) {
                    self.rng.random_range(0..costs.len().min(5))
                } else {
                    0
                };
                let j = costs[pick].1;
                flat.first_op.get(j + 1).map_or(flat.n as u32, |&x| x) - 1
            }
        };
        s.critical_path(flat, problem, last)
    }

    /// Candidate moves with their estimated objective.
    fn neighbourhood(&mut self, s: &State, out: &mut Vec<(f64, Move)>) {
        let flat = self.flat;
        let path = self.path(s);
        if path.is_empty() {
            return;
        }
        // Split into blocks: maximal runs joined by machine arcs.
        let mut blocks: Vec<(usize, usize)> = Vec::new();
        let mut start = 0;
        for i in 1..=path.len() {
            let joined = i < path.len() && s.mpred[path[i] as usize] == path[i - 1];
            if !joined {
                blocks.push((start, i - 1));
                start = i;
            }
        }
        let nblocks = blocks.len();
        for (b, &(lo, hi)) in blocks.iter().enumerate() {
            if hi > lo {
                let machine = s.machine[path[lo] as usize];
                let pos = |o: u32| {
                    s.seq[machine as usize]
                        .iter()
                        .position(|&x| x == o)
                        .unwrap_or(0)
                };
                let first = pos(path[lo]);
                let last = pos(path[hi]);
                let len = last - first + 1;
                let push = |from: usize, to: usize, out: &mut Vec<(f64, Move)>| {
                    let mv = Move::Shift { machine, from, to };
                    if let Some(e) = self.estimate(s, mv) {
                        out.push((e, mv));
                    }
                };
                // N5: swap the first two (not in the first block) and the last two (not in the
                // last block); a lone block gets both.
                let swap_front = b > 0 || nblocks == 1;
                let swap_back = b + 1 < nblocks || nblocks == 1;
                if swap_front {
                    push(first, first + 1, out);
                }
                if swap_back && (len > 2 || !swap_front) {
                    push(last, last - 1, out);
                }
                // N7: the first operation further into the block, the last further forward, and
                // interior operations to either end.
                if len > 2 {
                    for to in first + 2..=last {
                        push(first, to, out);
                    }
                    for to in first..last - 1 {
                        push(last, to, out);
                    }
                    for i in first + 1..last {
                        push(i, first, out);
                        push(i, last, out);
                    }
                }
            }
        }
        // Flexible operations on the path may change machine.
        for &o in &path {
            let alts = &flat.alts[o as usize];
            if alts.len() < 2 || flat.frozen[o as usize].is_some() {
                continue;
            }
            for (a, &(m, d)) in alts.iter().enumerate() {
                if m == s.machine[o as usize] {
                    continue;
                }
                if let Some((e, to)) = self.reassign_estimate(s, o, m, d) {
                    let mv = Move::Reassign {
                        op: o,
                        alt: a,
                        machine: m,
                        to,
                    };
                    out.push((e, mv));
                }
            }
        }
    }

    /// Exact objective after a move (None if it creates a cycle), computed on a scratch copy
    /// whose buffers are reused from call to call.
    fn exact(&mut self, s: &State, mv: Move) -> Option<f64> {
        let (flat, problem, objective) = (self.flat, self.problem, self.objective);
        let t = self.scratch.get_or_insert_with(|| s.clone());
        t.clone_from(s);
        apply(t, flat, mv);
        t.evaluate(flat, problem)
            .then(|| value(t, flat, problem, objective))
    }

    /// Heads-and-tails estimate of the makespan after shifting one operation within a block,
    /// or None when the move could create a cycle (Balas–Vazacopoulos conditions).
    fn estimate(&self, s: &State, mv: Move) -> Option<f64> {
        let Move::Shift { machine, from, to } = mv else {
            return None;
        };
        if from == to {
            return None;
        }
        let flat = self.flat;
        let list = &s.seq[machine as usize];
        let u = list[from];
        if flat.frozen[u as usize].is_some() {
            return None;
        }
        let end = |o: u32| -> i64 {
            if o == NONE {
                0
            } else {
                s.head[o as usize] + s.dur[o as usize]
            }
        };
        let path_after = |o: u32| -> i64 {
            if o == NONE {
                0
            } else {
                s.dur[o as usize] + s.tail[o as usize]
            }
        };
        if to > from + 1 {
            // Forward: u goes right after v = list[to]; safe if L(v, end) ≥ L(JS(u), end).
            let v = list[to];
            if path_after(v) < path_after(flat.job_succ[u as usize]) {
                return None;
            }
        } else if to + 1 < from {
            // Backward: u goes right before v = list[to]; safe if r(v) + p(v) ≥ r(JP(u)) + p(JP(u)).
            let v = list[to];
            if end(v) < end(flat.job_pred[u as usize]) {
                return None;
            }
        }
        if list[from.min(to)..=from.max(to)]
            .iter()
            .any(|&o| flat.frozen[o as usize].is_some())
        {
            return None;
        }
        let (lo, hi) = (from.min(to), from.max(to));
        let mut order: Vec<u32> = list[lo..=hi].to_vec();
        let moved = order.remove(from - lo);
        order.insert(to - lo, moved);
        let before = if lo == 0 { NONE } else { list[lo - 1] };
        let after = list.get(hi + 1).copied().unwrap_or(NONE);
        let k = order.len();
        let mut heads = [0i64; 64];
        if k > heads.len() {
            // Blocks this long are rare; leaving the move out keeps the estimate allocation-free.
            return None;
        }
        let mut prev_end = end(before);
        for (i, &o) in order.iter().enumerate() {
            let h = prev_end
                .max(end(flat.job_pred[o as usize]))
                .max(flat.release[o as usize]);
            heads[i] = h;
            prev_end = h + s.dur[o as usize];
        }
        let mut next_path = path_after(after);
        let mut worst = 0i64;
        for i in (0..k).rev() {
            let o = order[i];
            let tail = next_path.max(path_after(flat.job_succ[o as usize]));
            worst = worst.max(heads[i] + s.dur[o as usize] + tail);
            next_path = s.dur[o as usize] + tail;
        }
        Some(worst as f64)
    }

    /// Where `o` would go on machine `m` (ordered by start times) and the estimated length of
    /// the longest path through it there.
    fn reassign_estimate(&self, s: &State, o: u32, m: u32, d: i64) -> Option<(f64, usize)> {
        let flat = self.flat;
        let jp = flat.job_pred[o as usize];
        let js = flat.job_succ[o as usize];
        let ready = if jp == NONE {
            flat.release[o as usize]
        } else {
            s.head[jp as usize] + s.dur[jp as usize]
        };
        let list = &s.seq[m as usize];
        // Insert among operations ordered by their midpoints.
        let to = list
            .iter()
            .position(|&x| 2 * s.head[x as usize] + s.dur[x as usize] > 2 * ready + d)
            .unwrap_or(list.len());
        let before = if to == 0 { NONE } else { list[to - 1] };
        let after = list.get(to).copied().unwrap_or(NONE);
        if before == o || after == o {
            return None;
        }
        let head = ready.max(if before == NONE {
            0
        } else {
            s.head[before as usize] + s.dur[before as usize]
        });
        let tail = (if js == NONE {
            0
        } else {
            s.dur[js as usize] + s.tail[js as usize]
        })
        .max(if after == NONE {
            0
        } else {
            s.dur[after as usize] + s.tail[after as usize]
        });
        Some(((head + d + tail) as f64, to))
    }

    fn is_tabu(&self, s: &State, tabu: &TabuList, mv: Move, now: u64) -> bool {
        match mv {
            Move::Shift { machine, from, to } => {
                let list = &s.seq[machine as usize];
                let u = list[from];
                if to > from {
                    // u jumps after list[from+1..=to]: creates "y before u".
                    list[from + 1..=to].iter().any(|&y| tabu.is_tabu(y, u, now))
                } else {
                    list[to..from].iter().any(|&y| tabu.is_tabu(u, y, now))
                }
            }
            // A reassigned operation keeps its new machine for a while (stored as a self-pair).
            Move::Reassign { op, .. } => tabu.is_tabu(op, op, now),
        }
    }

    fn remember(
        &mut self,
        s: &State,
        tabu: &mut TabuList,
        mv: Move,
        now: u64,
        tenure_min: usize,
        tenure_span: usize,
    ) {
        let until = now + (tenure_min + self.rng.random_range(0..tenure_span)) as u64;
        match mv {
            Move::Shift { machine, from, to } => {
                let list = &s.seq[machine as usize];
                let u = list[from];
                if to > from {
                    for &y in &list[from + 1..=to] {
                        tabu.forbid(u, y, until);
                    }
                } else {
                    for &y in &list[to..from] {
                        tabu.forbid(y, u, until);
                    }
                }
            }
            Move::Reassign { op, .. } => tabu.forbid(op, op, until),
        }
    }
}
