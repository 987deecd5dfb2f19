//! Services the service tests know exactly. Every mode prints what it did on stdout, then
//! waits for its stdin to close before exiting (so the test reads the daemon's figures while
//! it lives):
//! - `http-server`: listens on 127.0.0.1 (any port; prints `port N`) and answers HTTP/1.1
//!   over keep-alive: `/ok` 200 after 20 ms, `/fail` 500 after 80 ms, `/drop` closes without
//!   an answer, `/reset` closes with a reset (SO_LINGER 0) without an answer;
//! - `http-client PORT NEW_OK KEEP_OK KEEP_FAIL NEW_FAIL DROP RESET H2`: NEW_OK connections
//!   with one `/ok` each, one connection with KEEP_OK `/ok` then KEEP_FAIL `/fail`, NEW_FAIL
//!   connections with one `/fail` each, DROP with `/drop`, RESET with `/reset`, H2 that open
//!   with the HTTP/2 preface (the server answers it 404); prints `done`;
//! - `dns-server IP`: answers DNS queries on IP port 53 after 5 ms, with the rcode in the low
//!   4 bits of the query's id; prints `ready`;
//! - `dns-client IP NOERROR SERVFAIL NXDOMAIN PAIRS`: on one connected UDP socket, that many
//!   queries answered with each rcode, one after the other, then PAIRS times two queries
//!   (NOERROR, NXDOMAIN) in one `sendmmsg`, as glibc sends A and AAAA; prints `done`.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd as _,
    time::Duration,
};

fn arg(i: usize) -> String {
    std::env::args()
        .nth(i)
        .unwrap_or_else(|| panic!("argument {i} missing"))
}

fn num(i: usize) -> u64 {
    arg(i)
        .parse()
        .unwrap_or_else(|_| panic!("argument {i} is not a number"))
}

fn say(line: &str) {
    let mut out = std::io::stdout();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

fn wait_for_stdin_close() {
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

fn serve(stream: TcpStream) {
    let mut reader = BufReader::with_capacity(4096, stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut first = String::new();
        if reader.read_line(&mut first).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
        }
        let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
        let (delay, status, body) = match path.as_str() {
            "/ok" => (20, "200 OK", "ok"),
            "/fail" => (80, "500 Internal Server Error", "no"),
            "/drop" => return,
            "/reset" => {
                let l = libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                };
                // SAFETY: a valid socket and option value.
                unsafe {
                    libc::setsockopt(
                        stream.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        (&raw const l).cast(),
                        size_of::<libc::linger>() as u32,
                    )
                };
                return;
            }
            _ => (0, "404 Not Found", "no"),
        };
        std::thread::sleep(Duration::from_millis(delay));
        let resp = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn http_server() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    say(&format!("port {}", l.local_addr().unwrap().port()));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let s = s.unwrap();
            std::thread::spawn(move || serve(s));
        }
    });
    wait_for_stdin_close();
}

/// Sends one request and reads its whole response; `false` when the connection ended
/// first (closed or reset).
fn ask(s: &mut TcpStream, path: &str) -> bool {
    let req = if path == "*" {
        "PRI * HTTP/2.0\r\n\r\n".to_string()
    } else {
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
    };
    s.write_all(req.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= end + 4 + len {
                return true;
            }
        }
    }
}

fn http_client() {
    let addr = format!("127.0.0.1:{}", arg(2));
    let connect = || TcpStream::connect(&addr).unwrap();
    for _ in 0..num(3) {
        assert!(ask(&mut connect(), "/ok"));
    }
    let mut keep = connect();
    for _ in 0..num(4) {
        assert!(ask(&mut keep, "/ok"));
    }
    for _ in 0..num(5) {
        assert!(ask(&mut keep, "/fail"));
    }
    drop(keep);
    for _ in 0..num(6) {
        assert!(ask(&mut connect(), "/fail"));
    }
    for _ in 0..num(7) {
        assert!(!ask(&mut connect(), "/drop"));
    }
    for _ in 0..num(8) {
        assert!(!ask(&mut connect(), "/reset"));
    }
    for _ in 0..num(9) {
        assert!(ask(&mut connect(), "*"));
    }
    say("done");
    wait_for_stdin_close();
}

fn dns_server() {
    let s = UdpSocket::bind((arg(2).as_str(), 53)).unwrap();
    say("ready");
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        loop {
            let (n, peer) = s.recv_from(&mut buf).unwrap();
            if n < 12 {
                continue;
            }
            std::thread::sleep(Duration::from_millis(5));
            let mut r = buf[..n].to_vec();
            // QR, RD and RA set; the rcode from the id.
            r[2] = 0x81;
            r[3] = 0x80 | (buf[1] & 0x0f);
            s.send_to(&r, peer).unwrap();
        }
    });
    wait_for_stdin_close();
}

fn dns_client() {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect((arg(2).as_str(), 53)).unwrap();
    let mut id: u16 = 0x100;
    let mut next = |rcode: u16| {
        id = (id & !0x0f) + 0x10 + rcode;
        let mut q = Vec::new();
        q.extend_from_slice(&id.to_be_bytes());
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        q.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
        (id, q)
    };
    let mut buf = [0u8; 512];
    for (rcode, count) in [(0u16, num(3)), (2, num(4)), (3, num(5))] {
        for _ in 0..count {
            let (id, q) = next(rcode);
            s.send(&q).unwrap();
            let n = s.recv(&mut buf).unwrap();
            assert!(n >= 12 && buf[..2] == id.to_be_bytes());
        }
    }
    for _ in 0..num(6) {
        let (a, mut qa) = next(0);
        let (b, mut qb) = next(3);
        let mut iov = [
            libc::iovec {
                iov_base: qa.as_mut_ptr().cast(),
                iov_len: qa.len(),
            },
            libc::iovec {
                iov_base: qb.as_mut_ptr().cast(),
                iov_len: qb.len(),
            },
        ];
        // SAFETY: zeroed headers are valid; each points at one live iovec.
        let mut msgs: [libc::mmsghdr; 2] = unsafe { std::mem::zeroed() };
        for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: a connected socket and two valid messages.
        let sent = unsafe { libc::sendmmsg(s.as_raw_fd(), msgs.as_mut_ptr(), 2, 0) };
        assert_eq!(sent, 2, "sendmmsg");
        let mut got = Vec::new();
        for _ in 0..2 {
            let n = s.recv(&mut buf).unwrap();
            assert!(n >= 12);
            got.push(u16::from_be_bytes([buf[0], buf[1]]));
        }
        got.sort_unstable();
        assert_eq!(got, vec![a.min(b), a.max(b)]);
    }
    say("done");
    wait_for_stdin_close();
}

fn main() {
    match arg(1).as_str() {
        "http-server" => http_server(),
        "http-client" => http_client(),
        "dns-server" => dns_server(),
        "dns-client" => dns_client(),
        m => panic!("unknown mode {m}"),
    }
}
