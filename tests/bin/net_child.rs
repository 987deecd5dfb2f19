//! A network workload the network tests know exactly. Every mode prints what it did on
//! stdout, then waits for its stdin to close before exiting (so the test can read the
//! daemon's per-process figures while it lives):
//! - `tcp-server IP CONNS [DELAY_MS]`: listens on IP (any port; prints `port N`), accepts
//!   CONNS connections one after the other, reads each to its end and closes it; prints
//!   `got BYTES`. With DELAY_MS, it waits that long after each accept before reading, with a
//!   receive buffer of 64 KiB, so a sender stalls;
//! - `tcp-client IP:PORT BYTES CONNS`: CONNS times connects, writes BYTES, shuts its side
//!   down and reads to the end (so every byte it sent was received); prints `sent TOTAL`;
//! - `tcp-abandon IP:PORT BYTES`: connects with a 2 MiB send buffer, writes BYTES and exits
//!   at once, leaving the kernel to send what is left and close the connection after the
//!   process is gone (prints nothing);
//! - `udp-server IP COUNT`: binds (prints `port N`), receives COUNT datagrams; prints
//!   `got BYTES`;
//! - `udp-client IP:PORT COUNT SIZE`: sends COUNT datagrams of SIZE bytes; prints `sent TOTAL`.

use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd as _,
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

fn say(line: String) {
    let mut out = std::io::stdout();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// Sets a socket buffer size option.
fn set_buffer(fd: libc::c_int, option: libc::c_int, size: libc::c_int) {
    // SAFETY: a valid socket and a c_int option value of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&raw const size).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

fn main() {
    match arg(1).as_str() {
        "tcp-server" => {
            let l = TcpListener::bind((arg(2).as_str(), 0)).expect("binding");
            let delay = std::env::args().nth(4).map_or(0, |_| num(4));
            if delay > 0 {
                set_buffer(l.as_raw_fd(), libc::SO_RCVBUF, 64 << 10);
            }
            say(format!("port {}", l.local_addr().unwrap().port()));
            let mut total = 0u64;
            let mut buf = vec![0u8; 1 << 16];
            for _ in 0..num(3) {
                let (mut c, _) = l.accept().expect("accepting");
                std::thread::sleep(std::time::Duration::from_millis(delay));
                loop {
                    match c.read(&mut buf).expect("reading") {
                        0 => break,
                        n => total += n as u64,
                    }
                }
            }
            say(format!("got {total}"));
        }
        "tcp-client" => {
            let (bytes, conns) = (num(3), num(4));
            let buf = vec![0x5au8; 1 << 16];
            for _ in 0..conns {
                let mut c = TcpStream::connect(arg(2)).expect("connecting");
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(buf.len() as u64) as usize;
                    c.write_all(&buf[..n]).expect("writing");
                    left -= n as u64;
                }
                c.shutdown(Shutdown::Write).unwrap();
                let mut rest = Vec::new();
                c.read_to_end(&mut rest).expect("reading the end");
            }
            say(format!("sent {}", bytes * conns));
        }
        "tcp-abandon" => {
            let mut c = TcpStream::connect(arg(2)).expect("connecting");
            set_buffer(c.as_raw_fd(), libc::SO_SNDBUF, 2 << 20);
            c.write_all(&vec![0x5au8; num(3) as usize])
                .expect("writing");
            std::process::exit(0);
        }
        "udp-server" => {
            let s = UdpSocket::bind((arg(2).as_str(), 0)).expect("binding");
            // Room for every datagram: none may be dropped for want of buffer.
            set_buffer(s.as_raw_fd(), libc::SO_RCVBUFFORCE, 16 << 20);
            say(format!("port {}", s.local_addr().unwrap().port()));
            let mut total = 0u64;
            let mut buf = vec![0u8; 1 << 16];
            for _ in 0..num(3) {
                total += s.recv(&mut buf).expect("receiving") as u64;
            }
            say(format!("got {total}"));
        }
        "udp-client" => {
            let s = UdpSocket::bind(("0.0.0.0", 0)).expect("binding");
            let (count, size) = (num(3), num(4) as usize);
            let buf = vec![0x5au8; size];
            for _ in 0..count {
                s.send_to(&buf, arg(2)).expect("sending");
            }
            say(format!("sent {}", count * size as u64));
        }
        m => panic!("unknown mode {m}"),
    }
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
