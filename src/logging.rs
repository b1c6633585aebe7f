//! Logging: one line per event on stdout — text, or one JSON object ([`Format`]) — written off
//! the request path.

use std::fmt::{self, Write as _};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::Level;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written: the `log_format` setting (`MPAPI_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `2026-11-21T11:16:11.934Z  INFO message name=value` ([`builder`]): for people (default).
    #[default]
    Text,
    /// `{"timestamp":"2026-11-21T11:16:11.934Z","level":"INFO","message":"…","name":value,…,"target":"mpapi::server"}`
    /// ([`json_builder`]): for a log collector. The request line's parts are fields of their own.
    Json,
}

/// Whether [`init`] chose [`Format::Json`]: the request log then writes its parts as fields.
static JSON: AtomicBool = AtomicBool::new(false);

/// Lines the log writer holds while stdout catches up: a sixth of a second of mock mode's
/// request lines at full load. tracing-appender's default, 128,000, is a channel of 4 MB that is
/// written through at start — a tenth of an idle server's memory.
pub const BUFFERED_LINES: usize = 16_384;

/// Log to stdout at `RUST_LOG` (default `info`) in `format` through a non-blocking writer, so
/// that one line per request does not hold up the request that writes it. Lines still waiting
/// are written when the returned guard is dropped: keep it for the life of the process.
/// At most [`BUFFERED_LINES`] lines wait; beyond that new lines are dropped (and counted by
/// tracing-appender), never the request held up.
pub fn init(format: Format) -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(BUFFERED_LINES)
        .finish(Batched::new(std::io::stdout()));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    JSON.store(format == Format::Json, Ordering::Relaxed);
    match format {
        Format::Text => builder(std::io::IsTerminal::is_terminal(&std::io::stdout())).with_env_filter(filter).with_writer(writer).init(),
        Format::Json => json_builder().with_env_filter(filter).with_writer(writer).init(),
    }
    guard
}

/// Whether the log is JSON ([`init`] with [`Format::Json`]).
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Tell the operator `text` (the start-up banner, each port's URL): printed as it is on stdout,
/// or, while the log is JSON, logged as one event, so that stdout stays one JSON object per line.
pub fn say(text: &str) {
    if is_json() {
        tracing::info!("{text}");
    } else {
        println!("{text}");
    }
}

/// tracing-subscriber's `fmt` subscriber with mpapi's line format ([`LogFormat`], [`LogFields`]),
/// the level coloured when `ansi`; [`init`] adds the filter and the writer, tests their own writer.
pub fn builder(ansi: bool) -> tracing_subscriber::fmt::SubscriberBuilder<LogFields, LogFormat> {
    tracing_subscriber::fmt().with_ansi(ansi).event_format(LogFormat).fmt_fields(LogFields)
}

/// tracing-subscriber's JSON subscriber: one object per event with `timestamp` ([`UtcMillis`]),
/// `level`, the message and the fields at the top level, and `target`; no spans (mpapi opens
/// none). Every control character is a JSON escape ([`JsonFormat`]), so no value reaches a
/// terminal as one. [`init`] adds the filter and the writer, tests their own writer.
pub fn json_builder() -> tracing_subscriber::fmt::SubscriberBuilder<tracing_subscriber::fmt::format::JsonFields, JsonFormat> {
    let format = tracing_subscriber::fmt::format().json().flatten_event(true).with_current_span(false).with_span_list(false).with_timer(UtcMillis);
    tracing_subscriber::fmt().fmt_fields(tracing_subscriber::fmt::format::JsonFields::new()).event_format(JsonFormat(format))
}

/// tracing-subscriber's JSON format, with `DEL` and the C1 controls (U+0080–U+009F) escaped as
/// well (`\u009b`): serde_json escapes only the C0 controls, and a terminal showing the log acts
/// on C1's CSI as on `ESC [`. The object is the same JSON.
pub struct JsonFormat(tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Json, UtcMillis>);

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &tracing::Event<'_>) -> fmt::Result {
        thread_local! {
            static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        let mut format = |line: &mut String| {
            line.clear();
            self.0.format_event(ctx, Writer::new(line), event)?;
            write_json_escaped(&mut writer, line)
        };
        // A value whose `Debug` logs would find the buffer in use: it gets one of its own.
        LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => format(&mut line),
            Err(_) => format(&mut String::new()),
        })
    }
}

/// Write the JSON text `json` with `DEL` and the C1 controls escaped (`\u007f`, `\u009b`): they
/// occur only inside strings, where the escape means the same character.
fn write_json_escaped(out: &mut impl fmt::Write, json: &str) -> fmt::Result {
    let mut rest = json;
    // DEL is one byte, and every C1 control starts with 0xC2 (as some printable characters do).
    while let Some(at) = rest.bytes().position(|b| b == 0x7f || b == 0xc2) {
        out.write_str(&rest[..at])?;
        let c = rest[at..].chars().next().expect("`at` starts a character: it is ASCII or a lead byte");
        if c.is_control() {
            write!(out, "\\u{:04x}", u32::from(c))?;
        } else {
            out.write_char(c)?;
        }
        rest = &rest[at + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// The log worker's output (tracing-appender's worker drains every line waiting, then flushes):
/// lines gather in a buffer, and each flush writes them in one go and then rests the worker for
/// [`Batched::PAUSE`], so that under load the lines of a millisecond go out in one write. Without
/// the rest the worker woke for nearly every line (strace under load, per request: 0.7 `write`,
/// 0.8 `sched_yield`, 0.2 `futex`). A lone line is written at once; only the next one can wait.
pub struct Batched<W: Write> {
    inner: std::io::BufWriter<W>,
}

impl<W: Write> Batched<W> {
    /// How long the worker rests after writing a batch.
    pub const PAUSE: Duration = Duration::from_millis(1);

    /// Batch what the worker writes to `inner`.
    pub fn new(inner: W) -> Self {
        Batched { inner: std::io::BufWriter::with_capacity(64 * 1024, inner) }
    }
}

impl<W: Write> Write for Batched<W> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.inner.write(line)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()?;
        std::thread::sleep(Self::PAUSE);
        Ok(())
    }
}

/// Log lines as `2026-11-21T11:16:11.934Z  INFO request=heating GET /health 200 example=success 0.1ms`:
/// UTC time to the millisecond, level, fields ([`LogFields`]). tracing-subscriber's `Full`
/// format wrote the same lines; this one skips what mpapi never logs (span scopes, targets,
/// thread names), which cost a quarter of every request's line.
pub struct LogFormat;

impl<S, N> FormatEvent<S, N> for LogFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &tracing::Event<'_>) -> fmt::Result {
        UtcMillis.format_time(&mut writer)?;
        // The level right-aligned in five columns, coloured on a terminal as `Full` colours it.
        let (level, colour) = match *event.metadata().level() {
            Level::ERROR => (" ERROR ", "\x1b[31m"),
            Level::WARN => ("  WARN ", "\x1b[33m"),
            Level::INFO => ("  INFO ", "\x1b[32m"),
            Level::DEBUG => (" DEBUG ", "\x1b[34m"),
            Level::TRACE => (" TRACE ", "\x1b[35m"),
        };
        if writer.has_ansi_escapes() {
            writer.write_str(colour)?;
            writer.write_str(level)?;
            writer.write_str("\x1b[0m")?;
        } else {
            writer.write_str(level)?;
        }
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

/// An event's fields as `message name=value name=value`: the message first and without its
/// name, text values as they are, unquoted (`api=heating`: the request line is one text field),
/// other values as their `Debug` says; an error as its `Display`, without its sources (mpapi
/// logs errors as `%format!("{e:#}")`, which carries them). The `log.*` fields of events that
/// came from the `log` crate are left out: they name the build machine's source paths.
///
/// Every value goes through [`write_escaped`], so a client cannot reach the terminal of whoever
/// reads the log through a request's path (tracing-subscriber's own format escapes only the
/// message). Text is written straight to the line, without `format_args!`: with tracing-
/// subscriber's `DefaultFields`, `Debug` and its styling, a request's event cost 3.1k
/// instructions (callgrind); with this and [`UtcMillis`], 1.1k.
pub struct LogFields;

impl<'w> FormatFields<'w> for LogFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = FieldVisitor { writer, empty: true, result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct FieldVisitor<'w> {
    writer: Writer<'w>,
    empty: bool,
    result: fmt::Result,
}

impl FieldVisitor<'_> {
    /// Whether the field is written at all (the `log` crate's metadata is not).
    fn shown(&self, field: &Field) -> bool {
        self.result.is_ok() && !field.name().starts_with("log.")
    }

    /// The separator and `name=` (nothing for the message).
    fn start(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::take(&mut self.empty) {
            self.writer.write_char(' ')?;
        }
        // `r#type` is how a field named after a keyword is written in the macros.
        let name = field.name();
        if name != "message" {
            self.writer.write_str(name.strip_prefix("r#").unwrap_or(name))?;
            self.writer.write_char('=')?;
        }
        Ok(())
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.shown(field) {
            self.result = self.start(field).and_then(|()| write_escaped(&mut self.writer, value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.shown(field) {
            self.result = self.start(field).and_then(|()| write!(Escaping(&mut self.writer), "{value:?}"));
        }
    }
}

/// Write `text` with the characters a terminal acts on (C0 and C1 controls, `DEL`) escaped as
/// Rust escapes them (`\n`, `\u{1b}`, `\u{9b}`), so a value can neither start a terminal
/// escape sequence nor break its line in two.
pub fn write_escaped(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    // Printable ASCII, the usual case, is checked with a loop that never exits early: the
    // compiler vectorises it, and it cost a sixth of what the search below costs on a line.
    if text.bytes().fold(true, |printable, b| printable & (b' '..=b'~').contains(&b)) {
        return out.write_str(text);
    }
    let mut rest = text;
    // Byte by byte: every C0 control and DEL is one byte, and every C1 control starts with
    // 0xC2; a 0xC2 that starts a printable character is checked as a character below.
    while let Some(at) = rest.bytes().position(|b| b < 0x20 || b == 0x7f || b == 0xc2) {
        out.write_str(&rest[..at])?;
        let c = rest[at..].chars().next().expect("`at` starts a character: it is ASCII or a lead byte");
        if c.is_control() {
            for escaped in c.escape_debug() {
                out.write_char(escaped)?;
            }
        } else {
            out.write_char(c)?;
        }
        rest = &rest[at + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// A writer that escapes what passes through it ([`write_escaped`]).
struct Escaping<'a, W>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        write_escaped(self.0, text)
    }
}

/// Log timestamps as `2026-11-21T11:16:11.934Z` (UTC, milliseconds). The date and time of day
/// are formatted once per second per thread: formatting them for every line cost more than the
/// rest of a request's log line.
pub struct UtcMillis;

impl FormatTime for UtcMillis {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        thread_local! {
            static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
        }
        // The system clock read directly: `chrono::Utc::now` works out the calendar date on
        // every call, and only a new second needs it.
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seconds = since_epoch.as_secs();
        SECOND.with_borrow_mut(|(second, text)| {
            if *second != seconds {
                *second = seconds;
                let time = i64::try_from(seconds).ok().and_then(|s| chrono::DateTime::from_timestamp(s, 0)).unwrap_or_default();
                *text = time.format("%Y-%m-%dT%H:%M:%S").to_string();
            }
            w.write_str(text)
        })?;
        // `.000Z` to `.999Z`, written once: formatting three digits cost a quarter of the time.
        static MILLIS: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| (0..1000).map(|ms| format!(".{ms:03}Z")).collect());
        let at = since_epoch.subsec_millis() as usize * ".000Z".len();
        w.write_str(&MILLIS[at..at + ".000Z".len()])
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What a writer received, write by write.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Writes {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(bytes.to_vec());
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Writes {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().concat()).unwrap()
        }
    }

    /// The lines `events` logs through [`builder`]'s subscriber, without colour.
    fn lines_of(events: impl FnOnce()) -> Vec<String> {
        let writes = Writes::default();
        let make = writes.clone();
        let subscriber = builder(false).with_writer(move || make.clone()).finish();
        tracing::subscriber::with_default(subscriber, events);
        writes.text().lines().map(str::to_owned).collect()
    }

    #[test]
    fn lines_carry_utc_milliseconds_level_and_fields() {
        let lines = lines_of(|| {
            tracing::info!(request = "heating GET /health 200 example=success 0.1ms");
            tracing::warn!(api = "heating", status = 400, "answering despite an invalid request");
            tracing::error!(r#type = ?Some(3), "a keyword field loses its r#");
        });
        assert_eq!(lines.len(), 3, "{lines:?}");
        for line in &lines {
            let (time, _) = line.split_once("Z ").expect("a UTC time");
            assert!(chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%dT%H:%M:%S%.3f").is_ok(), "{line}");
            assert_eq!(time.len(), "2026-11-21T11:16:11.934".len(), "{line}");
        }
        assert!(lines[0].ends_with("Z  INFO request=heating GET /health 200 example=success 0.1ms"), "{}", lines[0]);
        assert!(lines[1].ends_with("Z  WARN answering despite an invalid request api=heating status=400"), "{}", lines[1]);
        assert!(lines[2].ends_with("Z ERROR a keyword field loses its r# type=Some(3)"), "{}", lines[2]);
    }

    /// The lines `events` logs through [`json_builder`]'s subscriber, parsed.
    fn json_lines_of(events: impl FnOnce()) -> Vec<serde_json::Value> {
        let writes = Writes::default();
        let make = writes.clone();
        let subscriber = json_builder().with_writer(move || make.clone()).finish();
        tracing::subscriber::with_default(subscriber, events);
        let text = writes.text();
        text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))).collect()
    }

    #[test]
    fn json_lines_carry_utc_milliseconds_level_target_message_and_fields() {
        let lines = json_lines_of(|| {
            tracing::info!(request = "heating GET /health 200 example=success 0.1ms");
            tracing::warn!(api = "heating", status = 400, "answering despite an invalid request");
            tracing::error!(error = %"bad\x07bell\nfake line", "message \x1b]0;title\x07");
        });
        assert_eq!(lines.len(), 3, "{lines:?}");
        for line in &lines {
            let time = line["timestamp"].as_str().expect("a timestamp");
            assert_eq!(time.len(), "2026-11-21T11:16:11.934Z".len(), "{line}");
            let parsed = chrono::DateTime::parse_from_rfc3339(time).unwrap_or_else(|e| panic!("{e}: {time}"));
            assert!(time.ends_with('Z') && parsed.offset().local_minus_utc() == 0, "{time}");
            assert_eq!(line["target"], "mpapi::logging::tests", "{line}");
        }
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["request"], "heating GET /health 200 example=success 0.1ms");
        assert_eq!(
            (&lines[1]["level"], &lines[1]["message"], &lines[1]["api"], &lines[1]["status"]),
            (&serde_json::json!("WARN"), &serde_json::json!("answering despite an invalid request"), &serde_json::json!("heating"), &serde_json::json!(400))
        );
        // Control characters are JSON escapes on the line, and come back as they were.
        assert_eq!(lines[2]["message"], "message \x1b]0;title\x07");
        assert_eq!(lines[2]["error"], "bad\x07bell\nfake line");
    }

    #[test]
    fn json_lines_have_no_raw_control_characters() {
        let writes = Writes::default();
        let make = writes.clone();
        let subscriber = json_builder().with_writer(move || make.clone()).finish();
        tracing::subscriber::with_default(subscriber, || tracing::info!(path = "/x\u{9b}31m\x1b[2J\nfake\x7f é\u{a0}", "request"));
        let text = writes.text();
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(!text.trim_end().chars().any(char::is_control), "{text:?}");
        assert!(text.contains("\\u009b31m") && text.contains("\\u007f é\u{a0}"), "{text:?}");
        let line: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(line["path"], "/x\u{9b}31m\x1b[2J\nfake\x7f é\u{a0}", "the same text once parsed");
    }

    #[test]
    fn control_characters_in_any_value_are_escaped() {
        let lines = lines_of(|| {
            tracing::info!(request = "GET /x\u{9b}31m\x1b[2J\nfake line\x7f 404");
            tracing::info!(error = %"bad\x07bell", "message \x1b]0;title\x07");
            tracing::info!(text = "\u{a0}\u{85}é\u{9f}x\ttab\0nul");
        });
        assert_eq!(lines.len(), 3, "one line per event, newlines escaped: {lines:?}");
        assert!(lines[0].ends_with("request=GET /x\\u{9b}31m\\u{1b}[2J\\nfake line\\u{7f} 404"), "{}", lines[0]);
        assert!(lines[1].ends_with("message \\u{1b}]0;title\\u{7} error=bad\\u{7}bell"), "{}", lines[1]);
        // Latin-1 letters share C1's lead byte and stay as they are; tab and NUL are escaped.
        assert!(lines[2].ends_with("text=\u{a0}\\u{85}é\\u{9f}x\\ttab\\0nul"), "{}", lines[2]);
        for line in &lines {
            assert!(!line.chars().any(char::is_control), "{line:?}");
        }
    }

    #[test]
    fn fields_of_log_crate_events_are_left_out() {
        let lines = lines_of(|| {
            tracing::info!(log.target = "notify::inotify", log.file = "/root/.cargo/registry/x.rs", log.line = 3, "watching");
        });
        assert_eq!(lines.len(), 1);
        assert!(lines[0].ends_with("Z  INFO watching"), "{}", lines[0]);
    }

    #[test]
    fn printable_text_passes_unchanged() {
        let mut out = String::new();
        let text = "获取成功 café \u{a0}© /api/x?y=1";
        write_escaped(&mut out, text).unwrap();
        assert_eq!(out, text);
    }

    #[test]
    fn batched_lines_go_out_in_one_write_at_flush() {
        let writes = Writes::default();
        let mut batched = Batched::new(writes.clone());
        batched.write_all(b"one\n").unwrap();
        batched.write_all(b"two\n").unwrap();
        assert!(writes.0.lock().unwrap().is_empty(), "nothing is written before the flush");
        batched.flush().unwrap();
        assert_eq!(*writes.0.lock().unwrap(), vec![b"one\ntwo\n".to_vec()]);
    }
}
