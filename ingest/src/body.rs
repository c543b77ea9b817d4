//! Reading a request body within the memory budget and the body limit: streamed frame by frame
//! and, for `Content-Encoding: gzip`, decompressed as it arrives, so neither the compressed nor
//! the decompressed body is ever held beyond what the request's [`Reservation`] covers or past
//! `max_body_bytes` (a gzip bomb stops at the limit, after at most one frame's output).

use std::io::Write;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use bytes::BytesMut;
use futures::StreamExt;

use crate::budget::{OverBudget, Reservation, with_payload};

/// `Content-Encoding`s ingest reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("unsupported Content-Encoding {0:?}: send gzip or no encoding")]
    UnsupportedEncoding(String),
    #[error("request body is larger than the limit of {limit} bytes (after decompression)")]
    TooLarge { limit: usize },
    #[error(transparent)]
    OverBudget(#[from] OverBudget),
    #[error("{0}")]
    Read(String),
}

impl Encoding {
    /// The request's `Content-Encoding` (`identity` or none, `gzip`/`x-gzip`).
    pub fn from_headers(headers: &HeaderMap) -> Result<Encoding, BodyError> {
        let Some(v) = headers.get(header::CONTENT_ENCODING) else {
            return Ok(Encoding::Identity);
        };
        let v = v
            .to_str()
            .map_err(|_| BodyError::UnsupportedEncoding(format!("{v:?}")))?
            .trim()
            .to_ascii_lowercase();
        match v.as_str() {
            "" | "identity" => Ok(Encoding::Identity),
            "gzip" | "x-gzip" => Ok(Encoding::Gzip),
            _ => Err(BodyError::UnsupportedEncoding(v)),
        }
    }
}

/// `Content-Length`, when given and a number.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Where decompressed bytes go: a buffer held to the body limit and the reservation.
struct Sink<'a> {
    buf: BytesMut,
    limit: usize,
    /// Compressed bytes received so far: the reservation covers the larger of these and the
    /// decompressed bytes with their payload ([`with_payload`]).
    received: u64,
    reservation: &'a mut Reservation,
    /// The first refusal: the decoder writes again when dropped, and must meet the same answer
    /// (not a second trip to the budget, counted twice).
    refused: Option<SinkError>,
}

/// Carried through `io::Error` out of the decoder.
#[derive(Clone, Copy, Debug, thiserror::Error)]
enum SinkError {
    #[error("over the body limit")]
    TooLarge,
    #[error(transparent)]
    OverBudget(OverBudget),
}

impl Sink<'_> {
    fn take(&mut self, data: &[u8]) -> Result<(), SinkError> {
        if let Some(e) = self.refused {
            return Err(e);
        }
        let len = self.buf.len() + data.len();
        let result = if len > self.limit {
            Err(SinkError::TooLarge)
        } else {
            self.reservation
                .ensure(with_payload(len as u64).max(self.received))
                .map_err(SinkError::OverBudget)
        };
        if let Err(e) = result {
            self.refused = Some(e);
            self.buf = BytesMut::new();
            return Err(e);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }
}

impl Write for Sink<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.take(data).map_err(std::io::Error::other)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn sink_error(e: std::io::Error, limit: usize) -> BodyError {
    match e.into_inner().map(|inner| inner.downcast::<SinkError>()) {
        Some(Ok(inner)) => match *inner {
            SinkError::TooLarge => BodyError::TooLarge { limit },
            SinkError::OverBudget(o) => BodyError::OverBudget(o),
        },
        Some(Err(other)) => BodyError::Read(format!("invalid gzip data: {other}")),
        None => BodyError::Read("invalid gzip data".into()),
    }
}

/// Reads and drops the rest of a refused body, up to `max` bytes, holding at most one frame at
/// a time. A client that sends its whole body before reading the answer (most do) would
/// otherwise meet a reset connection instead of the 503 or 413; one that sent
/// `Expect: 100-continue` is never asked for its body ([`should_discard`]).
pub async fn discard(frames: &mut axum::body::BodyDataStream, max: u64) {
    let mut seen = 0u64;
    while seen <= max {
        match frames.next().await {
            Some(Ok(frame)) => seen += frame.len() as u64,
            _ => return,
        }
    }
}

/// Whether a refused body should be read and dropped: not when the client waits for
/// `100 Continue` before sending it.
pub fn should_discard(headers: &HeaderMap) -> bool {
    !headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

/// The room to read a body into: its `Content-Length` (at most `limit`) when it is not
/// compressed; a compressed body's buffer grows as it is decompressed.
pub fn capacity(encoding: Encoding, length: Option<u64>, limit: usize) -> usize {
    match encoding {
        Encoding::Identity => length.unwrap_or(0).min(limit as u64) as usize,
        Encoding::Gzip => 0,
    }
}

/// Reads `body` (decompressing it as `encoding` says) into `buf` (empty; sized by
/// [`capacity`]), at most `limit` bytes, growing `reservation` before each byte is kept (for
/// the byte and the payload to be encoded from it, [`with_payload`]). When the body is refused
/// (over the limit or the budget) the bytes held are let go and, when `discard_rest`, the rest
/// of the body is read and dropped (up to `limit` more bytes) so that the client gets the
/// answer.
pub async fn read(
    body: Body,
    encoding: Encoding,
    limit: usize,
    buf: BytesMut,
    reservation: &mut Reservation,
    discard_rest: bool,
) -> Result<Bytes, BodyError> {
    let mut frames = body.into_data_stream();
    let result = read_frames(&mut frames, encoding, limit, buf, reservation).await;
    if let Err(BodyError::TooLarge { .. } | BodyError::OverBudget(_)) = &result {
        reservation.release();
        if discard_rest {
            discard(&mut frames, limit as u64).await;
        }
    }
    result
}

async fn read_frames(
    frames: &mut axum::body::BodyDataStream,
    encoding: Encoding,
    limit: usize,
    buf: BytesMut,
    reservation: &mut Reservation,
) -> Result<Bytes, BodyError> {
    let mut sink = Sink {
        buf,
        limit,
        received: 0,
        reservation,
        refused: None,
    };
    match encoding {
        Encoding::Identity => {
            while let Some(frame) = frames.next().await {
                let frame = frame.map_err(read_error)?;
                sink.take(&frame).map_err(|e| match e {
                    SinkError::TooLarge => BodyError::TooLarge { limit },
                    SinkError::OverBudget(o) => BodyError::OverBudget(o),
                })?;
            }
            Ok(sink.buf.freeze())
        }
        Encoding::Gzip => {
            let mut decoder = flate2::write::MultiGzDecoder::new(sink);
            while let Some(frame) = frames.next().await {
                let frame = frame.map_err(read_error)?;
                decoder.get_mut().received += frame.len() as u64;
                decoder
                    .write_all(&frame)
                    .map_err(|e| sink_error(e, limit))?;
            }
            let sink = decoder.finish().map_err(|e| sink_error(e, limit))?;
            Ok(sink.buf.freeze())
        }
    }
}

fn read_error(e: axum::Error) -> BodyError {
    BodyError::Read(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::{MemoryBudget, Stage};

    const KIB: usize = 1024;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    /// A body arriving in frames of `frame` bytes.
    fn streamed(data: Vec<u8>, frame: usize) -> Body {
        let chunks: Vec<Result<Bytes, std::io::Error>> = data
            .chunks(frame)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Body::from_stream(futures::stream::iter(chunks))
    }

    /// [`read`] of `data` arriving in frames of `frame` bytes, without a `Content-Length`, the
    /// rest of a refused body read and dropped.
    async fn read_in_frames(
        data: Vec<u8>,
        frame: usize,
        encoding: Encoding,
        limit: usize,
        r: &mut Reservation,
    ) -> Result<Bytes, BodyError> {
        read(
            streamed(data, frame),
            encoding,
            limit,
            BytesMut::new(),
            r,
            true,
        )
        .await
    }

    #[tokio::test]
    async fn identity_and_gzip_bodies_are_read_whole() {
        let budget = MemoryBudget::new(4 << 20, None);
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| ((i % 251) as u8).to_le_bytes())
            .collect();
        let mut r = budget.reserve(data.len() as u64).unwrap();
        let got = read_in_frames(data.clone(), 16 * KIB, Encoding::Identity, 1 << 20, &mut r)
            .await
            .unwrap();
        assert_eq!(got, data);
        let mut r = budget.reserve(0).unwrap();
        // Two gzip members, as `cat a.gz b.gz` makes.
        let mut two = gzip(&data[..1000]);
        two.extend(gzip(&data[1000..]));
        let got = read_in_frames(two, 4 * KIB, Encoding::Gzip, 1 << 20, &mut r)
            .await
            .unwrap();
        assert_eq!(got, data);
        // The body and the payload to be encoded from it.
        assert!(r.bytes() >= with_payload(data.len() as u64));
    }

    #[tokio::test]
    async fn a_body_is_refused_when_its_payload_would_not_fit_but_a_budget_of_one_body_takes_it() {
        let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 13) as u8 + b'a').collect();
        let budget = MemoryBudget::new(3 << 20, None);
        let other = budget.reserve(3 << 19).unwrap();
        // 1 MiB would fit in the 1.5 MiB free; the body and its payload (2 MiB) do not.
        let mut r = budget.reserve(0).unwrap();
        let e = read_in_frames(gzip(&data), 8 * KIB, Encoding::Gzip, 1 << 20, &mut r)
            .await
            .unwrap_err();
        assert!(matches!(e, BodyError::OverBudget(_)), "{e}");
        drop(other);
        // A budget the size of one body (the smallest start-up allows) still takes that body.
        let one_body = MemoryBudget::new(1 << 20, None);
        let mut r = one_body.reserve(with_payload(data.len() as u64)).unwrap();
        let got = read(
            streamed(data.clone(), 64 * KIB),
            Encoding::Identity,
            1 << 20,
            BytesMut::with_capacity(data.len()),
            &mut r,
            true,
        )
        .await
        .unwrap();
        assert_eq!((got.len(), r.bytes()), (data.len(), 1 << 20));
    }

    #[tokio::test]
    async fn a_gzip_bomb_stops_at_the_limit() {
        let budget = MemoryBudget::new(64 << 20, None);
        let bomb = gzip(&vec![b'a'; 32 << 20]);
        assert!(bomb.len() < 64 * KIB);
        let mut r = budget.reserve(bomb.len() as u64).unwrap();
        let e = read_in_frames(bomb, 8 * KIB, Encoding::Gzip, 1 << 20, &mut r)
            .await
            .unwrap_err();
        assert!(
            matches!(e, BodyError::TooLarge { limit } if limit == 1 << 20),
            "{e}"
        );
        // What it held is given back at once.
        assert_eq!((r.bytes(), budget.in_flight()), (0, 0));
    }

    #[tokio::test]
    async fn the_rest_of_a_refused_body_is_read_and_dropped_unless_the_client_waits_to_send_it() {
        let budget = MemoryBudget::new(1 << 20, None);
        for discard_rest in [true, false] {
            let polled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let frames = (0..8).map({
                let polled = polled.clone();
                move |_| {
                    polled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 4 * KIB]))
                }
            });
            let body = Body::from_stream(futures::stream::iter(frames));
            let mut r = budget.reserve(0).unwrap();
            let e = read(
                body,
                Encoding::Identity,
                16 * KIB,
                BytesMut::new(),
                &mut r,
                discard_rest,
            )
            .await
            .unwrap_err();
            assert!(matches!(e, BodyError::TooLarge { .. }), "{e}");
            let n = polled.load(std::sync::atomic::Ordering::SeqCst);
            if discard_rest {
                assert_eq!(n, 8);
            } else {
                assert!(n <= 5, "{n}");
            }
        }
        let mut h = HeaderMap::new();
        assert!(should_discard(&h));
        h.insert(header::EXPECT, "100-continue".parse().unwrap());
        assert!(!should_discard(&h));
    }

    #[tokio::test]
    async fn decompressed_bytes_are_held_to_the_budget() {
        let m = crate::budget::tests::metrics();
        let budget = MemoryBudget::new(2 << 20, Some(m.clone()));
        let _other = budget.reserve(1 << 20).unwrap();
        let body = gzip(&vec![b'x'; 3 << 20]);
        let mut r = budget.reserve(body.len() as u64).unwrap();
        let e = read_in_frames(body, 8 * KIB, Encoding::Gzip, 16 << 20, &mut r)
            .await
            .unwrap_err();
        match e {
            BodyError::OverBudget(o) => assert_eq!(o.stage, Stage::Body),
            other => panic!("{other}"),
        }
        // Counted once, though the decoder writes again as it is dropped.
        assert_eq!(m.rejected.with_label_values(&["body"]).get(), 1);
        assert!(budget.in_flight() <= 2 << 20);
    }

    #[tokio::test]
    async fn bad_gzip_and_unknown_encodings_are_named() {
        let budget = MemoryBudget::new(1 << 20, None);
        let mut r = budget.reserve(0).unwrap();
        let e = read_in_frames(
            b"not gzip at all".to_vec(),
            4,
            Encoding::Gzip,
            1 << 20,
            &mut r,
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("invalid gzip"), "{e}");
        let mut h = HeaderMap::new();
        assert_eq!(Encoding::from_headers(&h).unwrap(), Encoding::Identity);
        h.insert(header::CONTENT_ENCODING, "GZIP".parse().unwrap());
        assert_eq!(Encoding::from_headers(&h).unwrap(), Encoding::Gzip);
        h.insert(header::CONTENT_ENCODING, "br".parse().unwrap());
        let e = Encoding::from_headers(&h).unwrap_err();
        assert!(e.to_string().contains("\"br\""), "{e}");
        h.insert(header::CONTENT_LENGTH, "1234".parse().unwrap());
        assert_eq!(content_length(&h), Some(1234));
    }
}
