//! The disjunctive graph of a solution: machine sequences over a fixed job structure, with heads
//! (earliest starts), tails (longest path after an operation ends) and the critical path.

use crate::problem::{Placement, Problem, Schedule};

pub(crate) const NONE: u32 = u32::MAX;

/// The problem flattened for speed: operation `o` of the whole instance.
#[derive(Debug, Clone)]
pub(crate) struct Flat {
    pub(crate) n: usize,
    pub(crate) machines: usize,
    pub(crate) job: Vec<u32>,
    pub(crate) index: Vec<u32>,
    pub(crate) job_pred: Vec<u32>,
    pub(crate) job_succ: Vec<u32>,
    /// (machine, duration) per alternative.
    pub(crate) alts: Vec<Vec<(u32, i64)>>,
    pub(crate) release: Vec<i64>,
    pub(crate) frozen: Vec<Option<(u32, i64)>>,
    pub(crate) family: Vec<Option<usize>>,
    /// Downtime intervals per machine, sorted by start.
    pub(crate) downtime: Vec<Vec<(i64, i64)>>,
    pub(crate) has_setup: bool,
    /// No set-ups, downtime or frozen operations: heads need only the two arcs and releases.
    pub(crate) plain: bool,
    pub(crate) first_op: Vec<u32>,
}

impl Flat {
    pub(crate) fn new(problem: &Problem) -> Flat {
        let mut f = Flat {
            n: 0,
            machines: problem.machines,
            job: Vec::new(),
            index: Vec::new(),
            job_pred: Vec::new(),
            job_succ: Vec::new(),
            alts: Vec::new(),
            release: Vec::new(),
            frozen: Vec::new(),
            family: Vec::new(),
            downtime: vec![Vec::new(); problem.machines],
            has_setup: problem.setup.is_some(),
            plain: false,
            first_op: Vec::new(),
        };
        for (j, job) in problem.jobs.iter().enumerate() {
            f.first_op.push(f.n as u32);
            let count = job.operations.len();
            for (k, op) in job.operations.iter().enumerate() {
                let o = f.n as u32;
                f.job.push(j as u32);
                f.index.push(k as u32);
                f.job_pred.push(if k == 0 { NONE } else { o - 1 });
                f.job_succ.push(if k + 1 == count { NONE } else { o + 1 });
                f.alts.push(
                    op.alternatives
                        .iter()
                        .map(|a| (a.machine as u32, a.duration))
                        .collect(),
                );
                f.release.push(if k == 0 { job.release } else { 0 });
                f.frozen
                    .push(op.frozen.map(|fr| (fr.machine as u32, fr.start)));
                f.family.push(job.family);
                f.n += 1;
            }
        }
        for d in &problem.downtime {
            if d.machine < problem.machines && d.end > d.start {
                f.downtime[d.machine].push((d.start, d.end));
            }
        }
        for list in &mut f.downtime {
            list.sort_unstable();
        }
        f.plain = !f.has_setup
            && f.downtime.iter().all(Vec::is_empty)
            && f.frozen.iter().all(Option::is_none);
        f
    }
}

/// A solution: which alternative each operation uses and the order on every machine, plus
/// everything derived from them.
#[derive(Debug, Clone)]
pub(crate) struct State {
    pub(crate) machine: Vec<u32>,
    pub(crate) dur: Vec<i64>,
    pub(crate) seq: Vec<Vec<u32>>,
    pub(crate) mpred: Vec<u32>,
    pub(crate) msucc: Vec<u32>,
    pub(crate) head: Vec<i64>,
    pub(crate) tail: Vec<i64>,
    pub(crate) topo: Vec<u32>,
    pub(crate) makespan: i64,
    indegree: Vec<u32>,
}

impl State {
    /// A state with the given assignment and sequences; call [`State::evaluate`] next.
    pub(crate) fn new(flat: &Flat, machine: Vec<u32>, dur: Vec<i64>, seq: Vec<Vec<u32>>) -> State {
        let n = flat.n;
        let mut s = State {
            machine,
            dur,
            seq,
            mpred: vec![NONE; n],
            msucc: vec![NONE; n],
            head: vec![0; n],
            tail: vec![0; n],
            topo: Vec::with_capacity(n),
            makespan: 0,
            indegree: vec![0; n],
        };
        s.link();
        s
    }

    /// Rebuilds machine predecessor/successor links from the sequences.
    pub(crate) fn link(&mut self) {
        for m in 0..self.seq.len() {
            self.link_machine(m);
        }
    }

    /// Rebuilds the links of one machine's sequence.
    pub(crate) fn link_machine(&mut self, m: usize) {
        let list = &self.seq[m];
        for (i, &o) in list.iter().enumerate() {
            self.mpred[o as usize] = if i == 0 { NONE } else { list[i - 1] };
            self.msucc[o as usize] = list.get(i + 1).copied().unwrap_or(NONE);
        }
    }

    fn setup(&self, flat: &Flat, problem: &Problem, from: u32, to: u32) -> i64 {
        if !flat.has_setup || from == NONE {
            return 0;
        }
        problem.setup_time(
            self.machine[to as usize] as usize,
            flat.family[from as usize],
            flat.family[to as usize],
        )
    }

    /// Heads, tails and makespan. Returns false if the sequences contain a cycle.
    pub(crate) fn evaluate(&mut self, flat: &Flat, problem: &Problem) -> bool {
        let n = flat.n;
        self.topo.clear();
        for o in 0..n {
            self.indegree[o] =
                u32::from(flat.job_pred[o] != NONE) + u32::from(self.mpred[o] != NONE);
            if self.indegree[o] == 0 {
                self.topo.push(o as u32);
            }
        }
        let mut i = 0;
        while i < self.topo.len() {
            let o = self.topo[i] as usize;
            i += 1;
            for next in [flat.job_succ[o], self.msucc[o]] {
                if next != NONE {
                    let d = &mut self.indegree[next as usize];
                    *d -= 1;
                    if *d == 0 {
                        self.topo.push(next);
                    }
                }
            }
        }
        if self.topo.len() != n {
            return false;
        }
        if flat.plain {
            self.heads_and_tails_plain(flat);
            return true;
        }
        let mut makespan = 0;
        for idx in 0..n {
            let o = self.topo[idx] as usize;
            let mut start = flat.release[o];
            let jp = flat.job_pred[o];
            if jp != NONE {
                start = start.max(self.head[jp as usize] + self.dur[jp as usize]);
            }
            let mp = self.mpred[o];
            if mp != NONE {
                start = start.max(
                    self.head[mp as usize]
                        + self.dur[mp as usize]
                        + self.setup(flat, problem, mp, o as u32),
                );
            }
            if let Some((_, fixed)) = flat.frozen[o] {
                start = start.max(fixed);
            }
            let m = self.machine[o] as usize;
            if !flat.downtime[m].is_empty() {
                start = after_downtime(&flat.downtime[m], start, self.dur[o]);
            }
            self.head[o] = start;
            makespan = makespan.max(start + self.dur[o]);
        }
        self.makespan = makespan;
        for idx in (0..n).rev() {
            let o = self.topo[idx] as usize;
            let mut t = 0;
            let js = flat.job_succ[o];
            if js != NONE {
                t = t.max(self.tail[js as usize] + self.dur[js as usize]);
            }
            let ms = self.msucc[o];
            if ms != NONE {
                t = t.max(
                    self.tail[ms as usize]
                        + self.dur[ms as usize]
                        + self.setup(flat, problem, o as u32, ms),
                );
            }
            self.tail[o] = t;
        }
        true
    }

    /// Heads and tails when only job and machine arcs and releases matter (the hot path of
    /// classic instances).
    fn heads_and_tails_plain(&mut self, flat: &Flat) {
        let (head, tail, dur) = (&mut self.head, &mut self.tail, &self.dur);
        let end = |head: &[i64], o: u32| -> i64 {
            if o == NONE {
                0
            } else {
                head[o as usize] + dur[o as usize]
            }
        };
        let mut makespan = 0;
        for &o in &self.topo {
            let o = o as usize;
            let start = flat.release[o]
                .max(end(head, flat.job_pred[o]))
                .max(end(head, self.mpred[o]));
            head[o] = start;
            makespan = makespan.max(start + dur[o]);
        }
        self.makespan = makespan;
        let after = |tail: &[i64], o: u32| -> i64 {
            if o == NONE {
                0
            } else {
                tail[o as usize] + dur[o as usize]
            }
        };
        for &o in self.topo.iter().rev() {
            let o = o as usize;
            tail[o] = after(tail, flat.job_succ[o]).max(after(tail, self.msucc[o]));
        }
    }

    /// The critical path ending at `last`, traced back through tight arcs (machine arcs
    /// preferred, so that blocks form), first operation first.
    pub(crate) fn critical_path(&self, flat: &Flat, problem: &Problem, last: u32) -> Vec<u32> {
        let mut path = vec![last];
        let mut o = last;
        loop {
            let start = self.head[o as usize];
            let mp = self.mpred[o as usize];
            let jp = flat.job_pred[o as usize];
            let tight_machine = mp != NONE
                && self.head[mp as usize]
                    + self.dur[mp as usize]
                    + self.setup(flat, problem, mp, o)
                    == start;
            let tight_job = jp != NONE && self.head[jp as usize] + self.dur[jp as usize] == start;
            o = if tight_machine {
                mp
            } else if tight_job {
                jp
            } else {
                break;
            };
            path.push(o);
        }
        path.reverse();
        path
    }

    /// The operation that ends last (lowest index among ties).
    pub(crate) fn last_op(&self) -> u32 {
        let mut best = 0usize;
        for o in 0..self.head.len() {
            if self.head[o] + self.dur[o] > self.head[best] + self.dur[best] {
                best = o;
            }
        }
        best as u32
    }

    pub(crate) fn to_schedule(&self, flat: &Flat, problem: &Problem) -> Schedule {
        let mut placements: Vec<Vec<Placement>> = problem
            .jobs
            .iter()
            .map(|j| Vec::with_capacity(j.operations.len()))
            .collect();
        for o in 0..flat.n {
            placements[flat.job[o] as usize].push(Placement {
                job: flat.job[o] as usize,
                op: flat.index[o] as usize,
                machine: self.machine[o] as usize,
                start: self.head[o],
                end: self.head[o] + self.dur[o],
            });
        }
        Schedule { placements }
    }

    /// Completion time of each job.
    pub(crate) fn job_end(&self, flat: &Flat, job: usize) -> i64 {
        let last = flat.first_op.get(job + 1).map_or(flat.n as u32, |&x| x) - 1;
        self.head[last as usize] + self.dur[last as usize]
    }
}

/// The earliest start ≥ `start` at which `[start, start + duration)` misses every interval.
pub(crate) fn after_downtime(intervals: &[(i64, i64)], mut start: i64, duration: i64) -> i64 {
    for &(a, b) in intervals {
        if b <= start {
            continue;
        }
        if a >= start + duration {
            break;
        }
        start = b;
    }
    start
}

#[cfg(test)]
mod tests {
    use super::after_downtime;

    #[test]
    fn operations_wait_for_downtime_to_end() {
        let d = [(10, 20), (25, 30)];
        assert_eq!(after_downtime(&d, 0, 5), 0);
        assert_eq!(after_downtime(&d, 8, 5), 20);
        assert_eq!(after_downtime(&d, 20, 5), 20);
        assert_eq!(after_downtime(&d, 21, 5), 30);
        assert_eq!(after_downtime(&d, 0, 10), 0);
    }
}
