//! Where the figures come from: the daemon at `--url`, or, when nothing listens there, the
//! daemon's own code run in this process. Either way a sample is the daemon's process list
//! (`api::processes::ProcessList`, decoded from `/api/v1/processes` or built in-process)
//! plus host figures.

mod http;
mod standalone;

use anyhow::Context as _;
use url::Url;

use super::sample::Sample;

pub enum Source {
    Daemon(http::Daemon),
    /// Boxed: the daemon's whole state, far larger than an HTTP client.
    Standalone(Box<standalone::Standalone>),
}

impl Source {
    /// Connects to the daemon at `url` and takes a first sample. Only a refused connection
    /// to a loopback address means "no daemon here": then the kernel programs are loaded in
    /// this process. Anything else (a daemon answering an error or garbage, a remote host
    /// that does not answer) is an error.
    pub fn open(url: &Url) -> anyhow::Result<(Self, Sample)> {
        let daemon = http::Daemon::new(url);
        match daemon.sample() {
            Ok(s) => Ok((Source::Daemon(daemon), s)),
            Err(http::FetchError::Refused(why)) if daemon.is_local() => {
                let mut s = standalone::Standalone::start()
                    .map(Box::new)
                    .with_context(|| {
                        format!("no daemon at {url} ({why}), and top cannot run without one")
                    })?;
                let first = s.sample();
                Ok((Source::Standalone(s), first))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn sample(&mut self) -> anyhow::Result<Sample> {
        match self {
            Source::Daemon(d) => Ok(d.sample()?),
            Source::Standalone(s) => Ok(s.sample()),
        }
    }

    /// What the header says the figures come from.
    pub fn describe(&self) -> String {
        match self {
            Source::Daemon(d) => format!("daemon {}", d.base()),
            Source::Standalone(_) => "standalone (no daemon: kernel programs loaded by top)".into(),
        }
    }
}
