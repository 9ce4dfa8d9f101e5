//! How a span's fields are kept for JSON log lines. tracing-subscriber keeps each span's fields as
//! one formatted string, written when the span opens and extended as fields are recorded; its own
//! JSON formatter extends it by parsing the whole object and writing it out again, on every
//! `record`. The request span that every HTTP request and gRPC call opens has fields recorded
//! five times, so with `--log-format json` that re-parsing cost more per message than validating it
//! (user-space instructions per single-message gRPC produce: 181 K with it, 108 K with text logs).
//! [`JsonSpanFields`] writes the same JSON object and extends it in place instead. Event fields
//! and the line around them are still tracing-subscriber's own.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::span;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

/// Span fields as one JSON object (`{"request_id":"…","status":201}`), for
/// `SubscriberBuilder::json().fmt_fields(JsonSpanFields)`. A field recorded twice appears twice;
/// whoever reads the object keeps the later value, as with tracing-subscriber's own formatter.
pub struct JsonSpanFields;

impl<'writer> FormatFields<'writer> for JsonSpanFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut object = JsonObject::new(writer);
        fields.record(&mut object);
        object.close().map(drop)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &span::Record<'_>,
    ) -> fmt::Result {
        let mut object = JsonObject::reopen(std::mem::take(&mut current.fields));
        fields.record(&mut object);
        current.fields = object.close()?;
        Ok(())
    }
}

/// A JSON object being written to `out`: `{` and the members so far, without the closing brace.
/// The first write that fails is kept and returned by [`JsonObject::close`].
struct JsonObject<W> {
    out: W,
    members: bool,
    result: fmt::Result,
}

impl<W: Write> JsonObject<W> {
    /// Starts an object on `out`.
    fn new(mut out: W) -> Self {
        let result = out.write_char('{');
        Self {
            out,
            members: false,
            result,
        }
    }

    fn close(mut self) -> Result<W, fmt::Error> {
        self.result?;
        self.out.write_char('}')?;
        Ok(self.out)
    }

    /// Writes one member: its key, then the value `write_value` writes.
    fn member(&mut self, field: &Field, write_value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        let separator = if self.members { "," } else { "" };
        self.members = true;
        self.result = self
            .out
            .write_str(separator)
            .and_then(|()| quoted(&mut self.out, name.strip_prefix("r#").unwrap_or(name)))
            .and_then(|()| self.out.write_char(':'))
            .and_then(|()| write_value(&mut self.out));
    }
}

impl JsonObject<String> {
    /// Continues an object already written to `written` (or starts one, when it is empty).
    fn reopen(mut written: String) -> Self {
        if written.ends_with('}') {
            written.pop();
        }
        if written.is_empty() {
            return Self::new(written);
        }
        Self {
            members: written.len() > 1,
            out: written,
            result: Ok(()),
        }
    }
}

impl<W: Write> Visit for JsonObject<W> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |out| {
            out.write_char('"')?;
            write!(JsonEscaped(&mut *out), "{value:?}")?;
            out.write_char('"')
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |out| quoted(out, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |out| {
            out.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.member(field, |out| write!(out, "{value}"));
        } else {
            // JSON has no NaN or infinity.
            self.record_debug(field, &value);
        }
    }
}

fn quoted(out: &mut impl Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    JsonEscaped(&mut *out).write_str(text)?;
    out.write_char('"')
}

/// Writes text as the inside of a JSON string.
struct JsonEscaped<W>(W);

impl<W: Write> Write for JsonEscaped<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain = 0;
        for (at, c) in text.char_indices() {
            let escape = match c {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                c if c < ' ' => "",
                _ => continue,
            };
            self.0.write_str(&text[plain..at])?;
            if escape.is_empty() {
                write!(self.0, "\\u{:04x}", c as u32)?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = at + c.len_utf8();
        }
        self.0.write_str(&text[plain..])
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use serde_json::{json, Value};
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().write(bytes)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// The JSON line an event logs inside a span built and filled in by `run`.
    fn logged_line(run: impl FnOnce()) -> Value {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(JsonSpanFields)
            .with_writer(lines.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let line = text.lines().next().expect("a log line");
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    #[test]
    fn fields_given_at_opening_and_recorded_later_all_reach_the_line() {
        let line = logged_line(|| {
            let span = tracing::info_span!(
                "request",
                request_id = %"r-1",
                route = "/v1/stations/{station}/messages",
                station = tracing::field::Empty,
                version = tracing::field::Empty,
                valid = tracing::field::Empty,
                status = tracing::field::Empty,
            );
            span.record("station", "orders");
            span.record("version", 2u64);
            span.record("valid", false);
            span.record("status", -1i64);
            span.in_scope(|| tracing::warn!("refused"));
        });
        assert_eq!(
            line["span"],
            json!({
                "name": "request",
                "request_id": "r-1",
                "route": "/v1/stations/{station}/messages",
                "station": "orders",
                "version": 2,
                "valid": false,
                "status": -1,
            }),
            "{line}"
        );
        assert_eq!(line["fields"]["message"], "refused");
    }

    #[test]
    fn text_that_json_must_escape_survives() {
        let awkward = "quote \" backslash \\ newline \n tab \t bell \u{7} é";
        let line = logged_line(|| {
            let span = tracing::info_span!("request", note = awkward, shown = ?awkward);
            span.in_scope(|| tracing::warn!("x"));
        });
        assert_eq!(line["span"]["note"], awkward, "{line}");
        assert_eq!(line["span"]["shown"], format!("{awkward:?}"), "{line}");
    }

    #[test]
    fn a_span_without_fields_is_an_empty_object() {
        let line = logged_line(|| {
            let span = tracing::info_span!("quiet");
            span.in_scope(|| tracing::warn!("x"));
        });
        assert_eq!(line["span"], json!({"name": "quiet"}), "{line}");
    }

    #[test]
    fn a_number_json_cannot_hold_is_written_as_text() {
        let line = logged_line(|| {
            let span = tracing::info_span!("request", ratio = f64::NAN, share = 0.5f64);
            span.in_scope(|| tracing::warn!("x"));
        });
        assert_eq!(line["span"]["ratio"], "NaN", "{line}");
        assert_eq!(line["span"]["share"], 0.5, "{line}");
    }
}
