//! `bitnet health-check`: asks a running `bitnet serve` for `GET /health` and exits 0 only when
//! it answers 200 (the container image's `HEALTHCHECK`, which has no other program to probe
//! with). Prints the answer's status line and body; exits 1 with the reason otherwise (not
//! listening, no answer in time, or a non-200 answer such as 503 `loading` / `draining`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};

/// Arguments of `bitnet health-check`.
#[derive(Debug, Clone, clap::Args)]
pub struct HealthCheckArgs {
    /// Host the server listens on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port the server listens on.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Seconds to wait for the connection and for the answer.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
}

/// Largest answer read (a health answer is a few hundred bytes).
const MAX_ANSWER: u64 = 64 * 1024;

/// Runs `bitnet health-check`.
pub fn run(args: &HealthCheckArgs) -> anyhow::Result<()> {
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .context("--timeout must be a positive number of seconds")?;
    let target = format!("{}:{}", args.host, args.port);
    let addr = target
        .to_socket_addrs()
        .with_context(|| format!("resolving {target}"))?
        .next()
        .with_context(|| format!("{target} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {target}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
    )
    .with_context(|| format!("sending the request to {target}"))?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .with_context(|| format!("reading the answer of {target}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status_line = head.lines().next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .with_context(|| format!("{target} did not answer HTTP: {status_line:?}"))?;
    let body = body.trim();
    if status != 200 {
        bail!("{target} is not healthy: {status} {body}");
    }
    println!("{target}: {status} {body}");
    Ok(())
}
