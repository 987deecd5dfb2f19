//! A loopback HTTP receiver for alert notifications, heartbeats and probes: records every
//! request, answers each with the next status of a script (then 200), so tests can make a
//! receiver fail first and recover.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: String,
    /// When it arrived, with the status it was answered.
    pub status: u16,
}

impl Request {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {}: not JSON ({e}): {}",
                self.method, self.path, self.body
            )
        })
    }
}

pub struct Sink {
    pub port: u16,
    server: Arc<tiny_http::Server>,
    requests: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sink {
    /// Answers the first requests with `script`'s statuses in turn, then 200.
    pub fn start(script: &[u16]) -> Self {
        let server =
            Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("binding a loopback port"));
        let port = server.server_addr().to_ip().expect("an IP listener").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(
            script.iter().copied().collect::<VecDeque<u16>>(),
        ));
        let thread = {
            let (server, requests, script) = (server.clone(), requests.clone(), script.clone());
            std::thread::spawn(move || {
                for mut rq in server.incoming_requests() {
                    let mut body = String::new();
                    let _ = rq.as_reader().read_to_string(&mut body);
                    let status = script.lock().unwrap().pop_front().unwrap_or(200);
                    requests.lock().unwrap().push(Request {
                        method: rq.method().to_string(),
                        path: rq.url().to_string(),
                        body,
                        status,
                    });
                    let _ =
                        rq.respond(tiny_http::Response::from_string("").with_status_code(status));
                }
            })
        };
        Sink {
            port,
            server,
            requests,
            script,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Statuses for the next requests (then 200 again).
    pub fn then_answer(&self, statuses: &[u16]) {
        let mut s = self.script.lock().unwrap();
        s.clear();
        s.extend(statuses);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The requests to `path`.
    pub fn to(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Polls until `done` holds for the requests so far (generous deadline: the machine is
    /// shared), and returns them.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Request]) -> bool,
    ) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.requests();
            if done(&r) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; requests so far:\n{r:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
