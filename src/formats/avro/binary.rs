//! Avro binary payloads: the single-object header, when there is one, then the datum judged by
//! the walk (`walk.rs`).

use super::AvroSchema;
use crate::formats::Violation;

impl AvroSchema {
    /// Reads a binary datum; with `single_object`, a payload starting with a single-object
    /// header is read as one.
    pub(super) fn validate_binary(
        &self,
        payload: &[u8],
        single_object: bool,
    ) -> Result<(), Vec<Violation>> {
        let datum = match payload.strip_prefix(self.single_object_header.as_slice()) {
            Some(datum) if single_object => datum,
            None if single_object && payload.starts_with(&[0xC3, 0x01]) && payload.len() >= 10 => {
                return Err(vec![Violation::whole_message(format!(
                    "single-object encoding with fingerprint {}, which is no version of this schema (this version's is {})",
                    hex(&payload[2..10]),
                    hex(&self.single_object_header[2..])
                ))])
            }
            _ => payload,
        };
        self.judge_datum(datum).map_err(|violation| vec![violation])
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
