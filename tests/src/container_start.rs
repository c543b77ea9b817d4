//! How long a container takes to become ready, for scripts/images-test.sh: `podman run -d`, then
//! its readiness URL polled every millisecond until 200.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// The two figures of one start.
#[derive(Clone, Copy, Debug)]
pub struct StartTimes {
    /// From `podman run` until the URL answers 200 (includes podman and the runtime).
    pub run_to_ready: Duration,
    /// From the container process's start (its /proc starttime, 10 ms ticks) until then; `None`
    /// when the process is gone or /proc cannot be read.
    pub start_to_ready: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("podman run failed: {0}")]
    Run(String),
    #[error("{0} not 200 within {1:?}")]
    NotReady(String, Duration),
}

/// `podman run -d --name NAME ARGS...`, then GET `http://127.0.0.1:PORT/PATH` until 200.
pub fn run_until_ready(
    name: &str,
    port: u16,
    path: &str,
    args: &[String],
    timeout: Duration,
) -> Result<StartTimes, StartError> {
    let t0 = Instant::now();
    let run = Command::new("podman")
        .args(["run", "-d", "--name", name])
        .args(args)
        .output()
        .map_err(|e| StartError::Run(e.to_string()))?;
    if !run.status.success() {
        return Err(StartError::Run(
            String::from_utf8_lossy(&run.stderr).trim().to_string(),
        ));
    }
    let (ready_boot, ready) = loop {
        if get_status(port, path) == Some(200) {
            break (boot_time(), Instant::now());
        }
        if t0.elapsed() > timeout {
            return Err(StartError::NotReady(
                format!("http://127.0.0.1:{port}{path}"),
                timeout,
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let start_to_ready = process_start(name).map(|started| ready_boot.saturating_sub(started));
    Ok(StartTimes {
        run_to_ready: ready - t0,
        start_to_ready,
    })
}

/// The status code of `GET path` on loopback, if anything answers within a second.
fn get_status(port: u16, path: &str) -> Option<u16> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Time since boot on the clock /proc's starttime counts in (CLOCK_BOOTTIME).
fn boot_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // A test harness: std has no safe call for this (signals, sysconf, clock_gettime).
    #[allow(unsafe_code)]
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_BOOTTIME exists on Linux.
    unsafe {
        libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts)
    };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// When the container's process started, since boot.
fn process_start(name: &str) -> Option<Duration> {
    let out = Command::new("podman")
        .args(["inspect", "--format", "{{.State.Pid}}", name])
        .output()
        .ok()?;
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime), counted after the command name's closing parenthesis.
    let ticks: u64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    // A test harness: std has no safe call for this (signals, sysconf, clock_gettime).
    #[allow(unsafe_code)]
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|t| *t > 0)?;
    Some(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}
