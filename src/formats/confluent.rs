//! The Confluent wire format: magic byte `0`, the 4-byte big-endian schema id, then the encoded
//! message (for Protobuf, preceded by the message-index array). Splitting the frame is shared by
//! every format; what follows the id is each format's business.

use bytes::{Buf, Bytes};

use super::Violation;

/// Length of the magic byte and the schema id.
const HEADER_LEN: usize = 5;

/// Splits a framed payload into its schema id and the bytes after it.
pub fn split_frame(payload: &Bytes) -> Result<(u32, Bytes), Violation> {
    if payload.len() < HEADER_LEN || payload[0] != 0 {
        return Err(Violation::whole_message(
            "not Confluent-framed: expected magic byte 0 and a 4-byte schema id",
        ));
    }
    let id = (&payload[1..HEADER_LEN]).get_u32();
    Ok((id, payload.slice(HEADER_LEN..)))
}

/// Frames `value` for schema `id`: magic byte, id, the Protobuf message-index array when
/// `message_indexes` is given (`[0]` written as the single byte 0, as Confluent's serializers do),
/// then the value.
pub fn frame(id: u32, message_indexes: Option<&[i64]>, value: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(HEADER_LEN + 8 + value.len());
    framed.push(0);
    framed.extend_from_slice(&id.to_be_bytes());
    match message_indexes {
        None => {}
        Some([0]) => framed.push(0),
        Some(indexes) => {
            write_zigzag(&mut framed, indexes.len() as i64);
            for index in indexes {
                write_zigzag(&mut framed, *index);
            }
        }
    }
    framed.extend_from_slice(value);
    Bytes::from(framed)
}

/// Appends `value` as a zig-zag varint (Avro's `long`, the indexes of a Protobuf frame).
pub fn write_zigzag(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    loop {
        let byte = (zigzag & 0x7F) as u8;
        zigzag >>= 7;
        if zigzag == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads the Protobuf message-index array at the start of `body`: a zig-zag varint count, then
/// that many zig-zag varint indexes; a count of 0 means `[0]`, the file's first message.
pub fn split_message_indexes(body: &Bytes) -> Result<(Vec<i64>, Bytes), Violation> {
    let mut cursor = &body[..];
    let bad = || Violation::whole_message("malformed Confluent message-index array");
    let count = read_zigzag(&mut cursor).ok_or_else(bad)?;
    let indexes = match count {
        0 => vec![0],
        n if (1..=64).contains(&n) => (0..n)
            .map(|_| read_zigzag(&mut cursor).ok_or_else(bad))
            .collect::<Result<_, _>>()?,
        _ => return Err(bad()),
    };
    let consumed = body.len() - cursor.len();
    Ok((indexes, body.slice(consumed..)))
}

/// Reads one zig-zag varint (as Protobuf's `sint64` and Avro's `long` are written).
pub(crate) fn read_zigzag(cursor: &mut &[u8]) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = cursor.split_first()?;
        *cursor = rest;
        value |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_into_id_and_body() {
        let framed = Bytes::from_static(&[0, 0, 0, 1, 2, b'{', b'}']);
        let (id, body) = split_frame(&framed).unwrap();
        assert_eq!(id, 258);
        assert_eq!(&body[..], b"{}");
        assert!(split_frame(&Bytes::from_static(&[1, 0, 0, 0, 1])).is_err());
        assert!(split_frame(&Bytes::from_static(&[0, 0])).is_err());
    }

    #[test]
    fn message_indexes_follow_confluent_rules() {
        let (indexes, rest) = split_message_indexes(&Bytes::from_static(&[0, 9])).unwrap();
        assert_eq!((indexes, &rest[..]), (vec![0], &[9u8][..]));
        // count 2 (zig-zag 4), indexes 1 (2) and 0 (0)
        let (indexes, rest) = split_message_indexes(&Bytes::from_static(&[4, 2, 0, 7])).unwrap();
        assert_eq!((indexes, &rest[..]), (vec![1, 0], &[7u8][..]));
        assert!(split_message_indexes(&Bytes::from_static(&[4, 2])).is_err());
    }

    #[test]
    fn framing_round_trips_through_splitting() {
        let framed = frame(258, None, b"{}");
        assert_eq!(&framed[..], &[0, 0, 0, 1, 2, b'{', b'}']);
        let framed = frame(7, Some(&[0]), &[9]);
        assert_eq!(&framed[..], &[0, 0, 0, 0, 7, 0, 9]);
        let framed = frame(7, Some(&[1, 0]), &[9]);
        let (_, body) = split_frame(&framed).unwrap();
        let (indexes, rest) = split_message_indexes(&body).unwrap();
        assert_eq!((indexes, &rest[..]), (vec![1, 0], &[9u8][..]));
    }
}
