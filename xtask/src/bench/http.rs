//! A minimal HTTP/1.1 client on a kept-alive `TcpStream`, as a Prometheus server scrapes:
//! `GET`, then a body framed by Content-Length, chunked transfer coding or the end of the
//! connection. Enough for our daemon (hyper) and node_exporter (Go's net/http), nothing more.

use std::{
    io::{self, BufRead, BufReader, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

/// One answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// The server closes the connection after it (`Connection: close`, or no framing).
    pub close: bool,
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Reads one response from `r`: its status line, headers and body.
pub fn read_response<R: BufRead>(r: &mut R) -> io::Result<Response> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    let mut words = line.split_whitespace();
    let version = words.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!("not an HTTP/1 status line: {line:?}")));
    }
    let status: u16 = words
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("no status in {line:?}")))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut close = version == "HTTP/1.0";
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed in the headers",
            ));
        }
        let h = line.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let Some((name, value)) = h.split_once(':') else {
            return Err(bad(format!("bad header {h:?}")));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                length = Some(
                    value
                        .parse()
                        .map_err(|_| bad(format!("bad Content-Length {value:?}")))?,
                );
            }
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.contains("close") {
                    close = true;
                } else if v.contains("keep-alive") {
                    close = false;
                }
            }
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if status >= 200 && status != 204 && status != 304 {
        // No framing: the body runs to the end of the connection.
        r.read_to_end(&mut body)?;
        close = true;
    }
    Ok(Response {
        status,
        body,
        close,
    })
}

/// A client that keeps its connection open between requests and opens a new one when the
/// server closed it.
pub struct Client {
    addr: SocketAddr,
    timeout: Duration,
    conn: Option<BufReader<TcpStream>>,
    /// Connections opened so far.
    pub connects: u64,
}

impl Client {
    pub fn new(addr: SocketAddr, timeout: Duration) -> Self {
        Self {
            addr,
            timeout,
            conn: None,
            connects: 0,
        }
    }

    fn connect(&mut self) -> io::Result<&mut BufReader<TcpStream>> {
        if self.conn.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, self.timeout)?;
            s.set_read_timeout(Some(self.timeout))?;
            s.set_write_timeout(Some(self.timeout))?;
            s.set_nodelay(true)?;
            self.connects += 1;
            self.conn = Some(BufReader::with_capacity(64 << 10, s));
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    /// `GET path`, on the open connection if there is one; a connection the server closed
    /// while idle is reopened once.
    pub fn get(&mut self, path: &str) -> io::Result<Response> {
        let reused = self.conn.is_some();
        match self.try_get(path) {
            Err(_) if reused => {
                self.conn = None;
                self.try_get(path)
            }
            r => r,
        }
    }

    fn try_get(&mut self, path: &str) -> io::Result<Response> {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: xtask-bench\r\nAccept: */*\r\n\r\n",
            self.addr
        );
        let conn = self.connect()?;
        let r = conn
            .get_mut()
            .write_all(req.as_bytes())
            .and_then(|()| read_response(conn));
        match r {
            Ok(resp) => {
                if resp.close {
                    self.conn = None;
                }
                Ok(resp)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &str) -> io::Result<Response> {
        read_response(&mut io::Cursor::new(raw.as_bytes().to_vec()))
    }

    #[test]
    fn reads_a_body_by_its_length_and_keeps_the_connection() {
        let mut c = io::Cursor::new(
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        );
        let r = read_response(&mut c).unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.close),
            (200, &b"ok\n"[..], false)
        );
        // The next response on the same connection starts right after.
        let r = read_response(&mut c).unwrap();
        assert_eq!((r.status, r.body.len()), (404, 0));
    }

    #[test]
    fn reads_a_chunked_body_with_extensions_and_trailers() {
        let r = read(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
             5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"hello, world");
        assert!(!r.close);
    }

    #[test]
    fn a_body_without_framing_runs_to_the_end_and_closes() {
        let r = read("HTTP/1.0 200 OK\r\n\r\nall of it").unwrap();
        assert_eq!(r.body, b"all of it");
        assert!(r.close);
        let r =
            read("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi").unwrap();
        assert!(r.close);
    }

    #[test]
    fn garbage_and_early_ends_are_errors() {
        assert!(read("").is_err());
        assert!(read("SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(read("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort").is_err());
        assert!(read("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(read("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
    }
}
