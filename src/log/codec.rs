//! Compression codecs of record batches: Kafka's gzip, snappy (xerial framing), lz4 frame and
//! zstd containers around the block codecs of well-kept crates (flate2, snap, lz4_flex, zstd).
//!
//! What it owns: turning a records section into a compressed one (reusing encoder state across
//! batches) and back, with the output bounded before memory is used. What it does not do: the
//! batch layout, CRC and records (see [`super::batch`]).

use std::cell::RefCell;
use std::io::Read;

use super::batch::{read_be, BatchError, CodecError, Compression, Cursor, GZIP_LEVEL, ZSTD_LEVEL};

pub(super) const LZ4_MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];

/// LZ4 frame FLG: version 01, independent blocks, no block/content checksum, no content size,
/// no dictionary.
pub(super) const LZ4_FLG: u8 = 0x60;

/// LZ4 frame BD: 64 KiB maximum block size.
pub(super) const LZ4_BD: u8 = 0x40;

/// Header checksum of (`LZ4_FLG`, `LZ4_BD`): second byte of their xxh32 (seed 0). A constant
/// because our frame descriptor is; `lz4_frame_header_matches_lz4_flex` checks it.
pub(super) const LZ4_HC: u8 = 0x82;

pub(super) const LZ4_BLOCK: usize = 64 << 10;

/// High bit of an LZ4 block size: the block is stored uncompressed.
pub(super) const LZ4_UNCOMPRESSED_BIT: u32 = 0x8000_0000;

/// LZ4 window: how far back a linked block may reference.
pub(super) const LZ4_WINDOW: usize = 64 << 10;

/// Header of a gzip member: RFC 1952, deflate, no flags, mtime 0, OS "unknown".
pub(super) const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// xerial snappy-java stream header: magic, version 1, compatible version 1.
pub(super) const XERIAL_HEADER: [u8; 16] = *b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

pub(super) const XERIAL_MAGIC_LEN: usize = 8;

/// Uncompressed bytes per xerial block (snappy-java's default, as Kafka writes).
pub(super) const XERIAL_BLOCK: usize = 32 << 10;

/// zstd window accepted when a frame does not state its size: 8 MiB covers what Kafka clients
/// write at levels up to 19 without a pledged size; the decoder allocates at most this.
pub(super) const ZSTD_WINDOW_LOG_FLOOR: u32 = 23;

pub(super) const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// Per-codec compressor state kept by a builder across batches.
pub(super) enum Encoder {
    None,
    Gzip(Box<flate2::Compress>),
    Snappy(Box<snap::raw::Encoder>),
    Lz4(Box<lz4_flex::block::CompressTable>),
    /// Created on first use; `None` again if creating it failed (out of memory): such batches
    /// are stored uncompressed.
    Zstd(Option<Box<zstd::bulk::Compressor<'static>>>),
}

impl Encoder {
    pub(super) fn new(c: Compression) -> Self {
        match c {
            Compression::None => Self::None,
            Compression::Gzip => Self::Gzip(Box::new(flate2::Compress::new(
                flate2::Compression::new(GZIP_LEVEL),
                false,
            ))),
            Compression::Snappy => Self::Snappy(Box::new(snap::raw::Encoder::new())),
            Compression::Lz4 => Self::Lz4(Box::default()),
            Compression::Zstd => Self::Zstd(None),
        }
    }

    /// Appends `src` compressed to `out` and returns the codec used: the builder's, or `None`
    /// (with `src` appended as it is) when compressing fails or does not shrink it.
    pub(super) fn compress(&mut self, src: &[u8], out: &mut Vec<u8>) -> Compression {
        let at = out.len();
        let used = match self {
            Self::None => None,
            Self::Gzip(c) => gzip_encode(c, src, out).then_some(Compression::Gzip),
            Self::Snappy(e) => snappy_encode(e, src, out).then_some(Compression::Snappy),
            Self::Lz4(t) => lz4_encode(t, src, out).then_some(Compression::Lz4),
            Self::Zstd(z) => zstd_encode(z, src, out).then_some(Compression::Zstd),
        };
        match used {
            Some(codec) if out.len() - at < src.len() => codec,
            _ => {
                out.truncate(at);
                out.extend_from_slice(src);
                Compression::None
            }
        }
    }
}

/// One gzip member: fixed header, raw deflate, CRC-32 and size trailer (RFC 1952). Built by
/// hand so the deflate state is reused across batches.
pub(super) fn gzip_encode(c: &mut flate2::Compress, src: &[u8], out: &mut Vec<u8>) -> bool {
    out.extend_from_slice(&GZIP_HEADER);
    c.reset();
    out.reserve(src.len() + src.len() / 8 + 64);
    loop {
        let consumed = (c.total_in() as usize).min(src.len());
        match c.compress_vec(&src[consumed..], out, flate2::FlushCompress::Finish) {
            Ok(flate2::Status::StreamEnd) => break,
            Ok(_) => out.reserve(out.capacity().max(64)),
            Err(_) => return false,
        }
    }
    let mut crc = flate2::Crc::new();
    crc.update(src);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE is the length modulo 2^32 (RFC 1952); batches are far smaller.
    out.extend_from_slice(&(src.len() as u32).to_le_bytes());
    true
}

/// xerial framing: header, then per 32 KiB of input a big-endian i32 length and a raw block.
pub(super) fn snappy_encode(e: &mut snap::raw::Encoder, src: &[u8], out: &mut Vec<u8>) -> bool {
    out.extend_from_slice(&XERIAL_HEADER);
    for chunk in src.chunks(XERIAL_BLOCK) {
        let at = out.len();
        out.resize(at + 4 + snap::raw::max_compress_len(chunk.len()), 0);
        let Ok(n) = e.compress(chunk, &mut out[at + 4..]) else {
            return false;
        };
        out.truncate(at + 4 + n);
        out[at..at + 4].copy_from_slice(&(n as u32).to_be_bytes());
    }
    true
}

/// One LZ4 frame: our fixed descriptor, 64 KiB independent blocks (stored raw when they do not
/// shrink), end mark; no checksums, as Kafka's Java client writes.
pub(super) fn lz4_encode(
    table: &mut lz4_flex::block::CompressTable,
    src: &[u8],
    out: &mut Vec<u8>,
) -> bool {
    out.extend_from_slice(&LZ4_MAGIC);
    out.extend_from_slice(&[LZ4_FLG, LZ4_BD, LZ4_HC]);
    for chunk in src.chunks(LZ4_BLOCK) {
        let at = out.len();
        let bound = lz4_flex::block::get_maximum_output_size(chunk.len());
        out.resize(at + 4 + bound, 0);
        let packed = lz4_flex::block::compress_into_with_table(chunk, &mut out[at + 4..], table);
        let size = match packed {
            Ok(n) if n < chunk.len() => {
                out.truncate(at + 4 + n);
                n as u32
            }
            _ => {
                out.truncate(at + 4);
                out.extend_from_slice(chunk);
                chunk.len() as u32 | LZ4_UNCOMPRESSED_BIT
            }
        };
        out[at..at + 4].copy_from_slice(&size.to_le_bytes());
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    true
}

/// One zstd frame with its content size, from a context kept across batches.
pub(super) fn zstd_encode(
    z: &mut Option<Box<zstd::bulk::Compressor<'static>>>,
    src: &[u8],
    out: &mut Vec<u8>,
) -> bool {
    if z.is_none() {
        *z = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok().map(Box::new);
    }
    let Some(c) = z else { return false };
    let at = out.len();
    out.resize(at + zstd::zstd_safe::compress_bound(src.len()), 0);
    match c.compress_to_buffer(src, &mut out[at..]) {
        Ok(n) => {
            out.truncate(at + n);
            true
        }
        Err(_) => false,
    }
}

// ----------------------------------------------------------------------------------------------
// Codecs: decompression

/// A decompression failure before it is tied to its codec.
pub(super) enum Failure {
    TooLarge(usize),
    Codec(CodecError),
}

impl Failure {
    pub(super) fn into_batch(self, codec: Compression) -> BatchError {
        match self {
            Self::TooLarge(limit) => BatchError::DecompressedTooLarge { limit },
            Self::Codec(source) => BatchError::Decompress { codec, source },
        }
    }
}

impl<E: Into<CodecError>> From<E> for Failure {
    fn from(e: E) -> Self {
        Self::Codec(e.into())
    }
}

/// Decompresses `src` into `out[..n]` (never more than `limit` bytes) and returns `n`.
pub(super) fn decompress(
    codec: Compression,
    src: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<usize, Failure> {
    match codec {
        Compression::None => {
            out.clear();
            out.extend_from_slice(src);
            Ok(src.len())
        }
        Compression::Gzip => gzip_decode(src, out, limit),
        Compression::Snappy => snappy_decode(src, out, limit),
        Compression::Lz4 => lz4_decode(src, out, limit),
        Compression::Zstd => zstd_decode(src, out, limit),
    }
}

/// Makes `out[..end]` addressable. Bytes below `out.len()` are reused as they are, so a reused
/// scratch buffer is zero-filled only where it grows.
fn ensure_len(out: &mut Vec<u8>, end: usize) {
    if out.len() < end {
        out.resize(end, 0);
    }
}

/// Reads `reader` to its end into `out`, failing once it yields more than `limit` bytes.
fn read_bounded(reader: impl Read, out: &mut Vec<u8>, limit: usize) -> Result<usize, Failure> {
    out.clear();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(cap).read_to_end(out)?;
    if out.len() > limit {
        return Err(Failure::TooLarge(limit));
    }
    Ok(out.len())
}

pub(super) fn gzip_decode(src: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<usize, Failure> {
    read_bounded(flate2::bufread::MultiGzDecoder::new(src), out, limit)
}

pub(super) fn snappy_decode(src: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<usize, Failure> {
    if src.len() < XERIAL_MAGIC_LEN || src[..XERIAL_MAGIC_LEN] != XERIAL_HEADER[..XERIAL_MAGIC_LEN]
    {
        // Not xerial-framed: one raw block, as librdkafka may write and snappy-java accepts.
        return snappy_block(src, out, 0, limit);
    }
    let mut cur = Cursor::new(src.get(XERIAL_HEADER.len()..).unwrap_or_default());
    let mut n = 0;
    while !cur.is_empty() {
        let frame_err = |_| CodecError::SnappyFrame;
        let len =
            i32::from_be_bytes(read_be(cur.take(4).map_err(frame_err)?, 0).unwrap_or_default());
        let len = usize::try_from(len).map_err(|_| CodecError::SnappyFrame)?;
        let block = cur.take(len).map_err(frame_err)?;
        n = snappy_block(block, out, n, limit)?;
    }
    Ok(n)
}

/// Decompresses one raw snappy block into `out[at..]`; returns the new end.
fn snappy_block(
    block: &[u8],
    out: &mut Vec<u8>,
    at: usize,
    limit: usize,
) -> Result<usize, Failure> {
    let len = snap::raw::decompress_len(block)?;
    let end = at
        .checked_add(len)
        .filter(|&e| e <= limit)
        .ok_or(Failure::TooLarge(limit))?;
    ensure_len(out, end);
    let n = snap::raw::Decoder::new().decompress(block, &mut out[at..end])?;
    Ok(at + n)
}

/// The parts of an LZ4 frame descriptor we act on.
struct Lz4Frame {
    independent: bool,
    block_checksum: bool,
    content_checksum: bool,
    block_max: usize,
}

pub(super) fn lz4_decode(src: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<usize, Failure> {
    let mut cur = Cursor::new(src);
    let frame = lz4_frame_header(&mut cur, limit)?;
    let mut n = 0;
    loop {
        let size = u32::from_le_bytes(read_be(lz4_take(&mut cur, 4)?, 0).unwrap_or_default());
        if size == 0 {
            break;
        }
        let len = (size & !LZ4_UNCOMPRESSED_BIT) as usize;
        if len > frame.block_max {
            return Err(CodecError::Lz4Frame.into());
        }
        let block = lz4_take(&mut cur, len)?;
        n = if size & LZ4_UNCOMPRESSED_BIT != 0 {
            lz4_stored(block, out, n, limit)?
        } else {
            lz4_block(block, out, n, limit, &frame)?
        };
        if frame.block_checksum {
            lz4_take(&mut cur, 4)?;
        }
    }
    if frame.content_checksum {
        lz4_take(&mut cur, 4)?;
    }
    if !cur.is_empty() {
        return Err(CodecError::Lz4Frame.into());
    }
    Ok(n)
}

fn lz4_take<'a>(cur: &mut Cursor<'a>, n: usize) -> Result<&'a [u8], Failure> {
    cur.take(n)
        .map_err(|_| Failure::Codec(CodecError::Lz4Frame))
}

/// Reads magic, FLG, BD, the optional content size, and the header checksum byte (not
/// verified: Kafka's pre-0.10 clients computed it wrongly; the batch CRC covers these bytes).
fn lz4_frame_header(cur: &mut Cursor<'_>, limit: usize) -> Result<Lz4Frame, Failure> {
    let head = lz4_take(cur, 6)?;
    let (flg, bd) = (head[4], head[5]);
    let valid = head[..4] == LZ4_MAGIC
        && flg >> 6 == 0b01
        && flg & 0b11 == 0 // reserved bit and dictionary id: no dictionaries here
        && bd & 0x8f == 0
        && (4..=7).contains(&(bd >> 4));
    if !valid {
        return Err(CodecError::Lz4Frame.into());
    }
    if flg & 0x08 != 0 {
        let size = u64::from_le_bytes(read_be(lz4_take(cur, 8)?, 0).unwrap_or_default());
        if size > limit as u64 {
            return Err(Failure::TooLarge(limit));
        }
    }
    lz4_take(cur, 1)?; // header checksum
    Ok(Lz4Frame {
        independent: flg & 0x20 != 0,
        block_checksum: flg & 0x10 != 0,
        content_checksum: flg & 0x04 != 0,
        block_max: 1 << (8 + 2 * usize::from(bd >> 4)),
    })
}

fn lz4_stored(block: &[u8], out: &mut Vec<u8>, at: usize, limit: usize) -> Result<usize, Failure> {
    let end = at + block.len();
    if end > limit {
        return Err(Failure::TooLarge(limit));
    }
    ensure_len(out, end);
    out[at..end].copy_from_slice(block);
    Ok(end)
}

/// Decompresses one LZ4 block into `out[at..]`, into at most what the frame's block size and
/// the limit leave; linked blocks use the previous 64 KiB of output as their dictionary.
fn lz4_block(
    block: &[u8],
    out: &mut Vec<u8>,
    at: usize,
    limit: usize,
    frame: &Lz4Frame,
) -> Result<usize, Failure> {
    let room = frame.block_max.min(limit - at);
    ensure_len(out, at + room);
    let (before, dst) = out.split_at_mut(at);
    let dst = &mut dst[..room];
    let result = if frame.independent {
        lz4_flex::block::decompress_into(block, dst)
    } else {
        let dict = &before[at.saturating_sub(LZ4_WINDOW)..];
        lz4_flex::block::decompress_into_with_dict(block, dst, dict)
    };
    match result {
        Ok(n) => Ok(at + n),
        Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }) if room < frame.block_max => {
            Err(Failure::TooLarge(limit))
        }
        Err(e) => Err(e.into()),
    }
}

/// A single frame that states its size (ours) decompresses in one call into exactly that much
/// memory; anything else streams, with the window (the decoder's allocation) capped.
pub(super) fn zstd_decode(src: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<usize, Failure> {
    let single = zstd::zstd_safe::find_frame_compressed_size(src) == Ok(src.len());
    match zstd::zstd_safe::get_frame_content_size(src) {
        Ok(Some(size)) if size > limit as u64 => Err(Failure::TooLarge(limit)),
        Ok(Some(size)) if single => {
            out.clear();
            // `size` ≤ limit: the frame's claim is capped before anything is reserved.
            out.reserve(size as usize);
            let n = zstd_single_shot(src, out)?;
            if n > limit {
                return Err(Failure::TooLarge(limit));
            }
            Ok(n)
        }
        Ok(_) => {
            let mut d = zstd::stream::read::Decoder::with_buffer(src)?;
            d.window_log_max(zstd_window_log(limit))?;
            read_bounded(d, out, limit)
        }
        Err(_) => Err(CodecError::ZstdFrame.into()),
    }
}

thread_local! {
    /// A zstd decompression context per thread, kept because creating one costs about as much
    /// as decompressing a page-fit batch. Used only in single-shot mode, which writes straight
    /// into the caller's buffer and allocates no window: it stays at its base size (~100 KiB).
    static ZSTD_DCTX: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Decompresses one frame into `out`'s spare capacity (which holds its whole content).
fn zstd_single_shot(src: &[u8], out: &mut Vec<u8>) -> std::io::Result<usize> {
    ZSTD_DCTX.with_borrow_mut(|cached| {
        let mut d = match cached.take() {
            Some(d) => d,
            None => zstd::bulk::Decompressor::new()?,
        };
        let n = d.decompress_to_buffer(src, out)?;
        // Only a context that finished cleanly is kept for the next batch.
        *cached = Some(d);
        Ok(n)
    })
}

/// Window log accepted for a frame of unknown size: enough for `limit`, at least what Kafka
/// clients use, at most zstd's default maximum.
fn zstd_window_log(limit: usize) -> u32 {
    let needed = usize::BITS - limit.max(1).next_power_of_two().leading_zeros() - 1;
    needed.clamp(ZSTD_WINDOW_LOG_FLOOR, ZSTD_WINDOW_LOG_MAX)
}
