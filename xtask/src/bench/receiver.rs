//! A remote write receiver that counts what reaches it: requests, the bytes read off each
//! connection (HTTP headers and body, what the sender put on the wire above TCP), the
//! bodies' bytes, and the samples in them, read from the protobuf itself (snappy, then the
//! `WriteRequest`'s series and each series' samples) rather than from the sender's account.
//! Every request is answered 204.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    sync::{Arc, Mutex},
};

use anyhow::{bail, Context as _};

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub requests: u64,
    pub wire_bytes: u64,
    pub body_bytes: u64,
    pub samples: u64,
    /// Bodies that did not decode.
    pub bad: u64,
}

pub struct Receiver {
    pub addr: SocketAddr,
    counts: Arc<Mutex<Counts>>,
}

impl Receiver {
    /// Listens on loopback, one thread per connection, until the process ends.
    pub fn start() -> anyhow::Result<Self> {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding the receiver")?;
        let addr = l.local_addr()?;
        let counts = Arc::new(Mutex::new(Counts::default()));
        let shared = counts.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let c = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(s, &c);
                });
            }
        });
        Ok(Self { addr, counts })
    }

    pub fn url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    /// The counts so far, set back to zero.
    pub fn take(&self) -> Counts {
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn serve(s: TcpStream, counts: &Mutex<Counts>) -> anyhow::Result<()> {
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    loop {
        let mut head = 0u64;
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            let n = r.read_line(&mut line)?;
            if n == 0 {
                return Ok(()); // the sender closed the connection
            }
            head += n as u64;
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().context("Content-Length")?;
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        let samples = samples(&body);
        {
            let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
            c.requests += 1;
            c.wire_bytes += head + len as u64;
            c.body_bytes += len as u64;
            match samples {
                Ok(n) => c.samples += n,
                Err(_) => c.bad += 1,
            }
        }
        w.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")?;
    }
}

/// The samples of a remote write 1.0 body: field 2 of each field 1 of the `WriteRequest`.
pub fn samples(body: &[u8]) -> anyhow::Result<u64> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .context("not snappy")?;
    let mut n = 0;
    for (field, series) in fields(&raw)? {
        if field == 1 {
            n += fields(series)?.iter().filter(|(f, _)| *f == 2).count() as u64;
        }
    }
    Ok(n)
}

/// The length-delimited fields of a protobuf message (number and bytes); other wire types
/// are skipped.
fn fields(mut b: &[u8]) -> anyhow::Result<Vec<(u64, &[u8])>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        match key & 7 {
            0 => {
                varint(&mut b)?;
            }
            1 => b = b.get(8..).context("truncated fixed64")?,
            5 => b = b.get(4..).context("truncated fixed32")?,
            2 => {
                let len = usize::try_from(varint(&mut b)?)?;
                let (v, rest) = (b.get(..len).context("truncated field")?, &b[len..]);
                out.push((key >> 3, v));
                b = rest;
            }
            t => bail!("wire type {t}"),
        }
    }
    Ok(out)
}

fn varint(b: &mut &[u8]) -> anyhow::Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first().context("truncated varint")?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    bail!("varint too long")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_samples_of_every_series() {
        // Two series, written out by hand: the first with two samples, the second with one.
        let sample =
            |ts: u8| [&[0x12, 0x0b, 0x09][..], &1.5f64.to_le_bytes(), &[0x10, ts]].concat();
        let label = [&[0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b'][..]].concat();
        let one = [label.clone(), sample(1), sample(2)].concat();
        let two = [label, sample(3)].concat();
        let mut msg = Vec::new();
        for s in [one, two] {
            msg.push(0x0a);
            msg.push(s.len() as u8);
            msg.extend(s);
        }
        let body = snap::raw::Encoder::new().compress_vec(&msg).unwrap();
        assert_eq!(samples(&body).unwrap(), 3);
        assert!(samples(b"not snappy at all").is_err());
    }
}
