//! The remote write 1.0 wire format: the `WriteRequest` of Prometheus's `prompb`
//! (`remote.proto`, `types.proto`) with the messages and fields a sender of float samples
//! fills, as prost structs (field numbers as in `prompb`), and the snappy block framing the
//! protocol asks for.

/// `prometheus.WriteRequest`. Field 3 (metadata) is optional in 1.0 and not sent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: labels sorted by name, samples in timestamp order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// The request body: the protobuf encoding, snappy-compressed in the block format (not the
/// framed one), as `Content-Encoding: snappy` means in remote write.
pub fn encode(w: &WriteRequest) -> Result<Vec<u8>, snap::Error> {
    snap::raw::Encoder::new().compress_vec(&prost::Message::encode_to_vec(w))
}

/// A body back into its request (tests, and a check of a spool record).
#[cfg(test)]
pub fn decode(body: &[u8]) -> anyhow::Result<WriteRequest> {
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    Ok(<WriteRequest as prost::Message>::decode(raw.as_slice())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoding_is_prompb_s() {
        let w = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label {
                    name: "__name__".into(),
                    value: "up".into(),
                }],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1000,
                }],
            }],
        };
        // Written out by hand from prompb: field 1 (timeseries, length-delimited) holding
        // field 1 (label: name "__name__", value "up") and field 2 (sample: double 1.0,
        // varint 1000).
        let want: Vec<u8> = [
            &[0x0a, 0x1e][..],
            &[0x0a, 0x0e, 0x0a, 0x08],
            b"__name__",
            &[0x12, 0x02],
            b"up",
            &[0x12, 0x0c, 0x09],
            &1.0f64.to_le_bytes(),
            &[0x10, 0xe8, 0x07],
        ]
        .concat();
        assert_eq!(prost::Message::encode_to_vec(&w), want);
        let body = encode(&w).unwrap();
        // The block format starts with the uncompressed length as a varint.
        assert_eq!(body[0] as usize, want.len());
        assert_eq!(decode(&body).unwrap(), w);
    }
}
