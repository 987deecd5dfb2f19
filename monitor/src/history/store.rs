//! The query history's store: frames (one per sampling, its wall-clock time) and, for every
//! series seen, its values in runs of consecutive frames. A run's newest values are kept as
//! they are; every `CHUNK` of them is compressed (`xor`). Frames older than the retention go,
//! and so do the oldest while the store is above its byte bound.

use std::collections::{HashMap, VecDeque};

use prometheus::proto::{MetricFamily, MetricType};
use promql_parser::label::Matchers;

use super::xor;
use crate::alert::expr::{history::selects, series::NAME, Labels};

/// Values per compressed chunk.
const CHUNK: usize = 32;

struct Chunk {
    /// Frame of the first value.
    start: u64,
    len: u16,
    bytes: Box<[u8]>,
}

struct Series {
    labels: Labels,
    /// `Key::hash` of the labels.
    hash: u64,
    /// The sample's name and pairs in the order the exposition gave them (`Key::signature`):
    /// the next push compares its sample with it in one pass over contiguous bytes, where
    /// looking each pair up in `labels` was most of the history's time.
    signature: Box<[u8]>,
    /// Compressed chunks, oldest first; each run of frames is one or more chunks and a head.
    sealed: VecDeque<Chunk>,
    /// Frame of `head[0]`.
    head_start: u64,
    head: Vec<f64>,
    /// The last frame the series had a value in.
    last: u64,
    /// Its place in `Store::order` at that frame.
    place: usize,
    /// Estimated bytes held.
    bytes: usize,
}

impl Series {
    fn seal(&mut self) {
        if self.head.is_empty() {
            return;
        }
        let bytes = xor::encode(&self.head);
        self.bytes += bytes.len() + size_of::<Chunk>();
        self.sealed.push_back(Chunk {
            start: self.head_start,
            len: self.head.len() as u16,
            bytes,
        });
        self.head.clear();
    }

    fn push(&mut self, frame: u64, v: f64) {
        if self.head.is_empty() || self.last + 1 != frame {
            self.seal();
            self.head_start = frame;
        }
        self.head.push(v);
        self.last = frame;
        if self.head.len() == CHUNK {
            self.seal();
        }
    }

    /// Drops the chunks wholly before frame `oldest`.
    fn trim(&mut self, oldest: u64) {
        while let Some(c) = self.sealed.front() {
            if c.start + u64::from(c.len) > oldest {
                break;
            }
            self.bytes -= c.bytes.len() + size_of::<Chunk>();
            self.sealed.pop_front();
        }
        if !self.head.is_empty() && self.last < oldest {
            self.head.clear();
        }
    }

    fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.head.is_empty()
    }

    /// (frame, value) of every value in frames `from..=to`.
    fn points(&self, from: u64, to: u64, out: &mut Vec<(u64, f64)>) {
        let mut buf = Vec::with_capacity(CHUNK);
        for c in &self.sealed {
            let end = c.start + u64::from(c.len);
            if end <= from || c.start > to {
                continue;
            }
            buf.clear();
            xor::decode(&c.bytes, usize::from(c.len), &mut buf);
            out.extend(
                (c.start..)
                    .zip(buf.iter().copied())
                    .filter(|(f, _)| (from..=to).contains(f)),
            );
        }
        out.extend(
            (self.head_start..)
                .zip(self.head.iter().copied())
                .filter(|(f, _)| (from..=to).contains(f)),
        );
    }
}

/// What a query reads of the store: the frames of its span and the points of the series its
/// selectors match, copied out so it evaluates without the store's lock.
pub struct Fetched {
    /// (frame, time) of every frame in the span, oldest first.
    pub frames: Vec<(u64, f64)>,
    pub series: Vec<(Labels, Vec<(u64, f64)>)>,
}

pub struct Store {
    /// Wall-clock time (Unix seconds) of each frame, oldest first; `frames[0]` is frame
    /// `first`.
    frames: VecDeque<f64>,
    first: u64,
    series: Vec<Series>,
    /// Slots by a hash of their labels (collisions share a list).
    index: HashMap<u64, Vec<usize>>,
    by_name: HashMap<String, Vec<usize>>,
    free: Vec<usize>,
    retention: f64,
    max_bytes: usize,
    /// Labels every series gets (`job`, `instance`), as a scrape would add them.
    target: Vec<(String, String)>,
    /// The slot of each sample of the last push, in the order the families gave them: the
    /// next push finds most series where they were, by comparing labels, without hashing.
    order: Vec<usize>,
    /// Each bucket bound's `le` text, by its bits: formatting floats was a tenth of a push.
    le_text: HashMap<u64, Box<str>>,
}

/// The labels of one sample, as the exposition has them, without allocating.
struct Key<'a, 'b> {
    name: &'a str,
    suffix: &'static str,
    labels: &'a [prometheus::proto::LabelPair],
    extra: Option<(&'static str, &'b str)>,
    target: &'a [(String, String)],
    /// Bit `i`: the sample has a label of `target[i]`'s name, which wins over the target's
    /// (Prometheus's honor_labels). Found once per metric, not once per bucket.
    shadowed: u64,
}

/// `Key::shadowed` of a metric's labels.
fn shadowed(labels: &[prometheus::proto::LabelPair], target: &[(String, String)]) -> u64 {
    target
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| labels.iter().any(|l| l.name() == k))
        .fold(0, |m, (i, _)| m | 1u64.checked_shl(i as u32).unwrap_or(0))
}

impl Key<'_, '_> {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.labels
            .iter()
            .map(|l| (l.name(), l.value()))
            .chain(self.extra)
            .chain(
                self.target
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| self.shadowed & 1u64.checked_shl(*i as u32).unwrap_or(0) == 0)
                    .map(|(_, (k, v))| (k.as_str(), v.as_str())),
            )
    }

    /// Independent of label order.
    fn hash(&self) -> u64 {
        let one = |k: &str, v: &str| {
            use std::hash::Hasher as _;
            let mut h = fnv::FnvHasher::default();
            h.write(k.as_bytes());
            h.write_u8(0xff);
            h.write(v.as_bytes());
            h.finish()
        };
        let mut h = fnv::FnvHasher::default();
        {
            use std::hash::Hasher as _;
            h.write(self.name.as_bytes());
            h.write(self.suffix.as_bytes());
        }
        let name = std::hash::Hasher::finish(&h);
        self.pairs()
            .fold(name, |acc, (k, v)| acc.wrapping_add(one(k, v)))
    }

    /// The parts of `signature`, each followed by a separator no label holds (0xff: not
    /// UTF-8), so two different samples never give the same bytes.
    fn signature_parts(&self) -> impl Iterator<Item = &str> {
        [self.name, self.suffix]
            .into_iter()
            .chain(self.pairs().flat_map(|(k, v)| [k, v]))
    }

    fn signature(&self) -> Box<[u8]> {
        let mut out = Vec::new();
        for p in self.signature_parts() {
            out.extend_from_slice(p.as_bytes());
            out.push(0xff);
        }
        out.into_boxed_slice()
    }

    /// Whether `sig` is this sample's `signature`, without building it. Written out part by
    /// part rather than over `signature_parts`: the chained iterators were most of a push's
    /// time, at every sample of every refresh.
    fn has_signature(&self, sig: &[u8]) -> bool {
        let mut rest = sig;
        let mut take = |p: &str| {
            let n = p.len();
            let ok = rest.len() > n && rest[n] == 0xff && &rest[..n] == p.as_bytes();
            if ok {
                rest = &rest[n + 1..];
            }
            ok
        };
        if !(take(self.name) && take(self.suffix)) {
            return false;
        }
        for l in self.labels {
            if !(take(l.name()) && take(l.value())) {
                return false;
            }
        }
        if let Some((k, v)) = self.extra {
            if !(take(k) && take(v)) {
                return false;
            }
        }
        for (i, (k, v)) in self.target.iter().enumerate() {
            if self.shadowed & 1u64.checked_shl(i as u32).unwrap_or(0) == 0 && !(take(k) && take(v))
            {
                return false;
            }
        }
        rest.is_empty()
    }

    /// Whether `labels` are this sample's: in one pass over the sample's pairs.
    fn is(&self, labels: &Labels) -> bool {
        let name = labels.get(NAME).map(String::as_str).unwrap_or("");
        if !(name.len() == self.name.len() + self.suffix.len()
            && name.starts_with(self.name)
            && name.ends_with(self.suffix))
        {
            return false;
        }
        let mut n = 1;
        for (k, v) in self.pairs() {
            if labels.get(k).is_none_or(|x| x != v) {
                return false;
            }
            n += 1;
        }
        labels.len() == n
    }

    fn labels(&self) -> Labels {
        let mut l: Labels = self
            .pairs()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.insert(NAME.to_string(), format!("{}{}", self.name, self.suffix));
        l
    }
}

impl Store {
    pub fn new(retention: f64, max_bytes: usize, target: Vec<(String, String)>) -> Self {
        Self {
            frames: VecDeque::new(),
            first: 0,
            series: Vec::new(),
            index: HashMap::new(),
            by_name: HashMap::new(),
            free: Vec::new(),
            retention,
            max_bytes,
            target,
            order: Vec::new(),
            le_text: HashMap::new(),
        }
    }

    fn next_frame(&self) -> u64 {
        self.first + self.frames.len() as u64
    }

    fn slot(&mut self, key: &Key<'_, '_>) -> usize {
        let hash = key.hash();
        if let Some(slots) = self.index.get(&hash) {
            let same = |s: usize| {
                key.has_signature(&self.series[s].signature) || key.is(&self.series[s].labels)
            };
            if let Some(&s) = slots.iter().find(|&&s| same(s)) {
                // The same labels in another order: the next push compares with this one.
                if !key.has_signature(&self.series[s].signature) {
                    self.series[s].signature = key.signature();
                }
                return s;
            }
        }
        let labels = key.labels();
        let signature = key.signature();
        let bytes = labels
            .iter()
            .map(|(k, v)| k.len() + v.len() + 64)
            .sum::<usize>()
            + signature.len()
            + size_of::<Series>()
            + CHUNK * 8;
        let name = labels.get(NAME).cloned().unwrap_or_default();
        let series = Series {
            labels,
            hash,
            signature,
            sealed: VecDeque::new(),
            head_start: 0,
            head: Vec::with_capacity(CHUNK),
            last: 0,
            place: usize::MAX,
            bytes,
        };
        let s = match self.free.pop() {
            Some(s) => {
                self.series[s] = series;
                s
            }
            None => {
                self.series.push(series);
                self.series.len() - 1
            }
        };
        self.index.entry(hash).or_default().push(s);
        self.by_name.entry(name).or_default().push(s);
        s
    }

    /// Adds one frame taken at `time` (Unix seconds): every series of `families`, as a
    /// scrape would store them (histograms as `_bucket`, `_sum`, `_count`).
    pub fn push<'a>(&mut self, time: f64, families: impl IntoIterator<Item = &'a MetricFamily>) {
        let frame = self.next_frame();
        self.frames.push_back(time);
        let target = std::mem::take(&mut self.target);
        let mut le_text = std::mem::take(&mut self.le_text);
        // Each sample is first compared with the series that followed the last one matched
        // in the previous push: a series come or gone shifts the ones after it, and the
        // next match puts the comparisons back in step.
        let previous = std::mem::take(&mut self.order);
        let mut order = Vec::with_capacity(previous.len());
        let mut next = 0;
        for f in families {
            let name = f.name();
            for m in f.get_metric() {
                let labels = m.get_label();
                let shadowed = shadowed(labels, &target);
                let mut add =
                    |suffix: &'static str, extra: Option<(&'static str, &str)>, v: f64| {
                        let key = Key {
                            name,
                            suffix,
                            labels,
                            extra,
                            target: &target,
                            shadowed,
                        };
                        let s = match previous.get(next) {
                            Some(&s) if key.has_signature(&self.series[s].signature) => s,
                            _ => self.slot(&key),
                        };
                        let series = &mut self.series[s];
                        if series.last + 1 == frame && series.place < previous.len() {
                            next = series.place + 1;
                        }
                        series.place = order.len();
                        order.push(s);
                        series.push(frame, v);
                    };
                match f.get_field_type() {
                    MetricType::COUNTER => add("", None, m.get_counter().get_value()),
                    MetricType::GAUGE => add("", None, m.get_gauge().get_value()),
                    // The daemon exports no untyped families.
                    MetricType::UNTYPED => {}
                    MetricType::HISTOGRAM => {
                        let h = m.get_histogram();
                        let mut inf = false;
                        for b in h.get_bucket() {
                            let bound = b.upper_bound();
                            inf |= bound.is_infinite();
                            let le = le_text.entry(bound.to_bits()).or_insert_with(|| {
                                if bound.is_infinite() {
                                    "+Inf".into()
                                } else {
                                    bound.to_string().into()
                                }
                            });
                            add("_bucket", Some(("le", le)), b.cumulative_count() as f64);
                        }
                        if !inf {
                            add("_bucket", Some(("le", "+Inf")), h.get_sample_count() as f64);
                        }
                        add("_sum", None, h.get_sample_sum());
                        add("_count", None, h.get_sample_count() as f64);
                    }
                    MetricType::SUMMARY => {
                        let s = m.get_summary();
                        let mut q = String::new();
                        for x in s.get_quantile() {
                            q.clear();
                            {
                                use std::fmt::Write as _;
                                let _ = write!(q, "{}", x.quantile());
                            }
                            add("", Some(("quantile", q.as_str())), x.value());
                        }
                        add("_sum", None, s.sample_sum());
                        add("_count", None, s.sample_count() as f64);
                    }
                }
            }
        }
        self.target = target;
        self.le_text = le_text;
        self.order = order;
        // A series absent from this frame ends its run (it is stale from here on).
        for s in &mut self.series {
            if s.last + 1 == frame && !s.head.is_empty() {
                s.seal();
            }
        }
        self.expire(time);
    }

    fn expire(&mut self, now: f64) {
        let mut oldest = self.first;
        while self
            .frames
            .get((oldest - self.first) as usize)
            .is_some_and(|t| *t < now - self.retention)
        {
            oldest += 1;
        }
        self.drop_before(oldest);
        // Over the bound: a tenth of what is left goes each round, oldest first.
        while self.bytes() > self.max_bytes && self.frames.len() > 1 {
            let keep = self.frames.len() - (self.frames.len() / 10).max(1);
            let oldest = self.next_frame() - keep as u64;
            self.drop_before(oldest);
        }
    }

    fn drop_before(&mut self, oldest: u64) {
        if oldest <= self.first {
            return;
        }
        let n = ((oldest - self.first) as usize).min(self.frames.len());
        self.frames.drain(..n);
        self.first = oldest;
        let mut gone = Vec::new();
        for (i, s) in self.series.iter_mut().enumerate() {
            if s.is_empty() {
                continue;
            }
            s.trim(oldest);
            if s.is_empty() {
                gone.push(i);
            }
        }
        for i in gone {
            let s = &mut self.series[i];
            let name = s.labels.get(NAME).cloned().unwrap_or_default();
            let key_hash = s.hash;
            s.labels = Labels::new();
            s.sealed = VecDeque::new();
            s.head = Vec::new();
            s.bytes = 0;
            if let Some(v) = self.index.get_mut(&key_hash) {
                v.retain(|&x| x != i);
                if v.is_empty() {
                    self.index.remove(&key_hash);
                }
            }
            if let Some(v) = self.by_name.get_mut(&name) {
                v.retain(|&x| x != i);
                if v.is_empty() {
                    self.by_name.remove(&name);
                }
            }
            self.free.push(i);
        }
    }

    /// Estimated bytes held.
    pub fn bytes(&self) -> usize {
        self.series.iter().map(|s| s.bytes).sum::<usize>()
            + self.frames.len() * 8
            + self.series.len() * 16
    }

    pub fn series_count(&self) -> usize {
        self.series.len() - self.free.len()
    }

    /// Time of the oldest and newest frames.
    pub fn span(&self) -> Option<(f64, f64)> {
        Some((*self.frames.front()?, *self.frames.back()?))
    }

    /// Slots of the live series `selector` matches.
    fn matching<'s>(
        &'s self,
        name: Option<&'s str>,
        matchers: &'s Matchers,
    ) -> impl Iterator<Item = usize> + 's {
        let candidates: Box<dyn Iterator<Item = usize>> = match name {
            Some(n) => Box::new(self.by_name.get(n).into_iter().flatten().copied()),
            None => Box::new((0..self.series.len()).filter(|&i| !self.series[i].is_empty())),
        };
        candidates.filter(move |&i| selects(&self.series[i].labels, name, matchers))
    }

    /// Labels of the series any of `selectors` matches that have a value between `from`
    /// and `to` (Unix seconds); all live series when `selectors` is empty.
    pub fn labels(
        &self,
        selectors: &[(Option<String>, Matchers)],
        from: f64,
        to: f64,
    ) -> Vec<Labels> {
        let (f0, f1) = self.frame_range(from, to, false);
        let mut slots: Vec<usize> = if selectors.is_empty() {
            (0..self.series.len()).collect()
        } else {
            selectors
                .iter()
                .flat_map(|(n, m)| self.matching(n.as_deref(), m).collect::<Vec<_>>())
                .collect()
        };
        slots.sort_unstable();
        slots.dedup();
        slots
            .into_iter()
            .map(|i| &self.series[i])
            .filter(|s| !s.is_empty() && s.last >= f0 && self.first_frame(s) <= f1)
            .map(|s| s.labels.clone())
            .collect()
    }

    fn first_frame(&self, s: &Series) -> u64 {
        s.sealed.front().map_or(s.head_start, |c| c.start)
    }

    /// Frames within `[from, to]` (times), as an inclusive range (empty when `from > to`);
    /// `before`: and the last frame before `from` (what an instant at `from` reads).
    fn frame_range(&self, from: f64, to: f64, before: bool) -> (u64, u64) {
        let mut lo = self.frames.partition_point(|t| *t < from);
        if before {
            lo = lo.saturating_sub(1);
        }
        let hi = self.frames.partition_point(|t| *t <= to);
        if hi == 0 || lo >= hi {
            return (1, 0);
        }
        (self.first + lo as u64, self.first + hi as u64 - 1)
    }

    /// The frames in `[from, to]` and the points in them of every series `selectors` match.
    pub fn fetch(&self, selectors: &[(Option<String>, Matchers)], from: f64, to: f64) -> Fetched {
        let (f0, f1) = self.frame_range(from, to, true);
        let frames = if f0 > f1 {
            Vec::new()
        } else {
            (f0..=f1)
                .map(|f| (f, self.frames[(f - self.first) as usize]))
                .collect()
        };
        let mut slots: Vec<usize> = selectors
            .iter()
            .flat_map(|(n, m)| self.matching(n.as_deref(), m).collect::<Vec<_>>())
            .collect();
        slots.sort_unstable();
        slots.dedup();
        let series = if f0 > f1 {
            Vec::new()
        } else {
            slots
                .into_iter()
                .filter_map(|i| {
                    let s = &self.series[i];
                    let mut p = Vec::new();
                    s.points(f0, f1, &mut p);
                    (!p.is_empty()).then(|| (s.labels.clone(), p))
                })
                .collect()
        };
        Fetched { frames, series }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{counter, family, gauge};

    fn families(v: f64, with_b: bool) -> Vec<MetricFamily> {
        let mut out = vec![family(
            "a_total",
            "a",
            MetricType::COUNTER,
            vec![counter(&[("x", "1")], v), counter(&[("x", "2")], 2.0 * v)],
        )];
        if with_b {
            out.push(family("b", "b", MetricType::GAUGE, vec![gauge(&[], 7.0)]));
        }
        out
    }

    fn all() -> Vec<(Option<String>, Matchers)> {
        vec![
            (Some("a_total".into()), Matchers::empty()),
            (Some("b".into()), Matchers::empty()),
        ]
    }

    #[test]
    fn points_come_back_by_frame_with_runs_broken_by_absence() {
        let mut s = Store::new(1000.0, 1 << 30, vec![("job".into(), "monitor".into())]);
        for i in 0..100 {
            // b is missing from frames 40..50.
            s.push(
                f64::from(i),
                &families(f64::from(i), !(40..50).contains(&i)),
            );
        }
        assert_eq!(s.series_count(), 3);
        let f = s.fetch(&all(), 0.0, 99.0);
        assert_eq!(f.frames.len(), 100);
        let b = f.series.iter().find(|(l, _)| l[NAME] == "b").unwrap();
        assert_eq!(b.0["job"], "monitor");
        assert_eq!(b.1.len(), 90);
        assert!(b.1.iter().all(|(f, v)| !(40..50).contains(f) && *v == 7.0));
        let a2 = f
            .series
            .iter()
            .find(|(l, _)| l[NAME] == "a_total" && l["x"] == "2")
            .unwrap();
        assert_eq!(a2.1.len(), 100);
        assert!(a2.1.iter().all(|(f, v)| *v == 2.0 * *f as f64));
        // A span inside the history.
        let f = s.fetch(&all(), 10.5, 20.0);
        assert_eq!(f.frames.first().unwrap().0, 10, "and the frame before");
        assert_eq!(f.frames.last().unwrap().0, 20);
    }

    #[test]
    fn samples_land_in_their_series_whatever_their_order() {
        let mut s = Store::new(1000.0, 1 << 30, Vec::new());
        for i in 0..10 {
            let mut f = families(f64::from(i), i % 3 != 1);
            if i % 2 == 1 {
                f.reverse();
                f[0].mut_metric().reverse();
            }
            s.push(f64::from(i), &f);
        }
        assert_eq!(s.series_count(), 3);
        let f = s.fetch(&all(), 0.0, 9.0);
        for (l, p) in &f.series {
            let want = |frame: u64| match (l[NAME].as_str(), l.get("x").map(String::as_str)) {
                ("a_total", Some("1")) => frame as f64,
                ("a_total", Some("2")) => 2.0 * frame as f64,
                _ => 7.0,
            };
            assert!(p.iter().all(|(fr, v)| *v == want(*fr)), "{l:?}: {p:?}");
        }
        let b = f.series.iter().find(|(l, _)| l[NAME] == "b").unwrap();
        assert_eq!(
            b.1.iter().map(|p| p.0).collect::<Vec<_>>(),
            [0, 2, 3, 5, 6, 8, 9]
        );
    }

    /// The signature compared at the same position tells apart samples whose bytes differ
    /// only in where one label ends, and finds a series again when its labels come in
    /// another order.
    #[test]
    fn a_sample_at_the_same_place_is_its_series_only_when_its_labels_are() {
        let mut s = Store::new(1000.0, 1 << 30, Vec::new());
        for i in 0..6 {
            let (x, y) = if i % 2 == 0 { ("ab", "c") } else { ("a", "bc") };
            let mut m = gauge(&[("x", x), ("y", y)], f64::from(i));
            if i % 3 == 2 {
                m.mut_label().reverse();
            }
            s.push(
                f64::from(i),
                &[family("g", "g", MetricType::GAUGE, vec![m])],
            );
        }
        assert_eq!(s.series_count(), 2);
        let f = s.fetch(&[(Some("g".into()), Matchers::empty())], 0.0, 5.0);
        for (l, p) in &f.series {
            let even = l["x"] == "ab";
            assert_eq!(l["y"], if even { "c" } else { "bc" });
            assert_eq!(p.len(), 3, "{l:?}: {p:?}");
            assert!(p
                .iter()
                .all(|(fr, v)| (fr % 2 == 0) == even && *v == *fr as f64));
        }
    }

    /// `has_signature` says yes to a key's own `signature` and no to every other's: keys
    /// that differ in where a part ends, in an extra label, or in a target label a sample's
    /// own shadows.
    #[test]
    fn has_signature_matches_exactly_its_own_signature() {
        let target = vec![
            ("job".to_string(), "monitor".to_string()),
            ("instance".to_string(), "h".to_string()),
        ];
        let labels = [
            gauge(&[("x", "ab"), ("y", "c")], 0.0),
            gauge(&[("x", "a"), ("y", "bc")], 0.0),
            gauge(&[("x", "ab")], 0.0),
            gauge(&[("job", "other")], 0.0),
            gauge(&[], 0.0),
        ];
        let mut keys = Vec::new();
        for m in &labels {
            let l = m.get_label();
            for (suffix, extra) in [("", None), ("_bucket", Some(("le", "1"))), ("_sum", None)] {
                keys.push(Key {
                    name: "g",
                    suffix,
                    labels: l,
                    extra,
                    target: &target,
                    shadowed: shadowed(l, &target),
                });
            }
        }
        for (i, a) in keys.iter().enumerate() {
            for (j, b) in keys.iter().enumerate() {
                assert_eq!(a.has_signature(&b.signature()), i == j, "{i} vs {j}");
            }
            let sig = a.signature();
            assert!(!a.has_signature(&sig[..sig.len() - 1]));
            let mut longer = sig.to_vec();
            longer.extend_from_slice(b"z\xff");
            assert!(!a.has_signature(&longer));
        }
    }

    #[test]
    fn retention_and_the_byte_bound_drop_the_oldest() {
        let mut s = Store::new(30.0, 1 << 30, Vec::new());
        for i in 0..100 {
            s.push(f64::from(i), &families(f64::from(i), i < 10));
        }
        let (oldest, newest) = s.span().unwrap();
        assert_eq!((oldest, newest), (69.0, 99.0));
        // b left with its last frames.
        assert_eq!(s.series_count(), 2);
        assert!(s.labels(&[], 0.0, 1e9).iter().all(|l| l[NAME] != "b"));
        let mut small = Store::new(1e9, 4096, Vec::new());
        for i in 0..10_000 {
            small.push(f64::from(i), &families(f64::from(i) * 1.37, true));
        }
        assert!(small.bytes() <= 4096, "{}", small.bytes());
        let (oldest, _) = small.span().unwrap();
        assert!(oldest > 9000.0, "{oldest}");
    }
}
