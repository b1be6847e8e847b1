//! Open-loop HTTP load for the serving API: `GET {path-prefix}{random id}` at a fixed rate over
//! keep-alive connections, one blocking thread per connection.
//!
//! A closed-loop tool (wrk) sends as fast as responses come back, so at its maximum the machine
//! is saturated and the tail measures queueing in the load generator as much as the server.
//! Here every request has a scheduled send time (connection `c` of `C` sends at
//! `start + (c + k·C) / rate`), and its latency is counted from that time, not from when it was
//! actually sent: a slow response delays the requests behind it on its connection, and that
//! delay is counted (the correction for coordinated omission that wrk2 makes). The latency
//! from the actual send is reported too.
//!
//! ```sh
//! cargo run --release -p nowcast-serve --example http_load -- \
//!     --addr 127.0.0.1:18080 --rate 20000 --connections 8 --seconds 20 \
//!     --path /v1/features/u- --ids 100000
//! ```
//! Prints one JSON object: requests, rate achieved, status counts and latency percentiles in
//! milliseconds (`*_ms` from the scheduled time, `service_*_ms` from the send). With
//! `--timeline true` it also prints, to stderr, one line per second of the run (by scheduled
//! time): requests, P99 and max, to find when a tail happened.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

struct Args {
    addr: String,
    rate: f64,
    connections: usize,
    seconds: f64,
    path: String,
    ids: u64,
    timeline: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        addr: "127.0.0.1:18080".into(),
        rate: 20_000.0,
        connections: 8,
        seconds: 20.0,
        path: "/v1/features/u-".into(),
        ids: 100_000,
        timeline: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--addr" => a.addr = value,
            "--rate" => a.rate = value.parse().map_err(|e| bad(&e))?,
            "--connections" => a.connections = value.parse().map_err(|e| bad(&e))?,
            "--seconds" => a.seconds = value.parse().map_err(|e| bad(&e))?,
            "--path" => a.path = value,
            "--ids" => a.ids = value.parse().map_err(|e| bad(&e))?,
            "--timeline" => a.timeline = value.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.rate <= 0.0 || a.connections == 0 || a.seconds <= 0.0 || a.ids == 0 {
        return Err("--rate, --connections, --seconds and --ids must be positive".into());
    }
    Ok(a)
}

/// What one connection measured.
struct ConnResult {
    scheduled: Histogram<u64>,
    service: Histogram<u64>,
    statuses: [u64; 6],
    errors: u64,
    /// Latency from the scheduled time per second of the run (only with `--timeline`).
    seconds: Vec<Histogram<u64>>,
}

/// Reads one HTTP/1.1 response (status line, headers, `Content-Length` body); returns the
/// status code.
fn read_response(r: &mut BufReader<TcpStream>, line: &mut String) -> std::io::Result<u16> {
    line.clear();
    r.read_line(line)?;
    let status = line
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut len = 0usize;
    loop {
        line.clear();
        if r.read_line(line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let h = line.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                len = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(status)
}

fn connection(a: &Args, c: usize, start: Instant, end: Instant) -> std::io::Result<ConnResult> {
    let stream = TcpStream::connect(&a.addr)?;
    stream.set_nodelay(true)?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let mut res = ConnResult {
        scheduled: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
        service: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
        statuses: [0; 6],
        errors: 0,
        seconds: Vec::new(),
    };
    let interval = Duration::from_secs_f64(a.connections as f64 / a.rate);
    let mut due = start + Duration::from_secs_f64(c as f64 / a.rate);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (c as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let mut req = Vec::with_capacity(128);
    let mut line = String::new();
    while due < end {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        req.clear();
        write!(
            req,
            "GET {}{} HTTP/1.1\r\nHost: {}\r\n\r\n",
            a.path,
            rng % a.ids,
            a.addr
        )?;
        let sent = Instant::now();
        w.write_all(&req)?;
        match read_response(&mut r, &mut line) {
            Ok(status) => res.statuses[(status / 100).min(5) as usize] += 1,
            Err(_) => {
                res.errors += 1;
                break;
            }
        }
        let done = Instant::now();
        let us = |d: Duration| (d.as_micros() as u64).max(1);
        let _ = res.scheduled.record(us(done - due));
        let _ = res.service.record(us(done - sent));
        if a.timeline {
            let second = due.saturating_duration_since(start).as_secs() as usize;
            while res.seconds.len() <= second {
                res.seconds.push(res.scheduled.clone());
                res.seconds.last_mut().expect("pushed").reset();
            }
            let _ = res.seconds[second].record(us(done - due));
        }
        due += interval;
    }
    Ok(res)
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("http_load: {e}");
            std::process::exit(2);
        }
    };
    let start = Instant::now() + Duration::from_millis(100);
    let end = start + Duration::from_secs_f64(a.seconds);
    let results: Vec<std::io::Result<ConnResult>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..a.connections)
            .map(|c| {
                s.spawn({
                    let a = &a;
                    move || connection(a, c, start, end)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("connection thread"))
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut scheduled = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut service = scheduled.clone();
    let (mut statuses, mut errors) = ([0u64; 6], 0u64);
    let mut seconds: Vec<Histogram<u64>> = Vec::new();
    for r in results {
        match r {
            Ok(r) => {
                for (i, h) in r.seconds.iter().enumerate() {
                    if i == seconds.len() {
                        seconds.push(h.clone());
                    } else {
                        seconds[i].add(h).expect("same bounds");
                    }
                }
                scheduled.add(&r.scheduled).expect("same bounds");
                service.add(&r.service).expect("same bounds");
                for (t, s) in statuses.iter_mut().zip(r.statuses) {
                    *t += s;
                }
                errors += r.errors;
            }
            Err(e) => {
                eprintln!("http_load: connection failed: {e}");
                errors += 1;
            }
        }
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    for (i, h) in seconds.iter().enumerate() {
        eprintln!(
            "second {i:3}: {:6} requests  p99 {:8.3} ms  max {:8.3} ms",
            h.len(),
            ms(h, 0.99),
            h.max() as f64 / 1000.0
        );
    }
    let n = scheduled.len();
    println!(
        "{{\"requests\":{n},\"target_rate\":{},\"achieved_rate\":{:.0},\"status_2xx\":{},\"status_4xx\":{},\"status_5xx\":{},\"errors\":{errors},\
\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3},\
\"service_p50_ms\":{:.3},\"service_p99_ms\":{:.3},\"service_p999_ms\":{:.3}}}",
        a.rate,
        n as f64 / elapsed,
        statuses[2],
        statuses[4],
        statuses[5],
        ms(&scheduled, 0.5),
        ms(&scheduled, 0.9),
        ms(&scheduled, 0.99),
        ms(&scheduled, 0.999),
        scheduled.max() as f64 / 1000.0,
        ms(&service, 0.5),
        ms(&service, 0.99),
        ms(&service, 0.999),
    );
    if errors > 0 {
        std::process::exit(1);
    }
}
