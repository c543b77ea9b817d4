//! CPU time per process from `/proc/<pid>/stat` (user + system, all threads), so a phase can say
//! how many microseconds of CPU each process spent per event: what tells how many cores a log
//! volume needs, whatever else the machine runs at the same time.

use std::time::Instant;

/// CPU seconds (user + system) a process has used so far; `None` once it is gone.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of proc(5); `rest` starts at field 3.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // A test harness: std has no safe call for this (signals, sysconf, clock_gettime).
    #[allow(unsafe_code)]
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ticks as f64 / hz)
}

/// The processes a phase watches, by name.
#[derive(Clone, Debug, Default)]
pub struct Watched {
    pub procs: Vec<(String, u32)>,
}

impl Watched {
    pub fn add(&mut self, name: &str, pid: Option<u32>) {
        if let Some(pid) = pid {
            self.procs.push((name.to_string(), pid));
        }
    }

    /// Starts measuring.
    pub fn start(&self) -> Sample {
        Sample {
            at: Instant::now(),
            cpu: self.procs.iter().map(|(_, p)| cpu_secs(*p)).collect(),
            watched: self.clone(),
        }
    }
}

/// CPU counters at the start of a phase.
pub struct Sample {
    at: Instant,
    cpu: Vec<Option<f64>>,
    watched: Watched,
}

/// What a phase cost, per process.
#[derive(Clone, Debug)]
pub struct Usage {
    pub secs: f64,
    /// (name, CPU seconds during the phase)
    pub cpu: Vec<(String, f64)>,
}

impl Sample {
    pub fn finish(&self) -> Usage {
        let cpu = self
            .watched
            .procs
            .iter()
            .zip(&self.cpu)
            .map(|((name, pid), before)| {
                let d = match (before, cpu_secs(*pid)) {
                    (Some(b), Some(a)) => a - b,
                    _ => f64::NAN,
                };
                (name.clone(), d)
            })
            .collect();
        Usage {
            secs: self.at.elapsed().as_secs_f64(),
            cpu,
        }
    }
}

impl Usage {
    /// CPU µs per event of the process called `name` (summed over replicas of that name).
    pub fn us_per_event(&self, name: &str, events: u64) -> f64 {
        let s: f64 = self
            .cpu
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, c)| c)
            .sum();
        s * 1e6 / events.max(1) as f64
    }

    /// "ingest 3.1 · processor 5.2 · …" µs per event.
    pub fn per_event_line(&self, events: u64) -> String {
        let mut names: Vec<&str> = Vec::new();
        for (n, _) in &self.cpu {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        names
            .iter()
            .map(|n| format!("{n} {:.2}", self.us_per_event(n, events)))
            .collect::<Vec<_>>()
            .join(" · ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_grows_with_work() {
        let pid = std::process::id();
        let w = {
            let mut w = Watched::default();
            w.add("self", Some(pid));
            w
        };
        let s = w.start();
        // A fixed amount of work, not a wall-clock span: on a loaded machine 200 ms of wall
        // time may be only a few ms on a core.
        let mut x = 0u64;
        for _ in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(std::hint::black_box(7));
        }
        std::hint::black_box(x);
        let u = s.finish();
        assert!(u.cpu[0].1 > 0.05, "{:?}", u.cpu);
        assert!(u.us_per_event("self", 1000) > 50.0);
    }
}
